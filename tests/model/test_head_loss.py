"""The head and loss as one autograd step (gptviz.model.head_loss) and GPTModel.training_loss give the plain
path's loss and gradients, to float32 rounding."""

import pytest
import torch
import torch.nn.functional as F

from gptviz.config import GPTConfig
from gptviz.model.gpt import GPTModel
from gptviz.model.head_loss import head_cross_entropy

SMALL = GPTConfig(vocab_size=500, context_length=16, emb_dim=32, n_heads=4, n_layers=2, drop_rate=0.0)


def test_head_cross_entropy_equals_linear_then_cross_entropy():
    torch.manual_seed(0)
    weight = (torch.randn(300, 24) * 0.5).requires_grad_()  # (V, D)
    x = torch.randn(40, 24, requires_grad=True)  # (N, D)
    targets = torch.randint(0, 300, (40,))  # (N,)
    targets[:5] = 7  # repeated targets: the one-hot subtraction adds up
    plain = F.cross_entropy(F.linear(x, weight), targets)  # ()
    want = torch.autograd.grad(plain * 3.0, (x, weight))  # a grad_output other than 1 is honoured
    fused = head_cross_entropy(x, weight, targets)  # ()
    got = torch.autograd.grad(fused * 3.0, (x, weight))
    torch.testing.assert_close(fused, plain, rtol=1e-6, atol=1e-6)
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-7)


def test_head_cross_entropy_without_gradients_keeps_no_buffer():
    torch.manual_seed(1)
    weight, x = torch.randn(50, 8), torch.randn(6, 8)  # (V, D), (N, D)
    targets = torch.randint(0, 50, (6,))  # (N,)
    with torch.no_grad():
        got = head_cross_entropy(x, weight, targets)  # ()
    torch.testing.assert_close(got, F.cross_entropy(x @ weight.t(), targets))


def _grads(model: GPTModel) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("tied", [True, False])
def test_training_loss_equals_the_plain_forward_and_cross_entropy(tied):
    torch.manual_seed(2)
    model = GPTModel(SMALL.replace(tie_weights=tied)).train()
    idx = torch.randint(0, 500, (3, 16))  # (B, T)
    idx[0, :4] = 11  # one token several times: its rows of the tied table get several updates
    targets = torch.randint(0, 500, (3, 16))  # (B, T)
    plain = F.cross_entropy(model(idx).flatten(0, 1), targets.flatten())  # ()
    plain.backward()
    want = _grads(model)
    model.zero_grad(set_to_none=True)
    fused = model.training_loss(idx, targets)  # ()
    fused.backward()
    got = _grads(model)
    torch.testing.assert_close(fused, plain, rtol=1e-6, atol=1e-6)
    assert got.keys() == want.keys()
    for name in want:
        assert not got[name].is_sparse, name  # AdamW and clipping see an ordinary dense gradient
        torch.testing.assert_close(got[name], want[name], rtol=1e-4, atol=1e-7, msg=name)


def test_a_tap_on_the_logits_sees_them_in_training_loss():
    torch.manual_seed(3)
    model = GPTModel(SMALL).train()
    idx, targets = torch.randint(0, 500, (2, 16)), torch.randint(0, 500, (2, 16))  # (B, T) each
    seen = {}
    model.hook_logits.sink = lambda name, t: seen.setdefault(name, t.detach())
    try:
        loss = model.training_loss(idx, targets)  # ()
    finally:
        model.hook_logits.sink = None
    assert seen["hook_logits"].shape == (2, 16, 500)
    torch.testing.assert_close(loss, F.cross_entropy(seen["hook_logits"].flatten(0, 1), targets.flatten()))


def test_a_tied_table_gradient_is_added_in_place_and_adds_up_over_two_backwards():
    torch.manual_seed(4)
    model = GPTModel(SMALL.replace(tie_weights=True)).train()
    idx = torch.randint(0, 500, (2, 16))  # (B, T)
    idx[1, :6] = 3
    targets = torch.randint(0, 500, (2, 16))  # (B, T)
    for _ in range(2):  # gradient accumulation: the second backward adds to .grad
        F.cross_entropy(model(idx).flatten(0, 1), targets.flatten()).backward()
    want = _grads(model)
    model.zero_grad(set_to_none=True)
    with torch.profiler.profile(record_shapes=True) as prof:
        for _ in range(2):
            model.training_loss(idx, targets).backward()
    got = _grads(model)
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=1e-4, atol=1e-7, msg=name)
    table = [500, SMALL.emb_dim]
    # No fresh (V, D) table: neither a zeroed lookup gradient nor an out-of-place sum of two gradients.
    made = [
        e.name for e in prof.events() if e.name in ("aten::zeros", "aten::add") and table in e.input_shapes
    ]
    assert made == []


def test_a_tied_lookup_without_the_head_gives_its_own_gradient():
    from gptviz.model.head_loss import TiedGradient, tied_lookup

    torch.manual_seed(5)
    weight = torch.randn(20, 4, requires_grad=True)  # (V, D)
    ids = torch.tensor([[1, 2, 2], [0, 19, 1]])  # (B, T)
    (tied_lookup(ids, weight, TiedGradient()) * torch.arange(4.0)).sum().backward()
    want = torch.zeros(20, 4)
    want.index_add_(0, ids.flatten(), torch.arange(4.0).expand(6, 4))
    torch.testing.assert_close(weight.grad, want)
