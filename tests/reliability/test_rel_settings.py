"""Bad settings: impossible model shapes, sizes <= 0, a context longer than the model's, and a model too large
for this machine, each refused with a message before anything is allocated."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gptviz.config import PRESETS, GPTConfig, count_params, preset
from gptviz.engine import memory
from gptviz.engine.memory import SKIP_ENV, available_ram, check_fits, estimate_memory
from gptviz.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"n_heads": 5}, "must divide emb_dim"),
        ({"emb_dim": 30, "n_heads": 4}, "must divide emb_dim"),
        ({"emb_dim": 0}, "emb_dim must be a positive integer"),
        ({"n_layers": -1}, "n_layers must be a positive integer"),
        ({"n_heads": 0}, "n_heads must be a positive integer"),
        ({"context_length": 0}, "context_length must be a positive integer"),
        ({"vocab_size": -5}, "vocab_size must be a positive integer"),
        ({"emb_dim": 32.0}, "emb_dim must be a positive integer"),
        ({"n_layers": True}, "n_layers must be a positive integer"),
        ({"drop_rate": 1.0}, "drop_rate"),
        ({"drop_rate": -0.1}, "drop_rate"),
    ],
)
def test_impossible_model_shapes_are_refused(changes, message) -> None:
    base = {"vocab_size": 300, "context_length": 16, "emb_dim": 32, "n_heads": 4, "n_layers": 1}
    with pytest.raises(ConfigError, match=message) as err:
        GPTConfig(**{**base, **changes})
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--context", "0"], "context"),
        (["--context", "-4"], "context"),
        (["--context", "4096"], "longer than"),
        (["--batch-size", "0"], "batch_size must be a positive integer"),
        (["--batch-size", "-3"], "batch_size must be a positive integer"),
        (["--steps", "0"], "steps must be a positive integer"),
        (["--lr", "-1"], "lr must be a positive number"),
        (["--lr", "nan"], "lr must be a positive number"),
        (["--val-ratio", "1.5"], "val_ratio"),
        (["--eval-freq", "0"], "eval_freq"),
        (["--stride", "0"], "stride"),
    ],
)
def test_bad_training_settings_through_the_cli(tmp_path: Path, cli, args, message) -> None:
    out = tmp_path / "run"
    result = cli("train", "--corpus", "builtin", "--preset", "tiny", "--out", out, "--quiet", *args)
    assert result.code == 1, result
    assert len(result.err_lines) == 1 and message in result.err_lines[0], result.err
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize(
    "args, message",
    [
        (["--max-new-tokens", "-1"], "max-new-tokens"),
        (["--temperature", "-1"], "temperature"),
        (["--temperature", "inf"], "temperature"),
        (["--top-p", "0"], "top_p"),
        (["--top-p", "1.5"], "top_p"),
        (["--top-k", "-5"], "top_k"),
    ],
)
def test_bad_sampling_settings_through_the_cli(cli, args, message) -> None:
    result = cli("generate", "demo", "--prompt", "Hello", *args)
    assert result.code == 1, result
    assert len(result.err_lines) == 1 and message in result.err_lines[0], result.err


def test_estimate_adds_up_weights_gradients_and_adamw() -> None:
    cfg = preset("124M")
    train = estimate_memory(cfg, training=True, batch_size=2, context=256)
    assert train.weights == 4 * count_params(cfg) == 4 * 124_412_160  # the book's 124M without qkv bias
    assert train.gradients == train.weights and train.optimizer == 2 * train.weights
    assert train.total == train.weights * 4 + train.activations
    infer = estimate_memory(cfg, training=False, batch_size=1, context=1024)
    assert infer.gradients == infer.optimizer == 0
    # Activations grow with batch and (faster than linearly) with context.
    double_batch = estimate_memory(cfg, training=True, batch_size=4, context=256)
    double_context = estimate_memory(cfg, training=True, batch_size=2, context=512)
    assert double_batch.activations > 1.9 * (train.activations - memory.OVERHEAD)
    assert double_context.activations > double_batch.activations


def test_1558m_with_batch_64_is_refused_before_allocating(monkeypatch) -> None:
    from gptviz.model import gpt

    def no_allocation(*args, **kwargs):
        raise AssertionError("a model was allocated before the memory check")

    monkeypatch.setattr(gpt.GPTModel, "__init__", no_allocation)
    monkeypatch.delenv(SKIP_ENV, raising=False)
    with pytest.raises(ConfigError) as err:
        check_fits(preset("1558M"), training=True, batch_size=64, context=1024, device="cpu")
    message = str(err.value)
    assert "1558M" in message and "batch 64 x context 1024" in message
    assert (
        "weights 5.80 GiB" in message
        and "gradients 5.80 GiB" in message
        and "AdamW state 11.60 GiB" in message
    )
    assert "GiB of RAM is available" in message and "\n" not in message


def test_fits_or_not_against_a_given_amount_of_memory(monkeypatch) -> None:
    monkeypatch.delenv(SKIP_ENV, raising=False)
    cfg = PRESETS["tiny"]
    need = estimate_memory(cfg, training=True, batch_size=4, context=128).total
    assert check_fits(cfg, training=True, batch_size=4, context=128, available=2 * need).total == need
    with pytest.raises(ConfigError, match="needs about"):
        check_fits(cfg, training=True, batch_size=4, context=128, available=need)
    with pytest.raises(ConfigError, match="longer than the model's context length 128"):
        check_fits(cfg, training=True, batch_size=4, context=129, available=10 * need)
    with pytest.raises(ConfigError, match="batch_size must be a positive integer"):
        check_fits(cfg, training=True, batch_size=0, context=16, available=10 * need)
    # A model that already exists has its weights out of the free memory already: they are added back.
    weights = estimate_memory(cfg, training=True, batch_size=4, context=128).weights
    room = int(need / memory.USABLE_FRACTION) + 1 - weights
    with pytest.raises(ConfigError):
        check_fits(cfg, training=True, batch_size=4, context=128, available=room)
    check_fits(cfg, training=True, batch_size=4, context=128, available=room, weights_allocated=True)
    monkeypatch.setenv(SKIP_ENV, "1")
    assert check_fits(cfg, training=True, batch_size=4, context=128, available=1).total == need


def test_available_ram_reads_meminfo() -> None:
    meminfo = Path("/proc/meminfo").read_text()
    line = next(x for x in meminfo.splitlines() if x.startswith("MemAvailable:"))
    stated = int(line.split()[1]) * 1024
    assert 0 < available_ram() <= stated * 1.1  # the kernel's number moves a little between the reads


MEASURE = r"""
import json, sys, torch
import torch.nn.functional as F
from gptviz.config import preset
from gptviz.engine.memory import estimate_memory
from gptviz.model.gpt import GPTModel
def rss(): return int(open('/proc/self/statm').read().split()[1]) * 4096
def hwm(): return next(int(l.split()[1]) * 1024 for l in open('/proc/self/status') if l.startswith('VmHWM'))
b, t = int(sys.argv[1]), int(sys.argv[2])
cfg = preset('tiny')
base = rss()
m = GPTModel(cfg).train()
opt = torch.optim.AdamW(m.parameters(), lr=1e-4)
x = torch.randint(0, cfg.vocab_size, (b, t))
for _ in range(2):
    loss = F.cross_entropy(m(x).flatten(0, 1), x.flatten())
    opt.zero_grad(); loss.backward(); opt.step(); del loss
