"""Curves that do not lie: the book's printed curve behind a book-ch5 run, debiased smoothing with the raw
curve kept, log-y, the x axis as steps / tokens / wall time, and a hover readout. Each test checks the data
handed to the plot against numbers worked out by hand or printed in the book's note."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gptviz.engine.book_curve import is_book_run, printed_curve
from gptviz.engine.rundir import write_settings
from gptviz.engine.train_settings import BOOK_CH5
from gptviz.qt.panes.training import TrainingPane
from gptviz.qt.panes.training.curves import debiased_ema

# The book's chapter 5 notebook, as printed (step: train, val), copied by hand from the note.
BOOK_TABLE = {
    0: (9.817, 9.924),
    5: (8.066, 8.332),
    10: (6.619, 7.042),
    40: (3.879, 6.130),
    85: (0.569, 6.373),
}


def _book_settings(**train_changes):
    return {
        "model": BOOK_CH5.config().to_dict(),
        "train": {**BOOK_CH5.train, "device": "cpu", **train_changes},
        "corpus": {"name": "the-verdict (Edith Wharton, 1908)", "source": "the-verdict"},
        "total_steps": 90,
    }


def test_the_printed_curve_is_the_notes_table():
    curve = printed_curve()
    assert curve.book_steps == tuple(range(0, 90, 5))
    assert curve.steps == tuple(s + 1 for s in range(0, 90, 5))  # "Step 000000" follows the first update
    for book_step, (train, val) in BOOK_TABLE.items():
        i = curve.book_steps.index(book_step)
        assert (curve.train[i], curve.val[i]) == (train, val)
    assert curve.tokens_seen[0] == 512 and curve.tokens_seen[-1] == 86 * 512  # batch 2 × 256 tokens a step


def test_a_book_run_is_recognised_from_its_settings():
    assert is_book_run(_book_settings())
    assert is_book_run(_book_settings(epochs=2))  # a shorter run still follows the curve's start
    assert not is_book_run(_book_settings(lr=1e-3))
    tied = _book_settings()
    tied["model"]["tie_weights"] = True
    assert not is_book_run(tied)
    other = _book_settings()
    other["corpus"] = {"name": "corpus.txt", "source": "/tmp/corpus.txt"}
    assert not is_book_run(other)


@pytest.fixture
def pane(qtbot):
    pane = TrainingPane()
    qtbot.addWidget(pane)
    return pane


def test_the_book_curve_is_drawn_behind_a_book_run_and_labelled(pane, tmp_path):
    book = tmp_path / "book"
    write_settings(book, _book_settings())
    pane.set_run_dir(str(book))
    pane.refresh()
    x, y = pane.book_train_curve.getData()
    curve = printed_curve()
    np.testing.assert_array_equal(x, np.array(curve.steps, dtype=float))
    np.testing.assert_array_equal(y, np.array(curve.train))
    x, y = pane.book_val_curve.getData()
    assert y[0] == 9.924 and y[-1] == 6.373 and x[0] == 1
    labels = [label.text for _sample, label in pane.legend.items]
    assert "book (printed): train" in labels and "book (printed): val" in labels
    # On the tokens axis the book's points sit at 512 tokens a step.
    pane.x_axis.setCurrentIndex(pane.x_axis.findData("tokens"))
    x, _ = pane.book_train_curve.getData()
    assert x[0] == 512 and x[-1] == 86 * 512
    # Another run takes it down, legend included.
    other = tmp_path / "other"
    write_settings(other, _book_settings(lr=1e-3))
    pane.set_run_dir(str(other))
    pane.refresh()
    assert pane.book_train_curve.getData()[0] is None or len(pane.book_train_curve.getData()[0]) == 0
    assert not any("book" in label.text for _sample, label in pane.legend.items)


def test_debiased_ema_equals_the_hand_computation():
    # weight 0.5: s1 = 0.5·1 / (1 − 0.5) = 1; s2 = (0.25 + 1) / 0.75; s3 = (0.625 + 1.5) / 0.875
    np.testing.assert_allclose(
        debiased_ema(np.array([1.0, 2.0, 3.0]), 0.5), [1.0, 1.25 / 0.75, 2.125 / 0.875]
    )
    np.testing.assert_array_equal(debiased_ema(np.array([4.0, 1.0]), 0.0), [4.0, 1.0])
    # A constant stays constant from the first point: the debiasing undoes the zero start.
    np.testing.assert_allclose(debiased_ema(np.full(50, 3.0), 0.9), np.full(50, 3.0))


def _feed(pane, n=30):
    rng = np.random.default_rng(0)
    losses = 5.0 - np.arange(n) * 0.1 + rng.normal(0, 0.3, n)
    for step in range(1, n + 1):
        pane._add_point(
            step=step,
            tokens_seen=step * 256,
            train_loss=float(losses[step - 1]),
            train_eval=None,
            val_loss=6.0 - step * 0.05 if step % 10 == 0 else None,
            elapsed_s=step * 2.0,
        )
    pane._dirty = True
    pane.refresh()
    return losses


def test_smoothing_keeps_the_raw_curve_and_draws_the_debiased_ema(pane):
    losses = _feed(pane)
    pane.smoothing.setValue(80)
    raw_x, raw_y = pane.train_curve.getData()
    np.testing.assert_array_equal(raw_y, losses)  # the raw curve stays, unchanged
    x, y = pane.train_smooth_curve.getData()
    np.testing.assert_array_equal(x, np.arange(1, 31))
    expected, last = [], 0.0
    for t, value in enumerate(losses, start=1):  # by hand, TensorBoard's formula
        last = 0.8 * last + 0.2 * value
        expected.append(last / (1 - 0.8**t))
    np.testing.assert_allclose(y, expected, rtol=1e-12)
    assert pane.train_curve.opts["pen"].color().alpha() < 255  # faint behind the smoothed one
    pane.smoothing.setValue(0)
    assert len(pane.train_smooth_curve.getData()[1] or []) == 0


def test_log_y_and_the_x_axis_as_tokens_or_wall_time(pane):
    _feed(pane)
    pane.log_y.setChecked(True)
    assert pane.plot.getPlotItem().getAxis("left").logMode
    pane.x_axis.setCurrentIndex(pane.x_axis.findData("tokens"))
    x, _ = pane.val_curve.getData()
    np.testing.assert_array_equal(x, [2560, 5120, 7680])  # steps 10, 20, 30 × 256 tokens
    pane.x_axis.setCurrentIndex(pane.x_axis.findData("time"))
    x, _ = pane.train_curve.getData()
    np.testing.assert_array_equal(x, np.arange(1, 31) * 2.0)
    assert pane.plot.getPlotItem().getAxis("bottom").labelText == "wall time (s)"


def test_the_hover_readout_names_the_numbers_under_the_mouse(pane):
    losses = _feed(pane)
    pane.smoothing.setValue(0)
    text = pane.readout_at(20.2)
    assert text.startswith("step 20 · 5.12k tokens · 0:40")
    assert f"train {losses[19]:.3f}" in text and "val 5.000" in text
    text = pane.readout_at(14)
    assert "val 5.500 (step 10)" in text  # the last evaluation before the mouse
    assert math.isfinite(float(text.split("train ")[1].split(" ")[0]))


def test_a_new_runs_first_update_replaces_the_curves_shown_before(pane, tmp_path):
    """A recipe started from the menu does not pass through Start: its step 0 clears the old curves (a
    history, an earlier run) and keeps the book's curve its run directory asked for."""
    from types import SimpleNamespace

    _feed(pane)
    pane.latest = {"step": 30}
    book = tmp_path / "book"
    write_settings(book, _book_settings())
    pane.set_run_dir(str(book))
    first = SimpleNamespace(
        step=0, tokens_seen=0, train_loss=math.nan, train_eval_loss=10.9, val_loss=10.95, elapsed_s=1.0,
        perplexity=5.6e4, lr=4e-4, tokens_per_s=0.0, eta_s=math.nan, total_steps=90,
    )  # fmt: skip
    pane.add_update(SimpleNamespace(result=first, new_probes=()))
    pane.refresh()
    assert pane.train_curve_data.n == 0 and pane.val_curve.getData()[1].tolist() == [10.95]
    assert pane.reference is not None and len(pane.book_val_curve.getData()[0]) == 18
