"""Quick dropout draws (gptviz.model.dropout): the rate, the scaling, the gradient and the seed decide as
torch's dropout does; nn.Dropout's own draws unless asked; the trainer asks outside the book's protocol."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from gptviz.config import GPTConfig
from gptviz.engine.train_settings import TrainSettings
from gptviz.engine.trainer import Trainer
from gptviz.model import dropout as dropout_module
from gptviz.model.dropout import Dropout, quick_draws, quick_dropout
from gptviz.model.gpt import GPTModel
from gptviz.tokenizer import default_tokenizer


@pytest.mark.parametrize("p", [0.1, 0.5, 0.03])
def test_the_drop_rate_and_the_scale(p):
    torch.manual_seed(0)
    x = torch.rand(1000, 1001) + 0.5  # (N, M) no zeros of its own
    out = quick_dropout(x, p)
    kept = out != 0
    rate = round(p * 65536) / 65536
    n = x.numel()
    dropped = n - int(kept.sum())
    assert abs(dropped - n * rate) < 5 * math.sqrt(n * rate * (1 - rate))  # binomial: within five sigma
    torch.testing.assert_close(out[kept], x[kept] / (1 - rate), rtol=1e-6, atol=0)
    # Rows and columns are dropped alike: no stripes from the four-draws-a-word layout.
    assert float((~kept).float().mean(dim=0).std()) < 0.05
    assert float((~kept).float().view(-1, 4).mean(dim=0).sub(rate).abs().max()) < 0.005


def test_the_gradient_is_dropped_and_scaled_as_the_output_is():
    torch.manual_seed(1)
    x = (torch.rand(64, 50) + 0.5).requires_grad_()  # (N, M)
    out = quick_dropout(x, 0.2)
    weight = torch.randn(64, 50)  # (N, M)
    (out * weight).sum().backward()
    scale = 65536 / (65536 - round(0.2 * 65536))
    torch.testing.assert_close(x.grad, weight * (out != 0) * scale)


def test_the_seed_decides_the_draws():
    x = torch.ones(10_000)
    masks = []
    for seed in (3, 3, 4):
        torch.manual_seed(seed)
        masks.append(quick_dropout(x, 0.1) != 0)
    assert torch.equal(masks[0], masks[1])
    assert not torch.equal(masks[0], masks[2])


def test_the_edges_of_the_rate():
    x = torch.randn(100)
    assert torch.equal(quick_dropout(x, 1.0), torch.zeros(100))
    assert torch.equal(quick_dropout(x, 1e-7), x)


def test_a_model_draws_as_nn_dropout_unless_asked():
    layer = Dropout(0.3).train()
    x = torch.randn(5000)
    torch.manual_seed(7)
    own = layer(x)
    torch.manual_seed(7)
    assert torch.equal(own, F.dropout(x, 0.3, training=True))  # the book's draws, bit for bit
    model = GPTModel(GPTConfig(vocab_size=64, context_length=8, emb_dim=16, n_heads=2, n_layers=1)).train()
    with quick_draws(model, True):
        assert all(m.quick for m in model.modules() if isinstance(m, Dropout))
        torch.manual_seed(7)
        quick = model(torch.arange(8).view(1, 8))  # (1, 8, V)
        torch.manual_seed(7)
        again = model(torch.arange(8).view(1, 8))  # (1, 8, V)
    assert torch.equal(quick, again)
    assert not any(m.quick for m in model.modules() if isinstance(m, Dropout))
    with torch.no_grad():
        model.eval()
        assert not torch.equal(quick, model(torch.arange(8).view(1, 8)))  # dropout did act in training


def _count_quick_calls(monkeypatch) -> list[int]:
    calls = [0]
    original = dropout_module.quick_dropout

    def counting(x: torch.Tensor, p: float) -> torch.Tensor:
        calls[0] += 1
        return original(x, p)

    monkeypatch.setattr(dropout_module, "quick_dropout", counting)
    return calls


@pytest.mark.parametrize("book", [False, True])
def test_the_trainer_draws_quickly_outside_the_books_protocol(monkeypatch, book):
    calls = _count_quick_calls(monkeypatch)
    cfg = GPTConfig(vocab_size=512, context_length=16, emb_dim=32, n_heads=4, n_layers=2, drop_rate=0.1)
    torch.manual_seed(0)
    ids = (torch.arange(3500) * 7) % 97  # (N,)
    settings = TrainSettings(
        batch_size=2,
        steps=2,
        eval_freq=100,
        eval_iter=1,
        probe_tokens=2,
        probe_prompt="a,b.",
        eval_protocol="book" if book else "fixed",
    )
    trainer = Trainer(GPTModel(cfg), default_tokenizer(), ids[:3000], ids[3000:], settings)
    trainer.step()
    # Per forward: the embeddings, and per layer the attention weights and two shortcuts.
    assert calls[0] == (0 if book else 1 + 3 * cfg.n_layers)