print(json.dumps({"measured": hwm() - base, "estimate": estimate_memory(cfg, training=True, batch_size=b, context=t).total}))
"""


def test_estimate_is_above_the_measured_peak_of_a_real_training_step() -> None:
    """The estimate must not let through a run that does not fit, nor refuse one that fits with room."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", MEASURE, "4", "64"], capture_output=True, text=True, env=env, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["measured"] <= data["estimate"] <= 2.5 * data["measured"], data


def _train_cli_checks_memory() -> bool:
    source = (REPO / "gptviz" / "commands" / "train.py").read_text()
    return "check_fits" in source


@pytest.mark.skipif(not _train_cli_checks_memory(), reason="check_fits is not called by gptviz train yet")
def test_train_cli_refuses_1558m_batch_64_before_allocating(tmp_path: Path, cli, monkeypatch) -> None:
    from gptviz.model import gpt

    def no_allocation(*args, **kwargs):
        raise AssertionError("a model was allocated before the memory check")

    monkeypatch.setattr(gpt.GPTModel, "__init__", no_allocation)
    monkeypatch.delenv(SKIP_ENV, raising=False)
    out = tmp_path / "run"
    result = cli(
        "train", "--corpus", "builtin", "--preset", "1558M", "--batch-size", "64", "--out", out, "--quiet"
    )
    assert result.code == 1 and len(result.err_lines) == 1, result.err
    assert "needs about" in result.err and "available" in result.err
    assert not out.exists() or not any(out.iterdir())
