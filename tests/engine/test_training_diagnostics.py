"""Per-part gradient norms and update ratios, checked against sums and weights computed by hand, and the
metrics.jsonl readers that must take lines with and without them."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from gptviz.config import GPTConfig
from gptviz.engine import training_diagnostics
from gptviz.engine.rundir import MetricsFollower, read_metrics
from gptviz.engine.train_settings import TrainSettings
from gptviz.engine.trainer import Trainer
from gptviz.engine.training_diagnostics import PartNorms, attention_entropy, part_of, uniform_entropy
from gptviz.model.gpt import GPTModel

CFG = GPTConfig(vocab_size=512, context_length=16, emb_dim=32, n_heads=4, n_layers=3, drop_rate=0.0)


def _ids(n=600, seed=0):
    return torch.randint(0, 512, (n,), generator=torch.Generator().manual_seed(seed))  # (n,)


def _trainer(run_dir=None, tie=True, **changes):
    torch.manual_seed(0)
    model = GPTModel(CFG.replace(tie_weights=tie))
    settings = TrainSettings(
        steps=4, batch_size=4, context=16, lr=3e-3, eval_freq=2, eval_iter=1, probe_tokens=1,
        probe_prompt="a b", device="cpu", **changes,
    )  # fmt: skip
    return Trainer(model, None, _ids(), _ids(200, 1), settings, run_dir)


def test_parts_are_the_embeddings_each_block_the_final_norm_and_an_untied_head():
    assert part_of("tok_emb.weight") == part_of("pos_emb.weight") == "embeddings"
    assert part_of("blocks.11.attn.W_qkv.weight") == "block.11"
    assert PartNorms(GPTModel(CFG)).parts == ["embeddings", "block.0", "block.1", "block.2", "final_norm"]
    untied = PartNorms(GPTModel(CFG.replace(tie_weights=False))).parts
    assert untied[-1] == "out_head" and len(untied) == 6


@pytest.mark.parametrize("clip", [1e-3, 0.0])
def test_grad_norms_add_up_to_grad_norm_and_are_each_parts_own(clip):
    """Root-sum-square of the parts = grad_norm (1e-5 relative); each part = the norm of its gradients
    computed by hand before the clipping; the clipping itself is clip_grad_norm_'s, bit for bit."""
    trainer = _trainer(tie=False, grad_clip=clip)
    inputs, targets = trainer.batches.for_step(0)  # (B, T)
    model = trainer.model
    loss = F.cross_entropy(model(inputs).flatten(0, 1), targets.flatten())  # ()
    loss.backward()
    by_hand = {}
    for name, p in model.named_parameters():
        part = part_of(name)
        by_hand[part] = by_hand.get(part, 0.0) + float(p.grad.double().pow(2).sum())
    reference = [p.grad.clone() for p in model.parameters()]
    total, parts = trainer.parts.clip_and_measure(clip if clip > 0 else math.inf)
    assert math.isclose(math.sqrt(sum(v**2 for v in parts.values())), total, rel_tol=1e-5)
    for part, squared in by_hand.items():
        assert math.isclose(parts[part], math.sqrt(squared), rel_tol=1e-5), part
    # The same gradients clipped by torch's clip_grad_norm_ give the same numbers, bit for bit.
    twins = [torch.nn.Parameter(torch.zeros_like(g)) for g in reference]
    for twin, grad in zip(twins, reference, strict=True):
        twin.grad = grad.clone()
    torch_total = torch.nn.utils.clip_grad_norm_(twins, clip if clip > 0 else math.inf)
    assert float(torch_total) == total
    for twin, p in zip(twins, model.parameters(), strict=True):
        assert torch.equal(twin.grad, p.grad)


