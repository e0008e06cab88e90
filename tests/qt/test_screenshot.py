"""`gptviz screenshot`: the real window on a checkpoint, six PNGs, no display; the Training pane shows the
checkpoint's own history instead of training first."""

from __future__ import annotations

import argparse

from PySide6.QtGui import QImage

from gptviz.commands import screenshot
from gptviz.data import split_ids
from gptviz.engine.trainer import Trainer
from gptviz.qt.panes.training import TrainingPane
from gptviz.qt.settings import ENV_SETTINGS_DIR


def test_screenshot_writes_every_pane_of_a_checkpoint_with_history(
    qtbot, session, tmp_path, train_settings, monkeypatch, _isolated_settings
):
    run = tmp_path / "run"
    train_ids, val_ids = split_ids(session.corpus_ids, 0.1)
    corpus = {"name": "small.txt", "source": session.corpus.path}
    trainer = Trainer(
        session.model, session.tokenizer, train_ids, val_ids, train_settings(3, 2), run, corpus=corpus
    )
    for _ in range(3):
        trainer.step()
    trainer.close()
    shown = {}
    original = TrainingPane.set_history

    def record(self, batch):
        original(self, batch)
        if batch is not None:
            shown["label"] = self.history
            shown["points"] = self.point_counts()

    monkeypatch.setattr(TrainingPane, "set_history", record)
    monkeypatch.setenv(ENV_SETTINGS_DIR, str(_isolated_settings))  # restored after the command sets it
    parser = argparse.ArgumentParser()
    screenshot.add_arguments(parser)
    out = tmp_path / "shots"
    args = parser.parse_args(
        ["--out", str(out), "--checkpoint", str(run), "--tokens", "2", "--timeout", "120"]
    )
    assert screenshot.run(args) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(
        f"{k}.png" for k in ("main", "tokens", "generation", "attention", "activations", "training")
    )
    for name in names:
        image = QImage(str(out / name))
        assert not image.isNull() and image.width() >= 800 and image.height() >= 600
    assert shown == {
        "label": "history of run: 3 steps on small.txt",
        "points": {"train": 3, "train_eval": 4, "val": 4},  # evaluations: the untrained model (step 0) too
    }


def test_screenshot_size_option_reads_width_by_height():
    parser = argparse.ArgumentParser()
    screenshot.add_arguments(parser)
    assert parser.parse_args(["--out", "x", "--size", "1280x720"]).size == (1280, 720)
    assert parser.parse_args(["--out", "x"]).size is None
    for bad in ("1280", "wide", "100x100"):
        try:
            parser.parse_args(["--out", "x", "--size", bad])
        except SystemExit as exc:
            assert exc.code == 2
        else:
            raise AssertionError(f"--size {bad} was accepted")
