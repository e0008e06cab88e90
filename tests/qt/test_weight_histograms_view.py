"""The Training training_pane's weight histograms over time: a part's bins × evaluations heatmap holds exactly the
counts a metrics line carries (as log10 shares, largest values on top), and the readout names them."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from gptviz.engine import weight_histograms as wh


def _counts(seed, scale, n=5000):
    w = np.random.default_rng(seed).normal(0, scale, n).astype(np.float32)  # (n,)
    return wh.reference_histogram(w).tolist()


def test_the_view_shows_each_evaluations_histogram_of_the_chosen_part(training_pane):
    records = [
        {"step": 0, "val_loss": 6.0, "weight_histograms": {"embeddings": _counts(0, 0.02), "block.0": _counts(1, 0.02)}},
        {"step": 1, "train_loss": 5.9},  # no evaluation: no histogram
        {"step": 2, "train_loss": 5.0, "val_loss": 5.5,
         "weight_histograms": {"embeddings": _counts(2, 0.05), "block.0": _counts(3, 0.5)}},
    ]  # fmt: skip
    training_pane.add_follow(
        SimpleNamespace(records=records, probes=(), restart=False, total_steps=2, run_dir="")
    )
    view = training_pane.histogram_view
    training_pane.views.setCurrentWidget(view)
    assert [view.part_choice.itemText(i) for i in range(view.part_choice.count())] == [
        "embeddings",
        "block.0",
    ]
    view.select("block.0")
    training_pane._dirty = True
    training_pane.refresh()
    heat = view.heatmap
    assert heat.table.steps == [0, 2]
    counts = np.array(
        [records[0]["weight_histograms"]["block.0"], records[2]["weight_histograms"]["block.0"]]
    )
    with np.errstate(divide="ignore"):
        expected = np.log10(counts / counts.sum(axis=1, keepdims=True)).T[::-1]  # (N_BINS, 2) top down
    expected[~np.isfinite(expected)] = np.nan
    assert heat.shown.shape == (wh.N_BINS, 2)
    np.testing.assert_allclose(heat.shown, expected.astype(np.float32), rtol=1e-6)
    # The wider spread at step 2 reaches rows the first evaluation left empty (an exploding part).
    assert np.isnan(heat.shown[:, 0]).sum() > np.isnan(heat.shown[:, 1]).sum()
    bin_index = wh.LABELS.index("[0.25, 0.312)")
    row = wh.N_BINS - 1 - bin_index
    count = counts[1][bin_index]
    assert count > 0
    assert heat.value_at(1.5, row + 0.5) == (
        f"block.0 · step 2 · [0.25, 0.312) · {100 * count / 5000:.3g}% of its weights ({count:,} of 5,000)"
    )
    ticks = dict((round(y - 0.5), text) for y, text in heat.row_ticks())
    assert ticks[wh.N_BINS - 1 - wh.CENTRE] == "0" and ticks[0] == "128"
    view.select("embeddings")
    training_pane._dirty = True
    training_pane.refresh()
    shares = np.array(records[2]["weight_histograms"]["embeddings"]) / 5000
    with np.errstate(divide="ignore"):
        np.testing.assert_allclose(
            np.nan_to_num(view.heatmap.shown[:, 1], nan=-99),
            np.nan_to_num(np.log10(shares[::-1]), neginf=-99),
            rtol=1e-6,
        )
    training_pane.clear()
    assert view.part_choice.count() == 0 and view.empty.isVisible()


def test_a_damaged_histogram_is_skipped(training_pane):
    records = [{"step": 3, "weight_histograms": {"block.0": [1, 2, 3], "embeddings": "x"}}, {"step": 4}]
    training_pane.add_follow(
        SimpleNamespace(records=records, probes=(), restart=False, total_steps=4, run_dir="")
    )
    training_pane.views.setCurrentWidget(training_pane.histogram_view)
    training_pane.refresh()
    assert training_pane.histogram_view.part_choice.count() == 0
    assert training_pane.histogram_view.empty.isVisible()
