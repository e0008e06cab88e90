import math

import pytest
import torch

from gptviz.model import capture, hook_names
from gptviz.model.gpt import GELU, LayerNorm, generate_greedy


def test_layernorm_is_the_book_formula():
    torch.manual_seed(0)
    norm = LayerNorm(8)
    with torch.no_grad():
        norm.scale.uniform_(0.5, 1.5)
        norm.shift.uniform_(-1, 1)
    x = torch.randn(2, 3, 8)  # (B, T, D)
    mean = x.mean(dim=-1, keepdim=True)
    var = x.var(dim=-1, keepdim=True, unbiased=False)
    book = norm.scale * (x - mean) / torch.sqrt(var + 1e-5) + norm.shift
    assert torch.allclose(norm(x), book, atol=1e-6)


def test_gelu_is_the_tanh_formula():
    x = torch.linspace(-4, 4, 101)
    book = 0.5 * x * (1 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))
    assert torch.allclose(GELU()(x), book, atol=1e-6)


def test_output_shape_and_untrained_loss(tiny_model, tiny_cfg):
    idx = torch.randint(0, tiny_cfg.vocab_size, (2, 10))
    logits = tiny_model(idx)
    assert logits.shape == (2, 10, tiny_cfg.vocab_size)
    targets = torch.randint(0, tiny_cfg.vocab_size, (2, 10))
    loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten())
    assert abs(loss.item() - math.log(tiny_cfg.vocab_size)) < 0.2


def test_fused_path_equals_explicit_path(tiny_model, tiny_cfg):
    idx = torch.randint(0, tiny_cfg.vocab_size, (2, 17))
    fused = tiny_model(idx)
    tiny_model.set_fused_attention(False)
    explicit = tiny_model(idx)
    tiny_model.set_fused_attention(True)
    assert torch.allclose(fused, explicit, atol=1e-5)


def test_fused_path_equals_explicit_path_in_training_without_dropout(tiny_model, tiny_cfg):
    tiny_model.train()
    idx = torch.randint(0, tiny_cfg.vocab_size, (1, 9))
    fused = tiny_model(idx)
    tiny_model.set_fused_attention(False)
    assert torch.allclose(fused, tiny_model(idx), atol=1e-5)


def test_causality(tiny_model, tiny_cfg):
    idx = torch.randint(0, tiny_cfg.vocab_size, (1, 12))
    changed = idx.clone()
    changed[0, 8] = (changed[0, 8] + 1) % tiny_cfg.vocab_size
    a, b = tiny_model(idx), tiny_model(changed)
    assert torch.allclose(a[:, :8], b[:, :8], atol=1e-6)
    assert not torch.allclose(a[:, 8:], b[:, 8:])


def test_tied_head_shares_the_embedding(tiny_model):
    assert tiny_model.out_head.weight is tiny_model.tok_emb.weight


def test_cache_gives_the_same_logits_token_by_token(tiny_model, tiny_cfg):
    idx = torch.randint(0, tiny_cfg.vocab_size, (1, 12))
    full = tiny_model(idx)  # (1, 12, V)
    cache = tiny_model.new_cache()
    first = tiny_model(idx[:, :5], cache)  # prefix in one go
    steps = [tiny_model(idx[:, t : t + 1], cache) for t in range(5, 12)]
    stepped = torch.cat([first, *steps], dim=1)
    assert torch.allclose(full, stepped, atol=1e-5)
    # several new tokens at once after a prefix uses the offset causal mask
    cache.truncate(6)
    chunk = tiny_model(idx[:, 6:12], cache)
    assert torch.allclose(full[:, 6:], chunk, atol=1e-5)


def test_cached_greedy_equals_uncached_across_the_context_limit(tiny_model, tiny_cfg):
    idx = torch.randint(0, tiny_cfg.vocab_size, (1, 20))
    plain = generate_greedy(tiny_model, idx, 30, use_cache=False)
    cached = generate_greedy(tiny_model, idx, 30, use_cache=True)
    assert plain.shape == (1, 50)
    assert torch.equal(plain, cached)


def test_too_long_input_is_refused(tiny_model, tiny_cfg):
    with pytest.raises(ValueError, match="context length"):
        tiny_model(torch.zeros(1, tiny_cfg.context_length + 1, dtype=torch.long))


def test_hook_names_are_stable(tiny_model):
    names = hook_names(tiny_model)
    for expected in [
        "hook_tok_emb",
        "hook_pos_emb",
        "hook_embed",
        "blocks.0.hook_ln1",
        "blocks.0.attn.hook_q",
        "blocks.0.attn.hook_k",
        "blocks.0.attn.hook_v",
        "blocks.0.attn.hook_scores",
        "blocks.0.attn.hook_weights",
        "blocks.0.attn.hook_head_out",
        "blocks.0.hook_resid_mid",
        "blocks.0.hook_ln2",
        "blocks.0.ff.hook_pre",
        "blocks.0.ff.hook_post",
        "blocks.1.hook_resid_post",
        "hook_final_norm",
        "hook_logits",
    ]:
        assert expected in names


