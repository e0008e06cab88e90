"""Storms: many Step requests at once, prompt changes in the middle. What the window finally shows must equal
the engine's state, and a new prompt must not wait for the steps queued before it."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402

from gptviz.engine.inspection import inspect_tokens  # noqa: E402


def _settled(qtbot, window, n_tokens: int, timeout: int = 60_000) -> None:
    context = window.host.worker.session.model.cfg.context_length

    def shown() -> bool:
        snap = window.attention_pane.snapshot
        view = window.generation_pane.view
        return (
            snap is not None
            and view is not None
            and snap.n_tokens == min(n_tokens, context)
            and len(view.prompt_ids) + len(view.new_ids) == n_tokens
            and window.activations_pane.snapshot is snap
        )

    qtbot.waitUntil(shown, timeout=timeout)


def test_a_storm_of_steps_ends_with_every_pane_on_the_engines_state(qtbot, main_window):
    window = main_window
    window.set_prompt("Every effort moves you")
    _settled(qtbot, window, 4)
    for _ in range(200):
        window.host.submit("gen_step")
    _settled(qtbot, window, 204)
    session = window.host.worker.session
    ids = session.current_ids()
    shown = window.attention_pane.snapshot
    assert list(window.generation_pane.view.new_ids) == ids[4:]
    cropped = max(0, len(ids) - session.model.cfg.context_length)
    oracle = inspect_tokens(session.model, session.tokenizer, ids)
    assert shown.cropped == oracle.cropped == cropped
    np.testing.assert_array_equal(shown.token_ids, oracle.token_ids)
    np.testing.assert_allclose(shown.residual_norms, oracle.residual_norms, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(
        np.asarray(shown.attention), np.asarray(oracle.attention), rtol=2**-10, atol=1e-6
    )


def test_a_new_prompt_skips_the_steps_queued_before_it(qtbot, main_window):
    window = main_window
    window.set_prompt("Every effort moves you")
    _settled(qtbot, window, 4)
    ran = []
    session = window.host.worker.session
    original = session.gen_step
    session.gen_step = lambda *a, **k: (ran.append(1), original(*a, **k))[1]
    for _ in range(300):
        window.host.submit("gen_step")
    window.set_prompt("A new prompt")
    _settled(qtbot, window, 3)
    assert window.generation_pane.view.new_ids.size == 0
    assert len(ran) < 300  # the steps still queued when the prompt came were skipped
    window.host.submit("gen_step")
    _settled(qtbot, window, 4)  # and steps asked for after it run as usual
