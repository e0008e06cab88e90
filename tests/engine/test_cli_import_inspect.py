"""`gptviz import` and `gptviz inspect` through gptviz.cli.main, as a user would run them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import gptviz.resources
from gptviz.cli import main
from gptviz.config import GPTConfig
from gptviz.engine.checkpoint import load_checkpoint, save_checkpoint
from gptviz.model import capture
from gptviz.model.book_reference import GPTModel as BookGPT
from gptviz.model.gpt import GPTModel
from gptviz.tokenizer import default_tokenizer

CFG = GPTConfig(vocab_size=50257, context_length=16, emb_dim=32, n_heads=4, n_layers=2, drop_rate=0.0)
PROMPT = "Every effort moves you"


def _randomise(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.2)  # same shape as p
    return model.eval()


@pytest.fixture
def checkpoint(tmp_path: Path) -> tuple[Path, GPTModel]:
    torch.manual_seed(0)
    model = _randomise(GPTModel(CFG))
    return save_checkpoint(model, tmp_path / "ckpt"), model


def _one_line_error(capsys, command: str) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"gptviz {command}: error: ")
    assert "Traceback" not in err
    return lines[0]


def test_import_book_pth_writes_checkpoint(tmp_path: Path, capsys) -> None:
    torch.manual_seed(0)
    book = _randomise(
        BookGPT(
            {
                "vocab_size": 50257,
                "context_length": 16,
                "emb_dim": 32,
                "n_heads": 4,
                "n_layers": 2,
                "drop_rate": 0.0,
                "qkv_bias": True,
            }
        )
    )
    torch.save(book.state_dict(), tmp_path / "book.pth")
    rc = main(["import", str(tmp_path / "book.pth"), "--out", str(tmp_path / "ckpt"), "--heads", "4"])
    out = capsys.readouterr().out
    assert rc == 0
    assert len(out.strip().splitlines()) == 1
    assert "2 layers, 4 heads, width 32" in out and "book keys" in out
    model, meta = load_checkpoint(tmp_path / "ckpt")
    assert meta["source"] == str((tmp_path / "book.pth").resolve())
    assert meta["source_format"] == "torch-pickle" and meta["key_style"] == "book"
    idx = torch.tensor([default_tokenizer().encode(PROMPT)])  # (1, 4)
    with torch.no_grad():
        assert torch.allclose(model(idx), book(idx), atol=1e-5)


def test_import_without_heads_is_one_line_error(tmp_path: Path, capsys) -> None:
    torch.save(_randomise(GPTModel(CFG)).state_dict(), tmp_path / "w.pth")
    assert main(["import", str(tmp_path / "w.pth"), "--out", str(tmp_path / "ckpt")]) == 1
    assert "--heads" in _one_line_error(capsys, "import")
    assert not (tmp_path / "ckpt").exists()


@pytest.mark.parametrize(
    "make",
    [
        lambda p: p / "missing.safetensors",
        lambda p: (p / "notes.txt").write_text("not weights") and p / "notes.txt",
        lambda p: (
            (p / "bad.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{trunc")
            and p / "bad.safetensors"
        ),
    ],
    ids=["missing", "text", "truncated"],
)
def test_import_bad_input_is_one_line_error(tmp_path: Path, capsys, make) -> None:
    assert main(["import", str(make(tmp_path)), "--out", str(tmp_path / "ckpt")]) == 1
    _one_line_error(capsys, "import")


def test_inspect_writes_the_contract(checkpoint, tmp_path: Path, capsys) -> None:
    ckpt, model = checkpoint
    out_file = tmp_path / "out" / "run.npz"
    assert main(["inspect", str(ckpt), "--prompt", PROMPT, "--out", str(out_file)]) == 0
    assert "4 tokens, 2 layers x 4 heads" in capsys.readouterr().out
    with np.load(out_file) as data:
        arrays = {k: data[k] for k in data.files}
    assert sorted(arrays) == ["attention", "hidden", "logits", "token_ids"]
    ids = default_tokenizer().encode(PROMPT)
    T, L, H, D, V = len(ids), CFG.n_layers, CFG.n_heads, CFG.emb_dim, CFG.vocab_size
    assert arrays["token_ids"].dtype == np.int64 and arrays["token_ids"].tolist() == ids
    assert arrays["logits"].dtype == np.float32 and arrays["logits"].shape == (T, V)
    assert arrays["attention"].dtype == np.float32 and arrays["attention"].shape == (L, H, T, T)
    assert arrays["hidden"].dtype == np.float32 and arrays["hidden"].shape == (L + 1, T, D)
    np.testing.assert_allclose(arrays["attention"].sum(axis=-1), 1.0, atol=1e-5)
    assert np.all(np.triu(arrays["attention"], k=1) == 0.0)  # causal: no weight on later tokens

    idx = torch.tensor([ids])  # (1, T)
    with torch.no_grad(), capture(model) as taps:
        logits = model(idx)  # (1, T, V)
    np.testing.assert_allclose(arrays["logits"], logits[0].numpy(), atol=1e-5)
    for i in range(L):
        np.testing.assert_allclose(
            arrays["attention"][i], taps[f"blocks.{i}.attn.hook_weights"][0], atol=1e-6
        )
        np.testing.assert_allclose(arrays["hidden"][i + 1], taps[f"blocks.{i}.hook_resid_post"][0], atol=1e-5)
    np.testing.assert_allclose(arrays["hidden"][0], taps["hook_embed"][0], atol=1e-6)
    assert not np.allclose(arrays["hidden"][L], taps["hook_final_norm"][0].numpy(), atol=1e-3)


def test_inspect_crops_long_prompt_with_a_note(checkpoint, tmp_path: Path, capsys) -> None:
    ckpt, _ = checkpoint
    prompt = " ".join(f"word{i}" for i in range(30))
    ids = default_tokenizer().encode(prompt)
    assert len(ids) > CFG.context_length
    assert main(["inspect", str(ckpt), "--prompt", prompt, "--out", str(tmp_path / "a.npz")]) == 0
    err = capsys.readouterr().err
    assert f"cropped {len(ids) - CFG.context_length}" in err
    with np.load(tmp_path / "a.npz") as data:
        assert data["token_ids"].tolist() == ids[-CFG.context_length :]
        assert data["attention"].shape[-1] == CFG.context_length


def test_inspect_empty_prompt_is_one_line_error(checkpoint, tmp_path: Path, capsys) -> None:
    ckpt, _ = checkpoint
    assert main(["inspect", str(ckpt), "--prompt", "", "--out", str(tmp_path / "a.npz")]) == 1
    assert "prompt is empty" in _one_line_error(capsys, "inspect")
    assert not (tmp_path / "a.npz").exists()


def test_inspect_missing_checkpoint_is_one_line_error(tmp_path: Path, capsys) -> None:
    assert main(["inspect", str(tmp_path / "none"), "--prompt", "hi", "--out", str(tmp_path / "a.npz")]) == 1
    _one_line_error(capsys, "inspect")


def test_inspect_demo(checkpoint, tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setattr(gptviz.resources, "DEMO_MODEL_DIR", tmp_path / "no-demo")
    assert main(["inspect", "demo", "--prompt", "hi", "--out", str(tmp_path / "a.npz")]) == 1
    assert "demo model is not installed" in _one_line_error(capsys, "inspect")
    ckpt, _ = checkpoint
    monkeypatch.setattr(gptviz.resources, "DEMO_MODEL_DIR", ckpt)
    assert main(["inspect", "demo", "--prompt", "hi", "--out", str(tmp_path / "a.npz")]) == 0
    assert (tmp_path / "a.npz").is_file()


def test_inspect_failed_write_keeps_old_file(checkpoint, tmp_path: Path, monkeypatch, capsys) -> None:
    ckpt, _ = checkpoint
    target = tmp_path / "a.npz"
    target.write_bytes(b"previous result")

    def broken_savez(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", broken_savez)
    assert main(["inspect", str(ckpt), "--prompt", PROMPT, "--out", str(target)]) == 1
    assert "No space left on device" in _one_line_error(capsys, "inspect")
    assert target.read_bytes() == b"previous result"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npz", "ckpt"]  # no temporary file left


def test_inspect_vocab_too_small_is_one_line_error(tmp_path: Path, capsys) -> None:
    small = GPTModel(CFG.replace(vocab_size=100))
    ckpt = save_checkpoint(small, tmp_path / "small")
    assert main(["inspect", str(ckpt), "--prompt", PROMPT, "--out", str(tmp_path / "a.npz")]) == 1
    assert "outside the model's vocabulary of 100" in _one_line_error(capsys, "inspect")
