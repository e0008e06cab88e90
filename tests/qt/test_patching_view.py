"""Model › Activation patching…: the worker's maps are the engine's numbers; Cancel stops with a message."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402

from gptviz.engine.patching import patch  # noqa: E402


def test_patching_view_draws_both_maps_with_the_engines_numbers(qtbot, main_window):
    window = main_window
    view = window.show_patching()
    view.clean.setText("The cat sat on the")
    view.corrupt.setText("The dog sat on the")
    view.answer.setText(" mat")
    view.wrong.setText(" floor")
    view.run_button.click()
    assert not view.run_button.isEnabled() and view.cancel_button.isEnabled()
    qtbot.waitUntil(lambda: view.patch_result is not None, timeout=60_000)
    session = window.host.worker.session
    tok = session.tokenizer
    want = patch(
        session.model,
        tok.encode("The cat sat on the"),
        tok.encode("The dog sat on the"),
        tok.encode(" mat")[0],
        tok.encode(" floor")[0],
    )
    np.testing.assert_allclose(view.resid.matrix, want.resid, atol=1e-5)
    np.testing.assert_allclose(view.heads.matrix, want.heads, atol=1e-5)
    assert view.resid.matrix.shape == (2, 5) and view.heads.matrix.shape == (2, 4)
    assert view.resid.col_labels[1] == "·cat"
    assert "logit difference: clean" in view.status.text() and view.run_button.isEnabled()


def test_patching_cancel_and_bad_input_end_with_one_line(qtbot, main_window):
    window = main_window
    view = window.show_patching()
    view.clean.setText("The cat sat on the")
    view.corrupt.setText("The dog sat on the big")
    view.run_button.click()
    qtbot.waitUntil(lambda: view.run_button.isEnabled(), timeout=30_000)
    assert "same number of tokens" in view.status.text()
    view.corrupt.setText("The dog sat on the")
    session = window.host.worker.session
    real = session.patch

    def waits_for_cancel(*args, cancel=None, progress=None, **kwargs):
        assert cancel.wait(10)  # the run starts only once Cancel was pressed: no race with a tiny model
        return real(*args, cancel=cancel, progress=progress, **kwargs)

    session.patch = waits_for_cancel
    view.run_button.click()
    view.cancel_button.click()
    qtbot.waitUntil(lambda: view.run_button.isEnabled(), timeout=30_000)
    assert view.status.text() == "cancelled: nothing was changed" and view.patch_result is None
