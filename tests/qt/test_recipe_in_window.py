"""Model › Train a recipe: the recipe's corpus and model shape, its settings, written to the data folder."""

from __future__ import annotations

import dataclasses
import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from gptviz.engine import runs, train_settings  # noqa: E402
from gptviz.engine.rundir import read_metrics  # noqa: E402
from gptviz.qt import commands as cmd  # noqa: E402


def test_a_recipe_trains_its_corpus_and_model_on_disk(qtbot, main_window, monkeypatch):
    small = dataclasses.replace(
        train_settings.BOOK_CH5,
        name="book-small",
        title="Book ch. 5, small",
        preset="tiny",
        model={
            "context_length": 32,
            "tie_weights": False,
            "qkv_bias": False,
            "drop_rate": 0.1,
            "n_layers": 2,
            "emb_dim": 32,
            "n_heads": 2,
        },
        train={**train_settings.BOOK_CH5.train, "context": 32, "stride": 32, "epochs": 1, "eval_iter": 1},
    )
    monkeypatch.setitem(train_settings.RECIPES, small.name, small)
    window = main_window
    states = []
    window.host.resultReady.connect(lambda ch, p: states.append(p) if ch == "train_state" else None)
    window.host.submit(cmd.TrainRecipe("book-small"))
    session = window.host.worker.session
    qtbot.waitUntil(lambda: session.trainer is not None and session.trainer.step_count >= 2, timeout=60_000)
    assert session.corpus.name.startswith("the-verdict")
    assert not session.model.cfg.tie_weights and session.model.cfg.context_length == 32
    assert session.trainer.settings.split == "chars" and session.trainer.settings.eval_protocol == "book"
    run_dir = session.run_dir
    assert run_dir.parent == runs.runs_dir()
    window.host.submit(cmd.TrainStop())
    qtbot.waitUntil(lambda: "idle" in states[states.index("running") :], timeout=60_000)
    steps = [r["step"] for r in read_metrics(run_dir)]
    assert steps[:2] == [0, 1]  # the untrained model, then the book's evaluation after the first update
    assert runs.summarize(run_dir).corpus.startswith("the-verdict")


def test_the_book_recipe_is_in_the_model_menu(main_window):
    model = next(a.menu() for a in main_window.menuBar().actions() if a.text().replace("&", "") == "Model")
    recipes = next(a.menu() for a in model.actions() if a.menu() is not None and "recipe" in a.text())
    assert [a.text() for a in recipes.actions()] == [train_settings.BOOK_CH5.title]
