"""The Training training_pane's diagnostics views: parts × steps heatmaps of gradient norms and update ratios in log
colour, attention entropy per head over evaluations; the images hold exactly the trainer's numbers."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import torch

from gptviz.config import GPTConfig
from gptviz.engine.train_settings import TrainSettings
from gptviz.engine.trainer import Trainer
from gptviz.model.gpt import GPTModel
from gptviz.qt.panes.training.diagnostics import SeriesTable

CFG = GPTConfig(vocab_size=512, context_length=16, emb_dim=32, n_heads=4, n_layers=2, drop_rate=0.0)


def _results(steps=5):
    torch.manual_seed(0)
    ids = torch.randint(0, 512, (800,), generator=torch.Generator().manual_seed(0))  # (800,)
    settings = TrainSettings(
        steps=steps, batch_size=4, context=16, eval_freq=2, eval_iter=1, probe_tokens=1, probe_prompt="a b c",
        device="cpu", lr=3e-3,
    )  # fmt: skip
    trainer = Trainer(GPTModel(CFG), None, ids[:600], ids[600:], settings)
    return [trainer.start()] + [trainer.step() for _ in range(steps)]


def test_heatmaps_hold_the_log_of_each_parts_numbers(training_pane, monkeypatch):
    from gptviz.engine import training_diagnostics

    monkeypatch.setattr(training_diagnostics, "UPDATE_RATIO_BUDGET", 1e9)  # ratios on every step
    results = _results()
    for r in results:
        training_pane.add_update(SimpleNamespace(result=r, new_probes=()))
    training_pane.views.setCurrentWidget(training_pane.grad_norm_view)
    parts = ["embeddings", "block.0", "block.1", "final_norm"]
    assert training_pane.grad_norm_table.names == parts
    assert training_pane.grad_norm_table.steps == [1, 2, 3, 4, 5]  # step 0 trains nothing: no gradient
    expected = np.log10([[r.grad_norms[p] for r in results[1:]] for p in parts])  # (parts, steps)
    np.testing.assert_allclose(training_pane.grad_norm_view.shown, expected, rtol=1e-6)
    training_pane.views.setCurrentWidget(training_pane.update_ratio_view)
    expected = np.log10([[r.update_ratios[p] for r in results[1:]] for p in parts])
    np.testing.assert_allclose(training_pane.update_ratio_view.shown, expected, rtol=1e-6)
    readout = training_pane.update_ratio_view.value_at(2.5, 1.5)  # third column, second row
    assert readout == f"block.0 · step 3 · update ratio {results[3].update_ratios['block.0']:.3g}"
    training_pane.views.setCurrentWidget(training_pane.entropy_view)
    evaluated = [r for r in results if r.attention_entropy is not None]
    assert [r.step for r in evaluated] == [0, 1, 2, 4, 5]
    assert training_pane.entropy_table.names[:5] == ["L0 H0", "L0 H1", "L0 H2", "L0 H3", "L1 H0"]
    expected = np.array([np.ravel(r.attention_entropy) for r in evaluated]).T  # (heads, evaluations)
    np.testing.assert_allclose(training_pane.entropy_view.shown, expected, rtol=1e-6)  # plain colour, nats


def test_old_metrics_lines_without_diagnostics_show_an_empty_view(training_pane):
    records = ({"step": 1, "train_loss": 5.0, "grad_norm": 1.0}, {"step": 2, "train_loss": 4.0})
    training_pane.add_follow(
        SimpleNamespace(records=records, probes=(), restart=False, total_steps=2, run_dir="")
    )
    training_pane.views.setCurrentWidget(training_pane.grad_norm_view)
    training_pane.refresh()
    assert (
        training_pane.grad_norm_view.shown.size == 0
        and "no gradient norm yet" in training_pane.grad_norm_view.readout.text()
    )
    assert training_pane.train_curve_data.n == 2


def test_a_long_run_keeps_a_bounded_table():
    table = SeriesTable(max_columns=100)
    for step in range(1, 1001):
        table.append(step, {"a": float(step), "b": 2.0 * step})
    assert len(table.steps) <= 101 and table.steps[0] == 1
    assert table.matrix().shape == (2, len(table.steps))
    np.testing.assert_array_equal(table.matrix()[1], 2 * np.array(table.steps))


def test_the_empty_notice_goes_when_the_numbers_arrive(training_pane):
    """A view first drawn empty (a run's first lines carry no diagnostics) says so, and stops saying so once
    numbers arrive; seen on the Weight histograms tab of a kept checkpoint, whose heatmap was full."""
    training_pane.add_follow(
        SimpleNamespace(
            records=({"step": 1, "train_loss": 5.0},), probes=(), restart=False, total_steps=3, run_dir=""
        )
    )
    training_pane.views.setCurrentWidget(training_pane.grad_norm_view)
    training_pane.refresh()
    assert "no gradient norm yet" in training_pane.grad_norm_view.readout.text()
    records = ({"step": 2, "train_loss": 4.0, "grad_norms": {"embeddings": 0.5, "block.0": 0.25}},)
    training_pane.add_follow(
        SimpleNamespace(records=records, probes=(), restart=False, total_steps=3, run_dir="")
    )
    training_pane.refresh()
    assert training_pane.grad_norm_view.shown.size == 2
    assert "yet" not in training_pane.grad_norm_view.readout.text()
