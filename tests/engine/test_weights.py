"""Own checkpoints, the book's .pth import, and every way a weight file can be refused."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from gptviz.config import GPTConfig
from gptviz.engine import checkpoint as W
from gptviz.engine.checkpoint import (
    load_checkpoint,
    model_state_for_saving,
    read_checkpoint_meta,
    save_checkpoint,
)
from gptviz.engine.importers import import_weights, read_weights
from gptviz.errors import WeightsError
from gptviz.model.book_reference import GPTModel as BookGPT
from gptviz.model.book_reference import generate_text_simple
from gptviz.model.gpt import GPTModel, generate_greedy

BOOK_CFG = {
    "vocab_size": 300,
    "context_length": 16,
    "emb_dim": 32,
    "n_heads": 4,
    "n_layers": 2,
    "drop_rate": 0.0,
    "qkv_bias": False,
}
TINY = GPTConfig(vocab_size=300, context_length=16, emb_dim=32, n_heads=4, n_layers=2, drop_rate=0.0)


def _randomise(module: torch.nn.Module, seed: int) -> None:
    """Every parameter random (biases and norm scales too), so a wrong mapping cannot hide behind 0 or 1."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.2)  # same shape as p


def _book_model(seed: int = 0, **changes) -> BookGPT:
    torch.manual_seed(seed)
    model = BookGPT({**BOOK_CFG, **changes})
    _randomise(model, seed)
    return model.eval()


def _ids(vocab: int = 300, T: int = 12, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, vocab, (2, T), generator=torch.Generator().manual_seed(seed))  # (2, T)


def _tiny_model(seed: int = 0, cfg: GPTConfig = TINY) -> GPTModel:
    torch.manual_seed(seed)
    model = GPTModel(cfg)
    _randomise(model, seed)
    return model.eval()


# --- the book's .pth -----------------------------------------------------------------------------------


def test_book_state_dict_keys_are_the_books() -> None:
    keys = set(_book_model().state_dict())
    for key in (
        "tok_emb.weight",
        "pos_emb.weight",
        "trf_blocks.0.att.W_query.weight",
        "trf_blocks.0.att.W_key.weight",
        "trf_blocks.0.att.W_value.weight",
        "trf_blocks.0.att.out_proj.bias",
        "trf_blocks.0.att.mask",
        "trf_blocks.0.ff.layers.0.weight",
        "trf_blocks.0.ff.layers.2.bias",
        "trf_blocks.0.norm1.scale",
        "trf_blocks.1.norm2.shift",
        "final_norm.shift",
        "out_head.weight",
    ):
        assert key in keys


@pytest.mark.parametrize("qkv_bias", [False, True])
def test_book_pth_round_trip_matches_logits(tmp_path: Path, qkv_bias: bool) -> None:
    book = _book_model(qkv_bias=qkv_bias)
    torch.save(book.state_dict(), tmp_path / "model.pth")
    imported = read_weights(tmp_path / "model.pth", n_heads=4)
    model = imported.model
    assert imported.key_style == "book" and imported.file_format == "torch-pickle"
    assert not model.training
    assert model.cfg.qkv_bias is qkv_bias
    assert model.cfg.tie_weights is False  # the book's out_head is its own matrix
    assert (model.cfg.emb_dim, model.cfg.n_layers, model.cfg.context_length) == (32, 2, 16)
    idx = _ids()  # (2, 12)
    with torch.no_grad():
        expected = book(idx)  # (2, 12, 300)
        assert torch.allclose(model(idx), expected, atol=1e-5)
        model.set_fused_attention(False)
        assert torch.allclose(model(idx), expected, atol=1e-5)


def test_book_generate_text_simple_equals_generate_greedy(tmp_path: Path) -> None:
    book = _book_model()
    torch.save(book.state_dict(), tmp_path / "model.pth")
    model = import_weights(tmp_path / "model.pth", n_heads=4)
    start = _ids(T=12)  # (2, 12); 8 new tokens run past the context of 16, so cropping is exercised
    expected = generate_text_simple(book, start, max_new_tokens=8, context_size=16)  # (2, 20)
    assert torch.equal(generate_greedy(model, start, 8, use_cache=True), expected)
    assert torch.equal(generate_greedy(model, start, 8, use_cache=False), expected)


def test_book_chapter5_checkpoint_dict_and_tied_head(tmp_path: Path) -> None:
    """Ch. 5 saves {"model_state_dict", "optimizer_state_dict"}; ch. 5's OpenAI loader ties out_head."""
    book = _book_model()
    with torch.no_grad():
        book.out_head.weight.copy_(book.tok_emb.weight)
    optimizer = torch.optim.AdamW(book.parameters())
    payload = {"model_state_dict": book.state_dict(), "optimizer_state_dict": optimizer.state_dict()}
    torch.save(payload, tmp_path / "model_and_optimizer.pth")
    model = import_weights(tmp_path / "model_and_optimizer.pth", n_heads=4)
    assert model.cfg.tie_weights is True
    assert model.out_head.weight is model.tok_emb.weight
    idx = _ids()  # (2, 12)
    with torch.no_grad():
        assert torch.allclose(model(idx), book(idx), atol=1e-5)


