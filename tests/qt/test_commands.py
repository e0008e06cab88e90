"""The typed commands and their queueing rules (gptviz.qt.commands): which request wins, which is moot,
which result is stale. Plain Python: no thread, no window, no session."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import threading

import pytest

from gptviz.qt import commands as cmd
from gptviz.qt.commands import Newest


def _noted(newest: Newest, *commands: cmd.Command) -> list[int]:
    """Note the commands as requests 1, 2, … in order, as the host does; their ids."""
    ids = []
    for request, command in enumerate(commands, start=1):
        newest.note(command, request)
        ids.append(request)
    return ids


def test_a_step_queued_before_a_new_prompt_is_skipped_and_one_after_it_runs():
    newest = Newest()
    step, force, undo, prompt, later = _noted(
        newest, cmd.GenStep(), cmd.Force(7), cmd.Undo(), cmd.SetPrompt("new"), cmd.GenStep()
    )
    assert newest.superseded(cmd.GenStep(), step)
    assert newest.superseded(cmd.Force(7), force)
    assert newest.superseded(cmd.Undo(), undo)
    assert not newest.superseded(cmd.SetPrompt("new"), prompt)
    assert not newest.superseded(cmd.GenStep(), later)
    assert newest.newest(cmd.SEQUENCE) == prompt


@pytest.mark.parametrize(
    "reset",
    [
        cmd.Reset(),
        cmd.LoadCheckpoint("ckpt"),
        cmd.ImportWeights("w.pth"),
        cmd.NewModel("tiny"),
        cmd.Follow("run"),
        cmd.ResumeRun("run"),
        cmd.TrainRecipe("book-small"),
    ],
)
def test_every_new_sequence_makes_the_steps_before_it_moot(reset):
    newest = Newest()
    step, _ = _noted(newest, cmd.GenStep(), reset)
    assert newest.superseded(cmd.GenStep(), step)


def test_actions_that_keep_the_sequence_leave_queued_steps_alone():
    newest = Newest()
    step, *_ = _noted(
        newest, cmd.GenStep(), cmd.SetSampling(None), cmd.TrainStart(), cmd.SetAblations(()), cmd.Play()
    )
    assert not newest.superseded(cmd.GenStep(), step)
    assert newest.newest(cmd.SEQUENCE) == 0


def test_newest_wins_per_channel_and_channels_do_not_interfere():
    newest = Newest()
    t1, i1, t2, w1 = _noted(
        newest, cmd.Tokenize("a"), cmd.Inspect(mlp_layer=1), cmd.Tokenize("ab"), cmd.Windows(4, 1)
    )
    assert newest.superseded(cmd.Tokenize("a"), t1)
    assert not newest.superseded(cmd.Tokenize("ab"), t2)
    assert not newest.superseded(cmd.Inspect(mlp_layer=1), i1)  # a tokenize does not replace an inspection
    assert not newest.superseded(cmd.Windows(4, 1), w1)
    # results: an older request's answer on its channel is stale, the newest's and the worker's own are not
    assert newest.stale(cmd.TOKENS, t1)
    assert not newest.stale(cmd.TOKENS, t2)
    assert not newest.stale(cmd.TOKENS, cmd.WORKER_ORIGIN)
    assert not newest.stale(cmd.INSPECTION, i1)
    assert not newest.stale(cmd.GENERATION, t1)  # nobody asked on this channel: nothing is newer


def test_a_followed_runs_poll_that_ran_keeps_its_batch_when_a_newer_poll_was_asked_for():
    """Each batch of a followed run holds lines no later batch repeats: a poll not yet started may be
    skipped (the next reads everything), but the result of one that ran is never dropped as stale."""
    newest = Newest()
    first, second = _noted(newest, cmd.PollFollow(), cmd.PollFollow())
    assert newest.superseded(cmd.PollFollow(), first)  # not started: skipped
    assert not newest.stale(cmd.FOLLOW, first)  # started before the second was asked for: kept
    assert not newest.stale(cmd.FOLLOW, second)


def test_an_older_prompt_still_queued_is_skipped():
    newest = Newest()
    first, second = _noted(newest, cmd.SetPrompt("a"), cmd.SetPrompt("ab"))
    assert newest.superseded(cmd.SetPrompt("a"), first)
    assert not newest.superseded(cmd.SetPrompt("ab"), second)


def test_commands_without_a_channel_always_run():
    newest = Newest()
    ids = _noted(newest, cmd.TrainPause(), cmd.TrainPause(), cmd.SaveCheckpoint("a"), cmd.SaveCheckpoint("b"))
    assert not any(newest.superseded(cmd.TrainPause(), i) for i in ids)


def test_which_commands_cancel_the_analyses_of_the_old_model():
    replacing = [cmd.LoadCheckpoint("x"), cmd.ImportWeights("x"), cmd.NewModel("tiny"), cmd.Follow("run")]
    replacing += [cmd.ResumeRun("run"), cmd.TrainRecipe("book-small"), cmd.TrainStart(preset="tiny")]
    assert all(c.cancels_analyses() for c in replacing)
    keeping = [cmd.TrainStart(), cmd.TrainStart(settings=None, preset=None), cmd.GenStep(), cmd.Reset()]
    keeping += [cmd.SetPrompt("x"), cmd.SetAblations(()), cmd.SaveCheckpoint("x")]
    assert not any(c.cancels_analyses() for c in keeping)


def test_the_long_analyses_carry_their_cancel_event():
    event = threading.Event()
    assert cmd.Patch("a", "b", " c", " d", cancel=event).cancel_event() is event
    assert cmd.IntegratedGradients(3, cancel=event).cancel_event() is event
    assert cmd.Why(3).cancel_event() is None
    # the event is not part of what the command asks: two patches of the same prompts are equal
    assert cmd.Patch("a", "b", " c", " d", cancel=event) == cmd.Patch("a", "b", " c", " d")


def test_commands_are_frozen_and_named_for_errors():
    command = cmd.LoadCheckpoint("a")
    with pytest.raises(dataclasses.FrozenInstanceError):
        command.path = "b"  # type: ignore[misc]
    names = [c.name for c in cmd.ALL_COMMANDS]
    assert len(names) == len(set(names)) == 30
    # File › Recent files drops a path whose open failed by the command's name
    assert (cmd.LoadCorpus.name, cmd.LoadCheckpoint.name, cmd.ImportWeights.name, cmd.Follow.name) == (
        "load_corpus",
        "load_checkpoint",
        "import_weights",
        "follow",
    )
    assert all(c.activity for c in cmd.ALL_COMMANDS)


def test_the_module_imports_neither_torch_nor_qt():
    """The window imports it while it paints, before torch loads."""
    code = (
        "import sys, gptviz.qt.commands; "
        "bad = [m for m in ('torch', 'PySide6', 'numpy') if m in sys.modules]; "
        "print(*bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