def test_capture_does_not_change_outputs_and_is_scoped(tiny_model, tiny_cfg):
    idx = torch.randint(0, tiny_cfg.vocab_size, (1, 7))
    plain = tiny_model(idx)
    with capture(tiny_model) as store:
        tapped = tiny_model(idx)
    assert torch.allclose(plain, tapped, atol=1e-5)
    assert torch.equal(store["hook_logits"], tapped.detach())
    assert all(m.sink is None for m in tiny_model.modules() if hasattr(m, "sink"))
    weights = store["blocks.1.attn.hook_weights"]  # (B, H, T, T)
    assert weights.shape == (1, 4, 7, 7)
    assert torch.allclose(weights.sum(-1), torch.ones(1, 4, 7), atol=1e-6)
    assert torch.all(weights.triu(1) == 0)
    scores = store["blocks.0.attn.hook_scores"]
    assert torch.isinf(scores[0, 0, 0, 1]) and scores[0, 0, 0, 1] < 0
    assert store["blocks.0.attn.hook_q"].shape == (1, 4, 7, 8)
    assert store["blocks.0.ff.hook_post"].shape == (1, 7, 4 * tiny_cfg.emb_dim)
    # the residual stream after the last block, normalised, is the final norm
    assert torch.allclose(tiny_model.final_norm(store["blocks.1.hook_resid_post"]), store["hook_final_norm"])


def test_capture_keeps_only_the_names_asked_for(tiny_model, tiny_cfg):
    idx = torch.randint(0, tiny_cfg.vocab_size, (1, 5))
    with capture(tiny_model, r"blocks\.\d+\.attn\.hook_weights") as store:
        tiny_model(idx)
    assert sorted(store) == ["blocks.0.attn.hook_weights", "blocks.1.attn.hook_weights"]
    with capture(tiny_model, ["hook_embed"]) as store:
        tiny_model(idx)
    assert list(store) == ["hook_embed"]


def test_capture_is_released_after_an_exception(tiny_model):
    with pytest.raises(RuntimeError), capture(tiny_model):
        raise RuntimeError("boom")
    assert all(m.sink is None for m in tiny_model.modules() if hasattr(m, "sink"))


def _long_model():
    from gptviz.config import GPTConfig
    from gptviz.model.gpt import GPTModel

    cfg = GPTConfig(vocab_size=300, context_length=700, emb_dim=32, n_heads=4, n_layers=2, drop_rate=0.0)
    torch.manual_seed(4)
    model = GPTModel(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.3)
    return model


@pytest.mark.parametrize("past", [0, 150])
def test_attention_in_row_blocks_equals_the_one_block_form(past, monkeypatch):
    """Past ROW_BLOCK query rows, the written-out attention skips the keys each block cannot see; what the
    taps and the logits get equals the one-block form (and the fused path), with and without a cache."""
    import gptviz.model.gpt as gpt

    model = _long_model()
    idx = torch.randint(0, 300, (1, 600), generator=torch.Generator().manual_seed(0))  # (1, T)
    names = {"blocks.0.attn.hook_weights", "blocks.1.attn.hook_weights", "blocks.1.hook_resid_post"}

    def run(row_block: int) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        monkeypatch.setattr(gpt, "ROW_BLOCK", row_block)
        with torch.no_grad():
            cache = model.new_cache(1) if past else None
            if cache is not None:
                model(idx[:, :past], cache)
            with capture(model, names) as taps:
                logits = model(idx[:, past:], cache)  # (1, T, V)
        return dict(taps), logits

    blocked, blocked_logits = run(128)  # 450 or 600 new rows: 4 or 5 blocks
    whole, whole_logits = run(10**6)
    with torch.no_grad():
        cache = model.new_cache(1) if past else None
        if cache is not None:
            model(idx[:, :past], cache)
        fused = model(idx[:, past:], cache)  # nothing captured: scaled_dot_product_attention
    torch.testing.assert_close(blocked_logits, whole_logits, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(blocked_logits, fused, rtol=1e-4, atol=1e-4)
    for name in names:
        torch.testing.assert_close(blocked[name], whole[name], rtol=1e-5, atol=1e-6)
    weights = blocked["blocks.1.attn.hook_weights"][0]  # (H, T, S)
    T, S = weights.shape[1:]
    hidden = torch.ones(T, S, dtype=torch.bool).triu(1 + past)  # (T, S) the keys in each row's future
    assert bool((weights[:, hidden] == 0).all())
    torch.testing.assert_close(weights.sum(-1), torch.ones(weights.shape[:2]))


def test_scores_taps_edits_and_gradients_take_the_one_block_form(monkeypatch):
    import gptviz.model.gpt as gpt
    from gptviz.model.hooks import intervene

    model = _long_model()
    idx = torch.randint(0, 300, (1, 400), generator=torch.Generator().manual_seed(1))
    calls = []
    real = gpt.blocked_causal_attention
    monkeypatch.setattr(gpt, "blocked_causal_attention", lambda *a: calls.append(1) or real(*a))
    both = {"blocks.0.attn.hook_weights", "blocks.1.attn.hook_weights"}
    with torch.no_grad(), capture(model, both):
        model(idx)
    assert len(calls) == 2  # both layers, in blocks
    with torch.no_grad(), capture(model, {"blocks.0.attn.hook_scores", "blocks.1.attn.hook_weights"}):
        model(idx)
    assert len(calls) == 3  # layer 1 only: layer 0's scores are captured whole
    with torch.no_grad(), intervene(model, {"blocks.1.attn.hook_weights": lambda w: w * 1.0}):
        model.set_fused_attention(False)
        model(idx)
        model.set_fused_attention(True)
    assert len(calls) == 4  # layer 0 only: layer 1's weights are edited
    with capture(model, both):
        model(idx).sum().backward()  # a gradient: the one-block form, which autograd follows
    assert len(calls) == 4