def test_book_width_without_standard_heads_needs_heads(tmp_path: Path) -> None:
    torch.save(_book_model().state_dict(), tmp_path / "model.pth")  # width 32: not a GPT-2 size
    with pytest.raises(WeightsError, match="--heads"):
        import_weights(tmp_path / "model.pth")
    assert import_weights(tmp_path / "model.pth", n_heads=4).cfg.n_heads == 4


def test_standard_width_infers_heads(tmp_path: Path) -> None:
    cfg = GPTConfig(vocab_size=8, context_length=4, emb_dim=768, n_heads=12, n_layers=1, drop_rate=0.0)
    model = GPTModel(cfg)
    save_file(model_state_for_saving(model), str(tmp_path / "w.safetensors"))
    imported = import_weights(tmp_path / "w.safetensors")
    assert imported.cfg.n_heads == 12 and imported.cfg.emb_dim == 768


def test_book_missing_projection_listed_by_name(tmp_path: Path) -> None:
    state = _book_model().state_dict()
    del state["trf_blocks.1.att.W_key.weight"]
    torch.save(state, tmp_path / "model.pth")
    with pytest.raises(WeightsError) as err:
        import_weights(tmp_path / "model.pth", n_heads=4)
    message = str(err.value)
    assert "missing: blocks.1.attn.W_qkv.weight" in message
    assert "trf_blocks.1.att.W_query.weight" in message and "trf_blocks.1.att.W_value.weight" in message


# --- own checkpoints -----------------------------------------------------------------------------------


def test_own_checkpoint_round_trip(tmp_path: Path) -> None:
    model = _tiny_model()
    save_checkpoint(model, tmp_path / "ckpt", meta={"note": "hello"})
    loaded, meta = load_checkpoint(tmp_path / "ckpt")
    assert meta == {"note": "hello"}
    assert loaded.cfg == model.cfg
    assert loaded.out_head.weight is loaded.tok_emb.weight  # still tied
    for key, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], tensor), key
    via_import = read_weights(tmp_path / "ckpt")
    assert via_import.file_format == "gptviz-checkpoint"
    idx = _ids()  # (2, 12)
    with torch.no_grad():
        assert torch.equal(via_import.model(idx), model(idx))


def test_atomic_save_keeps_old_checkpoint_when_write_fails(tmp_path: Path, monkeypatch) -> None:
    old = _tiny_model(seed=0)
    save_checkpoint(old, tmp_path / "ckpt", meta={"version": "old"})

    def broken_save_file(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(W, "save_file", broken_save_file)
    with pytest.raises(OSError):
        save_checkpoint(_tiny_model(seed=1), tmp_path / "ckpt", meta={"version": "new"})
    loaded, meta = load_checkpoint(tmp_path / "ckpt")
    assert meta == {"version": "old"}
    assert torch.equal(loaded.tok_emb.weight, old.tok_emb.weight)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]  # no staging directory left behind


def test_old_backup_is_read_when_a_save_died_between_renames(tmp_path: Path) -> None:
    model = _tiny_model()
    save_checkpoint(model, tmp_path / "ckpt")
    os.replace(tmp_path / "ckpt", tmp_path / ".ckpt.old")  # killed after moving the old one aside
    loaded, _ = load_checkpoint(tmp_path / "ckpt")
    assert torch.equal(loaded.pos_emb.weight, model.pos_emb.weight)
    assert torch.equal(import_weights(tmp_path / "ckpt").pos_emb.weight, model.pos_emb.weight)
    save_checkpoint(model, tmp_path / "ckpt")  # the next save completes and cleans up
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


def test_own_key_style_safetensors_file(tmp_path: Path) -> None:
    model = _tiny_model()
    save_file(model_state_for_saving(model), str(tmp_path / "loose.safetensors"))
    imported = read_weights(tmp_path / "loose.safetensors", n_heads=4)
    assert imported.key_style == "gptviz" and imported.model.cfg.tie_weights
    idx = _ids()  # (2, 12)
    with torch.no_grad():
        assert torch.allclose(imported.model(idx), model(idx), atol=1e-6)


# --- refusals ------------------------------------------------------------------------------------------