def test_update_ratios_are_the_weights_movement_over_their_size():
    trainer = _trainer()
    trainer.start()
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    result = trainer.step()
    moved, size = {}, {}
    for name, p in trainer.model.named_parameters():
        part = part_of(name)
        moved[part] = moved.get(part, 0.0) + float((p.detach().double() - before[name].double()).pow(2).sum())
        size[part] = size.get(part, 0.0) + float(before[name].double().pow(2).sum())
    assert set(result.update_ratios) == set(moved)
    for part in moved:
        expected = math.sqrt(moved[part]) / math.sqrt(size[part])
        assert math.isclose(result.update_ratios[part], expected, rel_tol=1e-4), part
    assert all(1e-5 < r < 1 for r in result.update_ratios.values())
    assert math.isclose(
        math.sqrt(sum(v**2 for v in result.grad_norms.values())), result.grad_norm, rel_tol=1e-5
    )


def test_diagnostics_off_measures_no_update_ratio_and_trains_the_same():
    on, off = _trainer(), _trainer(diagnostics=False)
    a = [on.step() for _ in range(3)]
    b = [off.step() for _ in range(3)]
    assert [r.train_loss for r in a] == [r.train_loss for r in b]  # measuring changes nothing
    assert b[0].update_ratios is None and b[0].grad_norms == a[0].grad_norms


def test_attention_entropy_by_hand():
    uniform = np.tril(np.ones((3, 3))) / np.arange(1, 4)[:, None]  # (T, T) each row spread evenly
    one_hot = np.eye(3)  # each position looks at itself only
    attention = np.stack([np.stack([uniform, one_hot])])  # (1, 2, 3, 3)
    entropy = attention_entropy(attention)  # (1, 2)
    assert entropy.shape == (1, 2)
    assert math.isclose(entropy[0, 0], (0 + math.log(2) + math.log(3)) / 3)
    assert math.isclose(entropy[0, 0], uniform_entropy(3)) and entropy[0, 1] == 0.0


def test_update_ratios_are_measured_as_often_as_their_budget_allows():
    parts = PartNorms(GPTModel(CFG))
    assert [parts.due(0.0) for _ in range(3)] == [True] * 3  # no cost measured yet: every step
    parts.cost_s = 1.0  # a measurement took 1 s; steps of 10 s: every ceil(1 / (0.0125 * 10)) = 8th step
    assert [parts.due(10.0) for _ in range(16)] == ([False] * 7 + [True]) * 2
    parts.cost_s = 0.001
    assert all(parts.due(10.0) for _ in range(5))  # cheap next to a step: every step


def test_metrics_lines_carry_the_diagnostics_and_readers_take_old_lines(tmp_path, monkeypatch):
    monkeypatch.setattr(training_diagnostics, "UPDATE_RATIO_BUDGET", 1e9)  # every step, however tiny
    trainer = _trainer(tmp_path / "run")
    while not trainer.done:
        trainer.step()
    trainer.close()
    lines = read_metrics(tmp_path / "run")
    assert lines[0]["step"] == 0 and "grad_norms" not in lines[0] and len(lines[0]["attention_entropy"]) == 3
    for line in lines[1:]:
        assert set(line["grad_norms"]) == {"embeddings", "block.0", "block.1", "block.2", "final_norm"}
        assert math.isclose(
            math.sqrt(sum(v**2 for v in line["grad_norms"].values())), line["grad_norm"], rel_tol=1e-5
        )
        assert set(line["update_ratios"]) == set(line["grad_norms"])
        assert ("attention_entropy" in line) == ("val_loss" in line)  # at evaluations
        assert np.array(line.get("attention_entropy", [[0] * 4] * 3)).shape == (3, 4)  # (L, H)
    # An older run's lines (no diagnostics) and a NaN inside a part follow and read as before.
    old = tmp_path / "old"
    old.mkdir()
    (old / "metrics.jsonl").write_text(
        json.dumps({"step": 1, "train_loss": 5.0, "grad_norm": 1.0}) + "\n"
        + json.dumps({"step": 2, "train_loss": 4.0, "grad_norms": {"block.0": None}}) + "\n"
    )  # fmt: skip
    follower = MetricsFollower(old)
    assert [r["step"] for r in follower.poll()] == [1, 2]
    assert read_metrics(old)[1]["grad_norms"] == {"block.0": None}
