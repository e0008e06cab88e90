"""`gptviz generate` contract: exact JSON keys, ids, determinism, exit codes, one-line errors."""

from __future__ import annotations

import json

import pytest
import torch

from gptviz.cli import main
from gptviz.config import GPTConfig
from gptviz.engine.checkpoint import save_checkpoint
from gptviz.model.gpt import GPTModel, generate_greedy
from gptviz.tokenizer import END_OF_TEXT_ID, default_tokenizer

PROMPT = "Every effort moves you"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    cfg = GPTConfig(context_length=16, emb_dim=32, n_heads=4, n_layers=2, drop_rate=0.0, name="cli-test")
    model = GPTModel(cfg).eval()
    with torch.no_grad():
        model.out_head.weight.mul_(20.0)  # sharper than the random init: no near-ties for greedy
        model.out_head.weight[END_OF_TEXT_ID] = 0.0  # logit 0, far below the greedy choice: no early stop
    directory = tmp_path_factory.mktemp("ckpt") / "checkpoint"
    save_checkpoint(model, directory)
    return directory, model


def generate_json(capsys, *args: str) -> dict:
    assert main(["generate", *args, "--json"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    return json.loads(out)


def test_json_contract_greedy(checkpoint, capsys):
    directory, model = checkpoint
    tok = default_tokenizer()
    data = generate_json(capsys, str(directory), "--prompt", PROMPT, "--max-new-tokens", "20")
    assert list(data) == ["prompt_ids", "new_ids", "text"]
    assert data["prompt_ids"] == tok.encode(PROMPT)
    assert len(data["new_ids"]) == 20
    assert all(isinstance(i, int) for i in data["new_ids"])
    expected = generate_greedy(model, torch.tensor([tok.encode(PROMPT)]), 20, use_cache=False)[0].tolist()
    assert data["prompt_ids"] + data["new_ids"] == expected  # default temperature is 0: greedy
    assert data["text"] == tok.decode(expected)
    assert data["text"].startswith(PROMPT)


def test_no_cache_and_seeded_sampling_give_the_same_ids(checkpoint, capsys):
    directory, _ = checkpoint
    common = [str(directory), "--prompt", PROMPT, "--max-new-tokens", "20"]
    sampled = ["--temperature", "1.0", "--top-k", "0", "--top-p", "0.95", "--seed", "7"]
    a = generate_json(capsys, *common, *sampled)
    b = generate_json(capsys, *common, *sampled, "--no-cache")
    c = generate_json(capsys, *common, *sampled[:-1], "8")
    assert a == b
    assert a["new_ids"] != c["new_ids"]
    assert generate_json(capsys, *common) == generate_json(capsys, *common, "--no-cache")


def test_zero_new_tokens(checkpoint, capsys):
    directory, _ = checkpoint
    data = generate_json(capsys, str(directory), "--prompt", PROMPT, "--max-new-tokens", "0")
    assert data == {"prompt_ids": default_tokenizer().encode(PROMPT), "new_ids": [], "text": PROMPT}


def test_plain_output_prints_the_text(checkpoint, capsys):
    directory, _ = checkpoint
    data = generate_json(capsys, str(directory), "--prompt", PROMPT, "--max-new-tokens", "8")
    assert main(["generate", str(directory), "--prompt", PROMPT, "--max-new-tokens", "8"]) == 0
    assert capsys.readouterr().out == data["text"] + "\n"


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--temperature", "-1"], "temperature"),
        (["--top-p", "0"], "top_p"),
        (["--top-k", "-3"], "top_k"),
        (["--max-new-tokens", "-1"], "max-new-tokens"),
        (["--prompt", ""], "empty"),
    ],
)
def test_bad_settings_exit_1_with_one_line(checkpoint, capsys, args, fragment):
    directory, _ = checkpoint
    assert main(["generate", str(directory), "--prompt", PROMPT, *args, "--json"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and captured.err.startswith("gptviz generate: error:")
    assert fragment in captured.err


def test_bad_checkpoint_exits_1_with_one_line(tmp_path, capsys):
    for target in (tmp_path / "missing", tmp_path):
        assert main(["generate", str(target), "--prompt", PROMPT, "--json"]) == 1
        captured = capsys.readouterr()
        assert captured.out == ""
        assert captured.err.count("\n") == 1 and captured.err.startswith("gptviz generate: error:")
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / "config.json").write_text("{not json")
    assert main(["generate", str(damaged), "--prompt", PROMPT]) == 1
    assert capsys.readouterr().err.count("\n") == 1


def test_missing_prompt_is_a_usage_error(checkpoint, capsys):
    directory, _ = checkpoint
    with pytest.raises(SystemExit) as exc:
        main(["generate", str(directory), "--json"])
    assert exc.value.code == 2


def test_demo_names_the_bundled_checkpoint():
    from gptviz.commands.generate import resolve_checkpoint
    from gptviz.resources import DEMO_MODEL_DIR

    assert resolve_checkpoint("demo") == str(DEMO_MODEL_DIR)
    assert resolve_checkpoint("runs/x/checkpoint") == "runs/x/checkpoint"