class _Payload:
    """Unpickling this would create a file: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize("writer", ["torch.save", "pickle"])
def test_pickle_with_code_is_refused_and_never_runs(tmp_path: Path, writer: str) -> None:
    marker = tmp_path / "payload-ran"
    path = tmp_path / "evil.pth"
    if writer == "torch.save":
        torch.save({"tok_emb.weight": torch.zeros(3, 2), "trojan": _Payload(marker)}, path)
    else:  # a legacy raw pickle, as old .bin files were
        with open(path, "wb") as handle:
            pickle.dump({"trojan": _Payload(marker)}, handle, protocol=2)
    with pytest.raises(WeightsError) as err:
        import_weights(path)
    assert not marker.exists()
    message = str(err.value)
    assert "refused" in message and "code execution" in message and "open" in message
    assert "\n" not in message


def test_truncated_safetensors_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    save_file(model_state_for_saving(_tiny_model()), str(path))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match="damaged or truncated"):
        import_weights(path, n_heads=4)
    path.write_bytes(data[:40])  # cut inside the header
    with pytest.raises(WeightsError, match="not a model file|damaged or truncated"):
        import_weights(path, n_heads=4)


def test_damaged_checkpoint_weights_are_refused(tmp_path: Path) -> None:
    save_checkpoint(_tiny_model(), tmp_path / "ckpt")
    weights = tmp_path / "ckpt" / W.WEIGHTS_FILE
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(WeightsError, match="damaged"):
        import_weights(tmp_path / "ckpt")


def test_wrong_shapes_missing_and_unexpected_listed_by_name(tmp_path: Path) -> None:
    state = model_state_for_saving(_tiny_model())
    state["blocks.1.ff.fc1.bias"] = torch.zeros(7)  # wrong shape
    del state["blocks.0.norm1.scale"]  # missing
    state["blocks.0.attn.rotary"] = torch.zeros(3)  # unexpected
    save_file(state, str(tmp_path / "bad.safetensors"))
    with pytest.raises(WeightsError) as err:
        import_weights(tmp_path / "bad.safetensors", n_heads=4)
    message = str(err.value)
    assert "missing: blocks.0.norm1.scale" in message
    assert "unexpected: blocks.0.attn.rotary" in message
    assert "wrong shape: blocks.1.ff.fc1.bias (7,) (expected (128,))" in message


def test_text_file_is_refused(tmp_path: Path) -> None:
    for name in ("notes.txt", "model.pth", "model.safetensors", "pytorch_model.bin"):
        path = tmp_path / name
        path.write_text("these are not the weights you are looking for\n")
        with pytest.raises(WeightsError, match="not a model file"):
            import_weights(path)


def test_pickle_without_tensors_is_refused(tmp_path: Path) -> None:
    torch.save({"epoch": 3, "lr": 0.1}, tmp_path / "state.pth")
    with pytest.raises(WeightsError, match="no state dict"):
        import_weights(tmp_path / "state.pth")
    save_file({"foo.bar": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(WeightsError, match="does not look like GPT-2 weights"):
        import_weights(tmp_path / "other.safetensors")


def test_missing_path_and_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="not found"):
        import_weights(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(WeightsError, match="holds no weights"):
        import_weights(tmp_path / "empty")


def test_nan_weights_are_warned(tmp_path: Path, caplog) -> None:
    state = model_state_for_saving(_tiny_model())
    state["blocks.0.ff.fc2.weight"][0, 0] = float("nan")
    state["final_norm.shift"][1] = float("inf")
    save_file(state, str(tmp_path / "nan.safetensors"))
    notes: list[str] = []
    with caplog.at_level("WARNING", logger="gptviz.engine.importers"):
        model = import_weights(tmp_path / "nan.safetensors", n_heads=4, warnings=notes)
    assert len(notes) == 1
    assert "NaN or infinite" in notes[0]
    assert "blocks.0.ff.fc2.weight" in notes[0] and "final_norm.shift" in notes[0]
    assert notes[0] in caplog.text
    assert torch.isnan(model.blocks[0].ff.fc2.weight[0, 0])

    save_checkpoint(model, tmp_path / "ckpt")  # a checkpoint that diverged is loaded, with the same warning
    notes.clear()
    import_weights(tmp_path / "ckpt", warnings=notes)
    assert len(notes) == 1 and "blocks.0.ff.fc2.weight" in notes[0]


def test_checkpoint_meta_is_kept(tmp_path: Path) -> None:
    save_checkpoint(_tiny_model(), tmp_path / "ckpt", meta={"source": "x"})
    assert read_checkpoint_meta(tmp_path / "ckpt") == {"source": "x"}


def test_a_key_with_a_line_break_still_makes_a_one_line_error() -> None:
    """Found by the fuzz test: a nanoGPT file whose key held a newline gave a two-line error."""
    from gptviz.engine.checkpoint import check_state_dict
    from gptviz.errors import WeightsError

    model = GPTModel(
        GPTConfig(vocab_size=64, context_length=8, emb_dim=8, n_heads=2, n_layers=1, drop_rate=0.0)
    )
    state = dict(model.state_dict())
    state["blocks.0.at\ntn.extra"] = torch.zeros(1)
    with pytest.raises(WeightsError) as caught:
        check_state_dict(model, state, "ckpt.pt\r")
    message = str(caught.value)
    assert "\n" not in message and "\r" not in message
    assert "blocks.0.at\\ntn.extra" in message and "ckpt.pt\\r" in message


def test_every_gptviz_error_is_one_line() -> None:
    from gptviz.errors import ConfigError, DataError, GptvizError

    for kind in (GptvizError, ConfigError, DataError, WeightsError):
        assert str(kind("tensors: a\nb, c\rd")) == "tensors: a\\nb, c\\rd"
