"""Hugging Face transformers' GPT-2 as the oracle: imported weights must give the same numbers everywhere.

One randomly initialised GPT2LMHeadModel (every parameter random, biases and norms included) is built once
per module, because importing transformers is slow; each test writes it in one of the on-disk layouts.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from gptviz.engine.importers import import_weights, read_weights
from gptviz.errors import WeightsError
from gptviz.model import capture
from gptviz.model.gpt import generate_greedy

transformers = pytest.importorskip("transformers")

N_EMBD, N_LAYER, N_HEAD, N_POS, VOCAB = 64, 2, 4, 32, 50257
ATOL = 1e-4


@pytest.fixture(scope="module")
def hf_model():
    config = transformers.GPT2Config(
        n_embd=N_EMBD,
        n_layer=N_LAYER,
        n_head=N_HEAD,
        n_positions=N_POS,
        vocab_size=VOCAB,
        attn_implementation="eager",  # the path that returns per-layer attention weights
    )
    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel(config)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():  # lm_head is tied to wte, so it follows
            noise = torch.randn(p.shape, generator=gen)  # same shape as p
            is_norm_scale = ".ln_" in name or name.startswith("transformer.ln_f")
            p.copy_(1.0 + 0.2 * noise if is_norm_scale and name.endswith("weight") else 0.3 * noise)
    return model.eval()


@pytest.fixture(scope="module")
def hf_folder(hf_model, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("hf") / "gpt2-small-random"
    hf_model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def ids() -> torch.Tensor:
    return torch.randint(0, VOCAB, (2, 14), generator=torch.Generator().manual_seed(1))  # (2, 14)


@pytest.fixture(scope="module")
def hf_outputs(hf_model, ids):
    """HF's logits, attentions, hidden states, plus the last block's output before ln_f (via a hook)."""
    seen = {}
    handle = hf_model.transformer.h[-1].register_forward_hook(
        lambda _m, _inp, out: seen.__setitem__("last", out[0] if isinstance(out, tuple) else out)
    )
    try:
        with torch.no_grad():
            out = hf_model(ids, output_attentions=True, output_hidden_states=True)
    finally:
        handle.remove()
    return out, seen["last"]


def _assert_matches_hf(model, ids, hf_outputs) -> None:
    out, last_block = hf_outputs
    with torch.no_grad():
        assert torch.allclose(model(ids), out.logits, atol=ATOL)  # fused attention path
        with capture(model) as taps:
            logits = model(ids)  # (2, 14, V), explicit path: the taps want the weights
    assert torch.allclose(logits, out.logits, atol=ATOL)
    assert len(out.attentions) == N_LAYER and len(out.hidden_states) == N_LAYER + 1
    assert out.attentions[-1][:, :, -1].max() > 0.3  # sharp enough that a wrong head split would show
    for i in range(N_LAYER):
        assert torch.allclose(taps[f"blocks.{i}.attn.hook_weights"], out.attentions[i], atol=ATOL), i
    # HF hidden_states: embeddings, after blocks 0..L-2, then ln_f(after block L-1).
    assert torch.allclose(taps["hook_embed"], out.hidden_states[0], atol=ATOL)
    for i in range(N_LAYER - 1):
        assert torch.allclose(taps[f"blocks.{i}.hook_resid_post"], out.hidden_states[i + 1], atol=ATOL), i
    assert torch.allclose(taps[f"blocks.{N_LAYER - 1}.hook_resid_post"], last_block, atol=ATOL)
    assert torch.allclose(taps["hook_final_norm"], out.hidden_states[N_LAYER], atol=ATOL)


def test_save_pretrained_folder_matches_hf(hf_folder, ids, hf_outputs) -> None:
    assert "transformer.h.0.attn.c_attn.weight" in load_file(str(hf_folder / "model.safetensors"))
    imported = read_weights(hf_folder)
    assert imported.key_style == "hf-transformers" and imported.file_format == "safetensors"
    cfg = imported.model.cfg
    assert (cfg.emb_dim, cfg.n_layers, cfg.n_heads, cfg.context_length, cfg.vocab_size) == (
        N_EMBD,
        N_LAYER,
        N_HEAD,
        N_POS,
        VOCAB,
    )
    assert cfg.qkv_bias and cfg.tie_weights and cfg.drop_rate == 0.0
    assert not imported.model.training
    assert imported.model.out_head.weight is imported.model.tok_emb.weight
    _assert_matches_hf(imported.model, ids, hf_outputs)


def test_hub_bare_keys_with_mask_buffers(hf_folder, ids, hf_outputs, tmp_path) -> None:
    """The Hub's model.safetensors: no "transformer." prefix, old attn.bias / masked_bias buffers inside."""
    state = load_file(str(hf_folder / "model.safetensors"))
    bare = {k.removeprefix("transformer."): v for k, v in state.items()}
    for i in range(N_LAYER):
        bare[f"h.{i}.attn.bias"] = torch.tril(torch.ones(N_POS, N_POS)).view(1, 1, N_POS, N_POS)
        bare[f"h.{i}.attn.masked_bias"] = torch.tensor(-1e4)
    folder = tmp_path / "hub"
    folder.mkdir()
    save_file(bare, str(folder / "model.safetensors"))
    shutil.copy(hf_folder / "config.json", folder / "config.json")
    imported = read_weights(folder)
    assert imported.key_style == "hf-hub"
    _assert_matches_hf(imported.model, ids, hf_outputs)

    # the file alone, away from its config.json: shapes decide, but width 64 does not say how many heads
    lone = tmp_path / "lone" / "model.safetensors"
    lone.parent.mkdir()
    shutil.copy(folder / "model.safetensors", lone)
    with pytest.raises(WeightsError, match="--heads"):
        import_weights(lone)
    _assert_matches_hf(import_weights(lone, n_heads=N_HEAD), ids, hf_outputs)


