"""nanoGPT `train.py` checkpoints in: built here from a transformers GPT-2's weights, in every variant nanoGPT
writes (bias on and off, torch.compile prefixes, the vocabulary padded to 50304, the old causal-mask buffer,
an optimizer entry), they must import with the oracle's logits on the 50257 real tokens."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch
from nanogpt_ckpt import N_EMBD, N_HEAD, N_LAYER, N_POS, hf_model, write_nanogpt_ckpt

from gptviz.cli import main as cli_main
from gptviz.config import GPT2_VOCAB_SIZE
from gptviz.engine.checkpoint import read_checkpoint_meta
from gptviz.engine.importers import import_weights, read_weights
from gptviz.engine.nanogpt import FILE_FORMAT, GELU_NOTE, KEY_STYLE
from gptviz.engine.path_kind import find_nanogpt_checkpoint
from gptviz.errors import WeightsError

transformers = pytest.importorskip("transformers")

ATOL = 1e-4


@pytest.fixture(scope="module")
def hf_bias():
    return hf_model(bias=True)


@pytest.fixture(scope="module")
def hf_nobias():
    return hf_model(bias=False, seed=1)


@pytest.fixture(scope="module")
def ids() -> torch.Tensor:
    return torch.randint(0, GPT2_VOCAB_SIZE, (2, 12), generator=torch.Generator().manual_seed(3))  # (2, 12)


def _hf_logits(hf_model, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return hf_model(ids).logits  # (B, T, 50257)


VARIANTS = [
    pytest.param(dict(bias=True, padded=True, compiled=False, mask_buffer=True), id="bias-padded-maskbuffer"),
    pytest.param(
        dict(bias=False, padded=True, compiled=True, mask_buffer=False), id="nobias-padded-compiled"
    ),
    pytest.param(
        dict(bias=True, padded=False, compiled=True, mask_buffer=True), id="bias-compiled-maskbuffer"
    ),
    pytest.param(dict(bias=False, padded=False, compiled=False, mask_buffer=True), id="nobias-maskbuffer"),
]


@pytest.mark.parametrize("variant", VARIANTS)
def test_nanogpt_checkpoint_imports_with_the_oracles_logits(
    tmp_path, hf_bias, hf_nobias, ids, variant
) -> None:
    hf = hf_bias if variant["bias"] else hf_nobias
    path = write_nanogpt_ckpt(tmp_path / "out" / "ckpt.pt", hf, **variant)
    torch.load(path, map_location="cpu", weights_only=True)  # what nanoGPT writes is plain data throughout
    imported = read_weights(path)
    model, cfg = imported.model, imported.model.cfg
    assert (imported.file_format, imported.key_style) == (FILE_FORMAT, KEY_STYLE)
    assert (cfg.vocab_size, cfg.context_length, cfg.emb_dim, cfg.n_heads, cfg.n_layers) == (
        GPT2_VOCAB_SIZE,
        N_POS,
        N_EMBD,
        N_HEAD,
        N_LAYER,
    )
    assert cfg.qkv_bias is variant["bias"] and cfg.tie_weights and cfg.name == "out"
    assert GELU_NOTE in imported.warnings
    with torch.no_grad():
        ours = model(ids)  # (B, T, 50257)
    assert ours.shape == (2, 12, GPT2_VOCAB_SIZE)
    assert (ours - _hf_logits(hf, ids)).abs().max().item() <= ATOL
    if not variant["bias"]:  # the absent biases are zeros, not uninitialised memory
        assert torch.count_nonzero(model.blocks[0].norm1.shift) == 0
        assert torch.count_nonzero(model.blocks[1].ff.fc1.bias) == 0
        assert model.blocks[0].attn.W_qkv.bias is None


def test_untied_head_of_a_fork_is_kept_and_cut_to_the_real_tokens(tmp_path, ids) -> None:
    hf = hf_model(bias=True, tied=False, seed=2)
    path = write_nanogpt_ckpt(tmp_path / "ckpt.pt", hf, padded=True)
    model = import_weights(path)
    assert not model.cfg.tie_weights and model.out_head.weight.shape == (GPT2_VOCAB_SIZE, N_EMBD)
    with torch.no_grad():
        assert (model(ids) - _hf_logits(hf, ids)).abs().max().item() <= ATOL


def test_an_out_dir_holding_ckpt_pt_is_found(tmp_path, hf_bias) -> None:
    path = write_nanogpt_ckpt(tmp_path / "out-gpt2" / "ckpt.pt", hf_bias)
    assert find_nanogpt_checkpoint(path.parent) == path
    assert find_nanogpt_checkpoint(path) == path
    plain = tmp_path / "plain.pt"
    torch.save({"tok_emb.weight": torch.zeros(3, 2)}, plain)
    assert find_nanogpt_checkpoint(plain) is None  # other .pt files go to the other importers
    assert read_weights(path.parent).key_style == KEY_STYLE


def test_cli_imports_a_nanogpt_checkpoint(tmp_path, hf_nobias, ids, capsys) -> None:
    path = write_nanogpt_ckpt(tmp_path / "ckpt.pt", hf_nobias, bias=False, compiled=True)
    out = tmp_path / "imported"
    assert cli_main(["import", str(path), "--out", str(out)]) == 0
    printed = capsys.readouterr()
    assert "nanogpt-ckpt" in printed.out and "exact (erf) GELU" in printed.err
    assert read_checkpoint_meta(out)["source_format"] == FILE_FORMAT
    with torch.no_grad():
        assert (import_weights(out)(ids) - _hf_logits(hf_nobias, ids)).abs().max().item() <= ATOL


# --- refusals: one line each ----------------------------------------------------------------------------


class _Payload:
    """Unpickling this would create a file: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _cli_error(capsys, path: Path, tmp_path: Path) -> str:
    assert cli_main(["import", str(path), "--out", str(tmp_path / "never")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("gptviz import: error: ") and "\n" not in err
    assert not (tmp_path / "never").exists()
    return err


@pytest.mark.parametrize("writer", ["torch.save", "pickle"])
def test_a_pickle_payload_is_refused_and_never_runs(tmp_path, capsys, writer) -> None:
    marker = tmp_path / "payload-ran"
    path = tmp_path / "ckpt.pt"
    payload = {"model": {"x": torch.zeros(2)}, "model_args": {"n_layer": 1}, "config": _Payload(marker)}
    if writer == "torch.save":
        torch.save(payload, path)
    else:
        with open(path, "wb") as handle:
            pickle.dump(payload, handle, protocol=2)
    err = _cli_error(capsys, path, tmp_path)
    assert "refused" in err and "code execution" in err
    assert not marker.exists()


@pytest.mark.parametrize(
    ("checkpoint", "words"),
    [
        ({"model_args": {"n_layer": 2}, "iter_num": 5}, "no 'model' state dict"),
        ({"model": {"w": torch.zeros(2)}, "model_args": [1, 2]}, "no model_args dictionary"),
        (
            {"model": {"w": torch.zeros(2)}, "model_args": {"n_layer": 2, "n_head": 4, "n_embd": 64}},
            "block_size must be a positive integer",
        ),
        (
            {
                "model": {"w": torch.zeros(2)},
                "model_args": {
                    "n_layer": 1,
                    "n_head": 1,
                    "n_embd": 8,
                    "block_size": 8,
                    "bias": False,
                    "vocab_size": 65,
                },
            },
            "65-token vocabulary",
        ),
    ],
    ids=["no-model", "model-args-not-a-dict", "model-args-incomplete", "character-vocabulary"],
)
def test_a_ckpt_pt_that_is_not_nanogpt_gets_one_line(tmp_path, capsys, checkpoint, words) -> None:
    path = tmp_path / "ckpt.pt"
    torch.save(checkpoint, path)
    assert words in _cli_error(capsys, path, tmp_path)


def test_a_nanogpt_checkpoint_whose_tensors_do_not_fit_names_them(tmp_path, hf_bias) -> None:
    path = write_nanogpt_ckpt(tmp_path / "ckpt.pt", hf_bias, extra_model_args={"n_layer": 3})
    with pytest.raises(WeightsError) as err:
        import_weights(path)
    assert "missing: blocks.2." in str(err.value) and "\n" not in str(err.value)


def test_heads_that_contradict_model_args_are_refused(tmp_path, hf_bias) -> None:
    path = write_nanogpt_ckpt(tmp_path / "ckpt.pt", hf_bias)
    with pytest.raises(WeightsError, match="model_args says 4 heads but --heads gave 8"):
        import_weights(path, n_heads=8)


def test_unknown_model_args_are_reported(tmp_path, hf_bias) -> None:
    path = write_nanogpt_ckpt(tmp_path / "ckpt.pt", hf_bias, extra_model_args={"use_rmsnorm": True})
    notes: list[str] = []
    import_weights(path, warnings=notes)
    assert any("use_rmsnorm=True" in note for note in notes)
    assert json.dumps(notes)  # plain strings, ready for the CLI and the window
