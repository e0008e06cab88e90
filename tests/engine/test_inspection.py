"""InspectionSnapshot against oracles: capture() on the same model, torch norms, LayerNorm's formula, softmax."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gptviz.config import GPTConfig, preset
from gptviz.engine.inspection import (
    THUMBNAIL_SIZE,
    InspectionSnapshot,
    _pack14,
    _unpack14,
    inspect_tokens,
    snapshot_nbytes,
)
from gptviz.errors import ConfigError
from gptviz.model import GPTModel
from gptviz.model.hooks import capture
from gptviz.tokenizer import default_tokenizer

CFG = GPTConfig(context_length=32, emb_dim=32, n_heads=4, n_layers=2, drop_rate=0.0)
TEXT = "Every effort moves you forward, said the old man to the crowd in the square."
FP16_RTOL = 1e-3  # float16 keeps 11 significant bits: relative error <= 2^-11 ~ 4.9e-4
FP16_ATOL = 1e-7  # below 6.1e-5 float16 is subnormal: absolute error <= 2^-25 ~ 3e-8


@pytest.fixture(scope="module")
def tokenizer():
    return default_tokenizer()


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return GPTModel(CFG).eval()


@pytest.fixture(scope="module")
def ids(tokenizer):
    return tokenizer.encode(TEXT)


def run_taps(model: GPTModel, ids: list[int], names) -> dict[str, torch.Tensor]:
    with torch.no_grad(), capture(model, names) as taps:
        model(torch.tensor([ids]))  # (1, T, V)
    return taps


def test_attention_equals_a_direct_capture_within_fp16_and_rows_sum_to_one(model, tokenizer, ids):
    snap = inspect_tokens(model, tokenizer, ids)
    taps = run_taps(model, ids, r"blocks\.\d+\.attn\.hook_weights")
    expected = torch.stack([taps[f"blocks.{i}.attn.hook_weights"][0] for i in range(CFG.n_layers)]).numpy()
    dense = np.asarray(snap.attention)  # (L, H, T, T)
    T = len(ids)
    assert snap.attention.shape == dense.shape == (CFG.n_layers, CFG.n_heads, T, T)
    np.testing.assert_allclose(dense, expected, rtol=FP16_RTOL, atol=FP16_ATOL)
    np.testing.assert_allclose(dense.sum(axis=-1), 1.0, atol=1e-3)
    assert np.all(dense[..., np.triu_indices(T, k=1)[0], np.triu_indices(T, k=1)[1]] == 0.0)


def test_attention_index_forms_agree(model, tokenizer, ids):
    maps = inspect_tokens(model, tokenizer, ids).attention
    dense = np.asarray(maps)
    np.testing.assert_array_equal(maps[1, 2], dense[1, 2])
    np.testing.assert_array_equal(maps.head(1, 2), dense[1, 2])
    np.testing.assert_array_equal(maps[-1, -1], dense[1, 3])
    np.testing.assert_array_equal(maps[0], dense[0])
    np.testing.assert_allclose(maps.mean_heads(1), dense[1].mean(axis=0), rtol=1e-6)
    assert maps[1, 2].dtype == np.float32 and maps[1, 2].flags.c_contiguous
    with pytest.raises(IndexError):
        maps.head(CFG.n_layers, 0)


def test_thumbnails_are_max_pooled_maps_and_skip_first_thumbnails_renormalise(model, tokenizer):
    ids = list(range(100, 100 + CFG.context_length))
    snap = inspect_tokens(model, tokenizer, ids)
    T = CFG.context_length
    size = min(T, THUMBNAIL_SIZE)
    assert snap.attention.thumbnails.shape == (CFG.n_layers, CFG.n_heads, size, size)
    dense = np.asarray(snap.attention)  # (L, H, T, T)
    np.testing.assert_allclose(
        snap.attention.thumbnails.astype(np.float32), dense, rtol=FP16_RTOL, atol=FP16_ATOL
    )
    rest = dense.copy()
    rest[..., 0] = 0.0
    rest[..., 1:, :] /= rest[..., 1:, :].sum(axis=-1, keepdims=True)
    skip = snap.attention.thumbnails_skip_first.astype(np.float32)
    np.testing.assert_allclose(skip, rest, rtol=3e-3, atol=1e-6)
    assert np.all(skip[..., 0, :] == 0.0)


def test_packing_is_lossless_for_float16_values_in_unit_interval_and_keeps_nan():
    rng = np.random.default_rng(0)
    for n in (1, 3, 4, 5, 37):
        values = rng.random((2, 3, n)).astype(np.float16)  # (2, 3, n)
        values.flat[0] = 0.0
        values.flat[-1] = 1.0
        if n > 2:
            values[0, 0, 1] = np.float16(3e-8)  # subnormal
            values[1, 2, 2] = np.nan
        unpacked = _unpack14(_pack14(values), n)
        assert unpacked.shape == (2, 3, n)
        np.testing.assert_array_equal(unpacked, values.astype(np.float32))  # NaN == NaN for this check
        assert _pack14(values).shape == (2, 3, 7 * -(-n // 4))


def test_residual_norms_equal_torch_norms_of_the_captured_stream(model, tokenizer, ids):
    snap = inspect_tokens(model, tokenizer, ids)
    names = ["hook_embed"] + [f"blocks.{i}.hook_resid_post" for i in range(CFG.n_layers)]
    taps = run_taps(model, ids, names)
    expected = torch.stack([taps[name][0].norm(dim=-1) for name in names]).numpy()  # (L+1, T)
    assert snap.residual_norms.shape == (CFG.n_layers + 1, len(ids))
    assert snap.residual_norms.dtype == np.float32
    np.testing.assert_allclose(snap.residual_norms, expected, rtol=1e-6)


def test_layernorm_statistics_show_mean_zero_variance_one_with_unit_scale_and_zero_shift(tokenizer, ids):
    torch.manual_seed(1)
    model = GPTModel(CFG).eval()
    with torch.no_grad():
        model.tok_emb.weight.mul_(50.0)  # a residual stream much larger than eps, as in a trained model
    snap = inspect_tokens(model, tokenizer, ids)
    stats = snap.ln_stats  # (L, norm, in/out, mean/var, T)
    assert stats.shape == (CFG.n_layers, 2, 2, 2, len(ids))
    out_mean, out_var = stats[:, :, 1, 0], stats[:, :, 1, 1]
    in_var = stats[:, :, 0, 1]
    np.testing.assert_allclose(out_mean, 0.0, atol=1e-5)
    np.testing.assert_allclose(out_var, in_var / (in_var + 1e-5), rtol=1e-4)  # LayerNorm's own formula
    np.testing.assert_allclose(out_var, 1.0, atol=1e-3)
    taps = run_taps(model, ids, ["hook_embed", "blocks.0.hook_resid_mid"])
    embed, mid = taps["hook_embed"][0], taps["blocks.0.hook_resid_mid"][0]  # (T, D)
    np.testing.assert_allclose(stats[0, 0, 0, 0], embed.mean(-1).numpy(), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(stats[0, 1, 0, 1], mid.var(-1, unbiased=False).numpy(), rtol=1e-5)


def test_logit_lens_last_row_is_the_real_next_token_distribution(model, tokenizer, ids):
    position = 4
    snap = inspect_tokens(model, tokenizer, ids, lens_position=position, lens_top_k=5)
    taps = run_taps(model, ids, ["hook_logits", "hook_embed"])
    probs = torch.softmax(taps["hook_logits"][0, position], dim=-1)  # (V,)
    top = probs.topk(5)
    assert snap.lens_ids.shape == snap.lens_probs.shape == (CFG.n_layers + 1, 5)
    np.testing.assert_array_equal(snap.lens_ids[-1], top.indices.numpy())
    np.testing.assert_allclose(snap.lens_probs[-1], top.values.numpy(), rtol=1e-6)
    # row 0: the embeddings read straight through the final norm and the output head
    with torch.no_grad():
        first = torch.softmax(model.out_head(model.final_norm(taps["hook_embed"][0, position])), dim=-1)
    np.testing.assert_allclose(snap.lens_probs[0], first.topk(5).values.numpy(), rtol=1e-5)
    assert snap.lens_pieces[0] == tuple(tokenizer.piece(int(i)) for i in snap.lens_ids[0])
    assert snap.lens_position == position


def test_default_lens_position_is_the_last_token_and_matches_next(model, tokenizer, ids):
    snap = inspect_tokens(model, tokenizer, ids)
    assert snap.lens_position == len(ids) - 1
    np.testing.assert_array_equal(snap.lens_ids[-1], snap.next_ids)
    np.testing.assert_allclose(snap.lens_probs[-1], snap.next_probs)
    assert snap.next_pieces == tuple(tokenizer.piece(int(i)) for i in snap.next_ids)
    assert np.all(np.diff(snap.next_probs) <= 0)


def test_mlp_post_is_the_gelu_output_of_the_chosen_layer(model, tokenizer, ids):
    snap = inspect_tokens(model, tokenizer, ids, mlp_layer=1)
    taps = run_taps(model, ids, ["blocks.1.ff.hook_post"])
    assert snap.mlp_layer == 1
    assert snap.mlp_post.shape == (len(ids), 4 * CFG.emb_dim) and snap.mlp_post.dtype == np.float32
    # the oracle run takes the fused attention path (no attention tap), so allow float rounding
    np.testing.assert_allclose(snap.mlp_post, taps["blocks.1.ff.hook_post"][0].numpy(), rtol=1e-5, atol=1e-6)
    assert snap.mlp_post.min() >= -0.171  # GELU's minimum is about -0.17


def test_ids_longer_than_the_context_keep_the_last_ones(model, tokenizer):
    ids = list(range(300, 300 + CFG.context_length + 8))
    snap = inspect_tokens(model, tokenizer, ids)
    assert snap.cropped == 8
    np.testing.assert_array_equal(snap.token_ids, ids[-CFG.context_length :])
    assert snap.attention.shape[-1] == CFG.context_length
    assert snap.lens_position == CFG.context_length - 1
    assert snap.pieces == tuple(tokenizer.piece(i) for i in ids[-CFG.context_length :])
    assert inspect_tokens(model, tokenizer, ids[:5]).cropped == 0


@pytest.mark.parametrize(
    ("ids", "kwargs", "message"),
    [
        ([], {}, "no tokens"),
        ([1, 2], {"mlp_layer": 2}, "MLP layer 2"),
        ([1, 2], {"mlp_layer": -1}, "MLP layer -1"),
        ([1, 2], {"lens_position": 2}, "lens position 2"),
        ([1, 2], {"lens_position": -3}, "lens position -3"),
        ([1, 60000], {}, "token id 60000"),
        ([1, 2], {"lens_top_k": 0}, "lens_top_k"),
    ],
)
def test_bad_arguments_raise_config_errors(model, tokenizer, ids, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        inspect_tokens(model, tokenizer, ids, **kwargs)


def test_snapshot_is_plain_read_only_numpy_and_leaves_the_model_as_it_was(tokenizer, ids):
    torch.manual_seed(2)
    model = GPTModel(CFG.replace(drop_rate=0.1)).train()
    first = inspect_tokens(model, tokenizer, ids)
    second = inspect_tokens(model, tokenizer, ids)
    assert model.training  # eval only for the inspection
    np.testing.assert_array_equal(first.residual_norms, second.residual_norms)  # no dropout
    assert isinstance(first, InspectionSnapshot)
    for name, value in vars(first).items():
        assert not isinstance(value, torch.Tensor), name
        if isinstance(value, np.ndarray):
            assert not value.flags.writeable, name
    assert not first.attention.packed.flags.writeable
    assert all(not hp.active for hp in model.modules() if hasattr(hp, "sink"))  # taps released
    with pytest.raises(ValueError):
        first.residual_norms[0, 0] = 1.0


def test_nbytes_matches_the_shape_estimate_and_the_124m_estimate_meets_the_target(model, tokenizer, ids):
    snap = inspect_tokens(model, tokenizer, ids, lens_top_k=8)
    assert snap.nbytes == snapshot_nbytes(CFG.n_layers, CFG.n_heads, len(ids), CFG.emb_dim, top_k=8)
    big = preset("124M")
    estimate = snapshot_nbytes(big.n_layers, big.n_heads, 1024, big.emb_dim)
    naive = big.n_layers * big.n_heads * 1024 * 1024 * 4  # every head's full map in float32: 576 MiB
    assert naive == 576 * 2**20
    assert estimate <= 150 * 2**20
    assert estimate < naive / 4


@pytest.mark.parametrize("positions", [1, 3, 16])
def test_stream_stats_for_a_few_positions_equal_the_row_by_row_ones(positions, monkeypatch):
    """A generation step's statistics (a few positions, stacked) are exactly what a whole window's row-by-row
    computation gives."""
    from gptviz.engine import inspection

    torch.manual_seed(positions)
    L, D = 3, 32
    taps = {"hook_embed": torch.randn(1, positions, D)}
    for i in range(L):
        for name in ("hook_resid_post", "hook_ln1", "hook_resid_mid", "hook_ln2"):
            taps[f"blocks.{i}.{name}"] = torch.randn(1, positions, D) * (i + 2)
    _, few_norms, few_stats = inspection.stream_stats(taps, L)
    monkeypatch.setattr(inspection, "FEW_POSITIONS", 0)
    _, norms, stats = inspection.stream_stats(taps, L)
    assert few_stats.shape == stats.shape == (L, 2, 2, 2, positions)
    assert torch.equal(few_norms, norms)
    assert torch.equal(few_stats, stats)
    assert torch.allclose(stats[1, 1, 0, 1], taps["blocks.1.hook_resid_mid"][0].var(dim=-1, unbiased=False))
