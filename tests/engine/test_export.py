"""Export to Hugging Face and the book: transformers' from_pretrained and the book's GPTModel are the oracles
(equal logits), export then import gives the same weights, and writes are atomic and careful."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from gptviz.cli import main as cli_main
from gptviz.config import GPTConfig
from gptviz.engine import export as E
from gptviz.engine.checkpoint import model_state_for_saving, save_checkpoint
from gptviz.engine.export import book_config, export_book, export_hf, export_model
from gptviz.engine.importers import import_weights
from gptviz.errors import WeightsError
from gptviz.model.book_reference import GPTModel as BookGPT
from gptviz.model.gpt import GPTModel

transformers = pytest.importorskip("transformers")

ATOL = 1e-4
TIE_AND_BIAS = [
    pytest.param(True, True, id="tied-qkvbias"),
    pytest.param(True, False, id="tied-noqkvbias"),
    pytest.param(False, True, id="untied-qkvbias"),
    pytest.param(False, False, id="untied-noqkvbias"),
]


def _model(tied: bool, qkv_bias: bool, seed: int = 0) -> GPTModel:
    """A small GPT with every parameter random (biases and norm scales too), so no wrong mapping hides."""
    cfg = GPTConfig(
        context_length=32,
        emb_dim=64,
        n_heads=4,
        n_layers=2,
        drop_rate=0.0,
        qkv_bias=qkv_bias,
        tie_weights=tied,
        name="export-test",
    )
    torch.manual_seed(seed)
    model = GPTModel(cfg)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.2)  # same shape as p
    return model.eval()


@pytest.fixture(scope="module")
def ids() -> torch.Tensor:
    return torch.randint(0, 50257, (2, 13), generator=torch.Generator().manual_seed(5))  # (2, 13)


def _logits(model: torch.nn.Module, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        out = model(ids)
    return out.logits if hasattr(out, "logits") else out  # (B, T, V)


# --- Hugging Face -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("tied", "qkv_bias"), TIE_AND_BIAS)
def test_hf_export_loads_in_transformers_with_equal_logits(tmp_path, ids, tied, qkv_bias) -> None:
    model = _model(tied, qkv_bias)
    folder = export_hf(model, tmp_path / "hf")
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    hf, info = transformers.GPT2LMHeadModel.from_pretrained(
        folder, attn_implementation="eager", output_loading_info=True
    )
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    hf.eval()
    shares = hf.lm_head.weight.data_ptr() == hf.transformer.wte.weight.data_ptr()
    assert shares is tied
    if not qkv_bias:  # HF always has a c_attn bias: written as zeros
        assert torch.count_nonzero(hf.transformer.h[0].attn.c_attn.bias) == 0
    assert (_logits(hf, ids) - _logits(model, ids)).abs().max().item() <= ATOL


@pytest.mark.parametrize(("tied", "qkv_bias"), TIE_AND_BIAS)
def test_hf_export_then_import_gives_identical_weights(tmp_path, tied, qkv_bias) -> None:
    model = _model(tied, qkv_bias, seed=1)
    back = import_weights(export_hf(model, tmp_path / "hf"))
    assert back.cfg.tie_weights is tied
    theirs = model_state_for_saving(back)
    for key, tensor in model_state_for_saving(model).items():
        assert torch.equal(theirs.pop(key), tensor), key
    if qkv_bias:
        assert not theirs
    else:  # the zeros HF needs come back as a q/k/v bias of zeros: the same arithmetic
        assert back.cfg.qkv_bias and set(theirs) == {"blocks.0.attn.W_qkv.bias", "blocks.1.attn.W_qkv.bias"}
        assert all(torch.count_nonzero(t) == 0 for t in theirs.values())


def test_hf_config_says_what_gptviz_computes(tmp_path) -> None:
    folder = export_hf(_model(True, False), tmp_path / "hf")
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == "gpt2" and config["activation_function"] == "gelu_new"
    assert (config["n_embd"], config["n_layer"], config["n_head"], config["n_positions"]) == (64, 2, 4, 32)
    assert config["layer_norm_epsilon"] == 1e-5 and config["tie_word_embeddings"] is True


def test_hf_export_replaces_an_earlier_export_and_refuses_a_folder_with_other_files(tmp_path) -> None:
    folder = tmp_path / "hf"
    export_hf(_model(True, True, seed=0), folder)
    export_hf(_model(True, True, seed=2), folder)  # an earlier export is replaced
    assert torch.equal(import_weights(folder).tok_emb.weight, _model(True, True, seed=2).tok_emb.weight)
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(WeightsError, match=r"holds other files \(notes.txt\)"):
        export_hf(_model(True, True), folder)
    assert (folder / "notes.txt").read_text() == "mine"


def test_a_failed_hf_export_leaves_the_previous_one_and_no_staging(tmp_path, monkeypatch) -> None:
    folder = tmp_path / "hf"
    export_hf(_model(True, True, seed=0), folder)
    before = (folder / "model.safetensors").read_bytes()

    def disk_full(*_args, **_kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(E, "save_file", disk_full)
    with pytest.raises(OSError):
        export_hf(_model(True, True, seed=3), folder)
    assert (folder / "model.safetensors").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hf"]


# --- the book ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("tied", "qkv_bias"), TIE_AND_BIAS)
def test_book_export_loads_into_the_books_model_with_equal_logits(tmp_path, ids, tied, qkv_bias) -> None:
    model = _model(tied, qkv_bias, seed=4)
    path = export_book(model, tmp_path / "model.pth")
    book = BookGPT(book_config(model.cfg))
    book.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))  # strict: every name fits
    book.eval()
    assert (_logits(book, ids) - _logits(model, ids)).abs().max().item() <= ATOL


@pytest.mark.parametrize(("tied", "qkv_bias"), TIE_AND_BIAS)
def test_book_export_then_import_gives_identical_weights(tmp_path, tied, qkv_bias) -> None:
    model = _model(tied, qkv_bias, seed=5)
    back = import_weights(export_book(model, tmp_path / "model.pth"), n_heads=4)
    assert (back.cfg.tie_weights, back.cfg.qkv_bias) == (tied, qkv_bias)
    ours, theirs = model_state_for_saving(model), model_state_for_saving(back)
    assert set(ours) == set(theirs)
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)


def test_book_export_refuses_a_folder_and_unknown_formats_are_refused(tmp_path) -> None:
    with pytest.raises(WeightsError, match="is a folder"):
        export_book(_model(True, False), tmp_path)
    with pytest.raises(WeightsError, match="unknown export format 'onnx'"):
        export_model(_model(True, False), "onnx", tmp_path / "x")


# --- the command --------------------------------------------------------------------------------------------


def test_cli_export_hf_and_book(tmp_path, ids, capsys) -> None:
    model = _model(False, True, seed=6)
    ckpt = save_checkpoint(model, tmp_path / "ckpt")
    assert cli_main(["export", str(ckpt), "--format", "hf", "--out", str(tmp_path / "hf")]) == 0
    hf = transformers.GPT2LMHeadModel.from_pretrained(tmp_path / "hf", attn_implementation="eager").eval()
    assert (_logits(hf, ids) - _logits(model, ids)).abs().max().item() <= ATOL
    assert cli_main(["export", str(ckpt), "--format", "book", "--out", str(tmp_path / "book.pth")]) == 0
    printed = capsys.readouterr().out
    assert "head untied, q/k/v bias on" in printed
    config = json.loads(printed.rsplit("GPTModel(cfg): ", 1)[1])
    book = BookGPT(config)
    book.load_state_dict(torch.load(tmp_path / "book.pth", weights_only=True))
    assert (_logits(book.eval(), ids) - _logits(model, ids)).abs().max().item() <= ATOL


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["export", "{tmp}/missing", "--format", "hf", "--out", "{tmp}/out"], "weights not found"),
        (["export", "{tmp}/ckpt", "--format", "book", "--out", "{tmp}"], "is a folder"),
    ],
    ids=["missing-checkpoint", "book-into-a-folder"],
)
def test_cli_export_bad_input_is_one_line(tmp_path, capsys, argv, words) -> None:
    save_checkpoint(_model(True, True), tmp_path / "ckpt")
    assert cli_main([a.replace("{tmp}", str(tmp_path)) for a in argv]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("gptviz export: error: ") and words in err and "\n" not in err
    assert not Path(tmp_path / "out").exists()
