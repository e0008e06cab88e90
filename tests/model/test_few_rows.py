"""Few-row products through `few_rows_linear` equal F.linear, and only run when nothing is recorded."""

import pytest
import torch
import torch.nn.functional as F

from gptviz.config import GPTConfig
from gptviz.model.few_rows import (
    CHUNK_OUT,
    CHUNKED_MAX_ROWS,
    CHUNKED_MIN_OUT,
    MAX_ROWS,
    Linear,
    few_rows_linear,
)
from gptviz.model.gpt import GPTModel


@pytest.mark.parametrize("rows", [1, 2, 3, MAX_ROWS, MAX_ROWS + 1, 9])
def test_a_few_rows_equal_f_linear_with_and_without_bias(rows):
    torch.manual_seed(rows)
    weight, bias = torch.randn(300, 64), torch.randn(300)  # (out, in), (out,)
    x = torch.randn(1, rows, 64)  # (B, T, in)
    with torch.no_grad():
        for b in (bias, None):
            got = few_rows_linear(x, weight, b)  # (B, T, out)
            assert got.shape == (1, rows, 300)
            assert got.is_contiguous()  # the attention's queries are views of it (see few_rows_linear)
            torch.testing.assert_close(got, F.linear(x, weight, b), rtol=1e-5, atol=1e-5)


def test_gradients_and_other_layouts_take_the_plain_product():
    torch.manual_seed(0)
    layer = Linear(16, 8)
    x = torch.randn(1, 16, requires_grad=True)  # (R, in)
    layer(x).sum().backward()  # recorded: the plain path, so autograd sees F.linear
    torch.testing.assert_close(x.grad, layer.weight.sum(dim=0, keepdim=True))
    transposed = torch.randn(16, 8).t()  # (8, 16), not contiguous
    with torch.no_grad():
        torch.testing.assert_close(few_rows_linear(x, transposed, None), F.linear(x, transposed))


def test_a_models_decoding_step_matches_the_plain_products():
    cfg = GPTConfig(
        vocab_size=97, context_length=16, emb_dim=32, n_heads=4, n_layers=2, drop_rate=0.0, name="t"
    )
    torch.manual_seed(1)
    model = GPTModel(cfg).eval()
    ids = torch.randint(0, cfg.vocab_size, (1, 9))  # (B, T)
    with torch.no_grad():
        whole = model(ids)[0, -1]  # (V,): 9 rows, the plain product
        cache = model.new_cache(1)
        model(ids[:, :8], cache)
        step = model(ids[:, 8:], cache)[0, -1]  # (V,): one row, the few-rows product
    torch.testing.assert_close(step, whole, rtol=1e-5, atol=1e-5)
    assert isinstance(model.out_head, Linear) and isinstance(model.blocks[0].ff.fc1, Linear)


@pytest.mark.parametrize("rows", [MAX_ROWS + 1, 14, CHUNKED_MAX_ROWS])
def test_rows_through_a_tall_weight_go_block_by_block_and_equal_f_linear(rows, monkeypatch):
    """An output head (CHUNKED_MIN_OUT outputs or more, and a count that is not a whole number of blocks)
    takes the blocked product for five to CHUNKED_MAX_ROWS rows; the values are F.linear's."""
    torch.manual_seed(rows)
    out = CHUNKED_MIN_OUT + CHUNK_OUT // 2 + 3  # a partial block at the end
    weight, bias = torch.randn(out, 48), torch.randn(out)  # (out, in), (out,)
    x = torch.randn(1, rows, 48)  # (B, T, in)
    with torch.no_grad():
        for b in (bias, None):
            got = few_rows_linear(x, weight, b)  # (B, T, out)
            assert got.shape == (1, rows, out)
            torch.testing.assert_close(got, F.linear(x, weight, b), rtol=1e-5, atol=1e-5)
    calls = []
    original = torch.bmm
    monkeypatch.setattr(torch, "bmm", lambda *a, **k: calls.append(1) or original(*a, **k))
    with torch.no_grad():
        few_rows_linear(x, weight, None)
        few_rows_linear(torch.randn(CHUNKED_MAX_ROWS + 1, 48), weight, None)  # too many: plain
        few_rows_linear(x, torch.randn(CHUNKED_MIN_OUT - 1, 48), None)  # not tall: plain
    assert calls == [1]


@pytest.mark.parametrize("shape", [(64, 256), (48, 48), (30, 62)])
def test_one_row_through_a_wide_weight_is_folded_and_equals_f_linear(shape, monkeypatch):
    from gptviz.model import few_rows

    folded = []
    original = few_rows._folded_row
    monkeypatch.setattr(few_rows, "_folded_row", lambda row, w: folded.append(w.shape) or original(row, w))
    torch.manual_seed(shape[0])
    weight, bias = torch.randn(*shape), torch.randn(shape[0])  # (out, in), (out,)
    for x in (torch.randn(1, 1, shape[1]), torch.randn(shape[1], 3).t()[:1]):  # contiguous, and strided
        with torch.no_grad():
            got = few_rows_linear(x, weight, bias)  # (..., out)
        assert got.shape == (*x.shape[:-1], shape[0]) and got.is_contiguous()
        torch.testing.assert_close(got, F.linear(x, weight, bias), rtol=1e-5, atol=1e-5)
    assert folded == [shape, shape]
    with torch.no_grad():
        few_rows_linear(torch.randn(1, 7), torch.randn(8, 7), None)  # an odd width is not folded
        few_rows_linear(torch.randn(1, 8), torch.randn(9, 8), None)  # nor a taller weight
    assert folded == [shape, shape]
