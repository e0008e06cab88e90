"""The columns layout of the Linear weights and the tied head's column copy change speed, never values."""

import torch

from gptviz.config import GPTConfig
from gptviz.model.gpt import GPTModel

CFG = GPTConfig(vocab_size=97, context_length=16, emb_dim=32, n_heads=4, n_layers=2, drop_rate=0.0, name="t")


def test_linear_weights_are_transposes_of_contiguous_matrices_and_save_as_plain_tensors():
    torch.manual_seed(0)
    model = GPTModel(CFG)
    weight = model.blocks[0].ff.fc1.weight  # (4D, D)
    assert weight.shape == (128, 32)
    assert weight.stride() == (1, 128)  # the (D, 4D) matrix is the contiguous one
    assert weight.t().is_contiguous()
    assert model.tok_emb.weight.is_contiguous()  # the tied head keeps the embedding's rows contiguous
    state = model.state_dict()
    twin = GPTModel(CFG)
    twin.load_state_dict(state)
    for name, value in twin.state_dict().items():
        assert torch.equal(value, state[name]), name
    assert twin.blocks[1].attn.W_qkv.weight.stride() == (1, 96)  # loading copies into the layout


def test_the_tied_heads_column_copy_gives_the_heads_logits_and_follows_every_update():
    torch.manual_seed(1)
    model = GPTModel(CFG).eval()
    x = torch.randn(3, 5, CFG.emb_dim)  # (B, T, D)
    with torch.no_grad():
        fast = model.project(x)  # (B, T, V)
    plain = x @ model.tok_emb.weight.detach().t()  # (B, T, V)
    assert torch.allclose(fast, plain, atol=1e-6)
    # An optimizer step changes the weight in place: the next product must see the new values.
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    ids = torch.randint(0, CFG.vocab_size, (2, 6))
    model(ids).sum().backward()
    optimizer.step()
    with torch.no_grad():
        after = model.project(x)  # (B, T, V)
    assert not torch.allclose(after, fast)
    assert torch.allclose(after, x @ model.tok_emb.weight.detach().t(), atol=1e-6)
    # So must a load of other weights.
    other = GPTModel(CFG)
    model.load_state_dict(other.state_dict())
    with torch.inference_mode():
        loaded = model.project(x)  # (B, T, V)
    assert torch.allclose(loaded, x @ other.tok_emb.weight.detach().t(), atol=1e-6)


def test_with_gradients_the_head_is_the_embedding_itself():
    torch.manual_seed(2)
    model = GPTModel(CFG)
    x = torch.randn(2, CFG.emb_dim, requires_grad=True)  # (N, D)
    model.project(x).sum().backward()
    assert model.tok_emb.weight.grad is not None  # the product went through the shared parameter
    assert model._head_columns is None  # and no copy was made


def test_a_fused_optimizer_step_which_leaves_the_version_counter_still_renews_the_copy():
    torch.manual_seed(3)
    model = GPTModel(CFG).eval()
    x = torch.randn(4, CFG.emb_dim)  # (N, D)
    with torch.no_grad():
        before = model.project(x)  # (N, V)
    weight = model.tok_emb.weight
    version = weight._version
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1, fused=True)
    model(torch.randint(0, CFG.vocab_size, (1, 5))).sum().backward()
    optimizer.step()
    assert weight._version == version  # the case the sample check exists for
    with torch.no_grad():
        after = model.project(x)  # (N, V)
    assert not torch.allclose(after, before)
    assert torch.allclose(after, x @ weight.detach().t(), atol=1e-6)
