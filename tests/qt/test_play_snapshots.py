"""Play makes an inspection snapshot only for the tokens the window will draw (those that arrive once the
window may redraw again), sends the generation view only with a snapshot (so the Generation pane never runs
ahead of the Attention and Activations panes), and still ends on the last token played, at the end of Play
and when paused.

Driven through a WorkerHost without a window, so the test sets when "the window" may redraw."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402

from gptviz.engine.inspection import inspect_tokens  # noqa: E402
from gptviz.qt import commands as cmd  # noqa: E402
from gptviz.qt.worker_host import WorkerHost  # noqa: E402


@pytest.fixture
def host(qtbot, session_factory):
    made = WorkerHost(session_factory)
    made.seen = {cmd.GENERATION: [], cmd.INSPECTION: []}
    made.resultReady.connect(
        lambda channel, payload: made.seen[channel].append(payload) if channel in made.seen else None
    )
    with qtbot.waitSignal(made.ready, timeout=30_000):
        made.start()
    qtbot.waitUntil(lambda: bool(made.seen[cmd.INSPECTION]), timeout=30_000)  # the prompt's
    yield made
    assert made.shutdown(5000)


def _played(host) -> list[int]:
    return [len(v.new_ids) for v in host.seen[cmd.GENERATION] if len(v.new_ids)]


def _snapshots(host, prompt: int) -> list[int]:
    return [s.n_tokens - prompt for s in host.seen[cmd.INSPECTION] if s.n_tokens > prompt]


def test_play_makes_snapshots_only_for_the_last_token_when_no_redraw_would_come(host, qtbot):
    prompt = host.seen[cmd.INSPECTION][-1].n_tokens
    host.newest.redraw_free_at = 1e12  # the window will not redraw before Play ends
    host.submit(cmd.Play(interval_ms=0, limit=12))
    qtbot.waitUntil(lambda: _snapshots(host, prompt) == [12], timeout=60_000)
    assert _played(host) == [12]  # the followed tokens' view went out with the snapshot, not before
    shown = host.seen[cmd.INSPECTION][-1]
    session = host.worker.session
    oracle = inspect_tokens(session.model, session.tokenizer, session.current_ids())
    assert shown.lens_ids.tolist() == oracle.lens_ids.tolist()  # the last token's lens, from kept rows
    assert shown.residual_norms.shape == oracle.residual_norms.shape


def test_play_makes_every_snapshot_when_the_window_may_always_redraw(host, qtbot):
    prompt = host.seen[cmd.INSPECTION][-1].n_tokens
    host.newest.redraw_free_at = 0.0
    host.submit(cmd.Play(interval_ms=0, limit=6))
    qtbot.waitUntil(lambda: len(_snapshots(host, prompt)) == 6, timeout=60_000)
    assert _snapshots(host, prompt) == [1, 2, 3, 4, 5, 6]
    assert _played(host) == [1, 2, 3, 4, 5, 6]


def test_a_snapshot_just_sent_holds_the_window_for_its_redraw_gap(host, qtbot):
    """The window may redraw now by its last word, but a snapshot Play has just sent will keep it busy for
    a redraw gap: the tokens within that gap are followed, not snapshotted (the window has not yet had
    time to say when it may redraw again)."""
    prompt = host.seen[cmd.INSPECTION][-1].n_tokens
    host.newest.redraw_free_at = 0.0
    host.newest.redraw_gap = 1e12
    host.submit(cmd.Play(interval_ms=0, limit=6))
    qtbot.waitUntil(lambda: 6 in _snapshots(host, prompt), timeout=60_000)
    assert _snapshots(host, prompt) == [1, 6]
    assert _played(host) == [1, 6]


def test_pausing_play_sends_the_snapshot_of_the_token_it_stopped_on(host, qtbot):
    prompt = host.seen[cmd.INSPECTION][-1].n_tokens
    host.newest.redraw_free_at = 1e12
    host.submit(cmd.Play(interval_ms=20, limit=1000))
    session = host.worker.session
    qtbot.waitUntil(lambda: len(session.current_ids()) >= prompt + 4, timeout=60_000)
    assert not _played(host)  # followed only: nothing sent while the window would not redraw
    host.submit(cmd.PausePlay())
    qtbot.waitUntil(lambda: not host.worker.playing and bool(_snapshots(host, prompt)), timeout=30_000)
    qtbot.wait(200)  # a tick already queued may still run: it ends the same way
    assert _snapshots(host, prompt)[-1] == _played(host)[-1] >= 4
    assert _snapshots(host, prompt) == _played(host)


def test_a_new_inspection_while_play_follows_sends_the_followed_tokens_first(host, qtbot):
    """A pane's new choice (an Inspect) during Play gets a snapshot of the newest tokens, and the
    generation view of the same tokens goes out before it."""
    prompt = host.seen[cmd.INSPECTION][-1].n_tokens
    host.newest.redraw_free_at = 1e12
    host.submit(cmd.Play(interval_ms=20, limit=1000))
    session = host.worker.session
    qtbot.waitUntil(lambda: len(session.current_ids()) >= prompt + 3, timeout=60_000)
    host.submit(cmd.Inspect(mlp_layer=1))
    qtbot.waitUntil(lambda: bool(_snapshots(host, prompt)), timeout=30_000)
    host.submit(cmd.PausePlay())
    qtbot.waitUntil(lambda: not host.worker.playing, timeout=30_000)
    first = _snapshots(host, prompt)[0]
    assert first >= 3
    assert _played(host)[0] == first  # the view came with it (and before it: the window draws both)
    assert host.seen[cmd.INSPECTION][-1].mlp_layer == 1
