"""Trainer.step trains through GPTModel.training_loss (the head and loss as one autograd step, a tied table's
lookup gradient as rows); a trainer on the plain forward + cross-entropy sees the same losses and weights."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from gptviz.config import GPTConfig
from gptviz.engine.train_settings import TrainSettings
from gptviz.engine.trainer import Trainer
from gptviz.model.gpt import GPTModel
from gptviz.tokenizer import default_tokenizer

# Dropout on (its masks must come out the same on both paths), tied head, a vocabulary the prompt fits in.
CFG = GPTConfig(vocab_size=512, context_length=16, emb_dim=32, n_heads=4, n_layers=2, drop_rate=0.1)


def _trainer(ids: torch.Tensor, plain: bool) -> tuple[Trainer, list[int]]:
    torch.manual_seed(5)
    model = GPTModel(CFG)
    calls = [0]
    if plain:

        def plain_loss(idx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
            calls[0] += 1
            return F.cross_entropy(model(idx).flatten(0, 1), targets.flatten())  # ()

        model.training_loss = plain_loss  # type: ignore[method-assign]
    settings = TrainSettings(
        lr=3e-3, batch_size=3, steps=6, eval_freq=100, eval_iter=1, probe_tokens=2, probe_prompt="a,b."
    )
    return Trainer(model, default_tokenizer(), ids[:3000], ids[3000:], settings), calls


def test_the_fused_step_trains_as_the_plain_forward_and_loss_do():
    ids = (torch.arange(3500) * 7) % 97  # (N,) a pattern it can learn in a few steps
    fused, _ = _trainer(ids, plain=False)
    plain, calls = _trainer(ids, plain=True)
    got = [fused.step() for _ in range(6)]
    want = [plain.step() for _ in range(6)]
    assert calls[0] == 6  # the plain trainer really took the plain path
    for a, b in zip(got, want, strict=True):
        assert abs(a.train_loss - b.train_loss) <= 1e-5, (a.step, a.train_loss, b.train_loss)
        assert abs(a.grad_norm - b.grad_norm) <= 1e-4 * b.grad_norm, (a.step, a.grad_norm, b.grad_norm)
    assert got[-1].train_loss < got[0].train_loss  # it learns: not two flat lines
    # atol 1e-5: AdamW divides each update by its gradient's running size, so float rounding in a near-zero
    # gradient (the two paths add the head's products in other orders) can move a weight by a few 1e-6;
    # six steps at lr 3e-3 can move a weight by 1.8e-2, so a wrong gradient still shows.
    for (name, p), q in zip(fused.model.named_parameters(), plain.model.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5, msg=name)