def test_pytorch_model_bin_with_tied_lm_head(hf_model, hf_folder, ids, hf_outputs, tmp_path) -> None:
    folder = tmp_path / "bin"
    folder.mkdir()
    state = hf_model.state_dict()
    assert "lm_head.weight" in state  # tied: equal to wte, so it is dropped
    torch.save(state, folder / "pytorch_model.bin")
    shutil.copy(hf_folder / "config.json", folder / "config.json")
    imported = read_weights(folder)
    assert imported.file_format == "torch-pickle" and imported.model.cfg.tie_weights
    _assert_matches_hf(imported.model, ids, hf_outputs)


def test_untied_lm_head_is_kept(hf_model, tmp_path) -> None:
    state = {k: v.clone() for k, v in hf_model.state_dict().items()}
    state["lm_head.weight"] = state["lm_head.weight"] + 1.0
    torch.save(state, tmp_path / "untied.bin")
    model = import_weights(tmp_path / "untied.bin", n_heads=N_HEAD)
    assert model.cfg.tie_weights is False
    assert torch.equal(model.out_head.weight, state["lm_head.weight"])


def test_config_json_conflicts_and_other_models(hf_folder, tmp_path) -> None:
    with pytest.raises(WeightsError, match="config.json says 4 heads"):
        import_weights(hf_folder, n_heads=8)
    folder = tmp_path / "llama"
    shutil.copytree(hf_folder, folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "model_type": "llama"}))
    with pytest.raises(WeightsError, match="only GPT-2"):
        import_weights(folder)


def test_greedy_ids_equal_hf(hf_model, hf_folder) -> None:
    model = import_weights(hf_folder)
    start = torch.tensor([[464, 1893, 286, 262, 995]])  # (1, 5)
    with torch.no_grad():
        expected = hf_model.generate(
            start,
            attention_mask=torch.ones_like(start),
            max_new_tokens=8,
            do_sample=False,
            pad_token_id=0,
        )  # (1, 13)
    assert torch.equal(generate_greedy(model, start, 8, use_cache=True), expected)
    assert torch.equal(generate_greedy(model, start, 8, use_cache=False), expected)
