"""Each pane remembers its own controls between launches (save_settings / restore_settings on the pane,
not the window reaching into its widgets); a value that no longer validates keeps the pane's defaults."""

from __future__ import annotations

from gptviz.qt.panes.generation import GenerationPane
from gptviz.qt.panes.tokens import DEFAULT_TEXT, TokensPane
from gptviz.qt.panes.training import TrainingPane
from gptviz.qt.settings import AppSettings


def test_each_pane_reads_back_what_it_saved(qtbot):
    tokens, generation, training = TokensPane(), GenerationPane(), TrainingPane()
    for pane in (tokens, generation, training):
        qtbot.addWidget(pane)
    tokens.set_text("one two <|endoftext|>")
    tokens.max_length.setValue(7)
    tokens.stride.setValue(3)
    generation.prompt.setText("In the beginning")
    generation.temperature.setValue(1.3)
    generation.top_k.setValue(0)
    generation.top_p.setValue(0.5)
    generation.seed.setValue(42)
    generation.stop_at_eot.setChecked(False)
    training.steps.setValue(1234)
    training.batch_size.setValue(3)
    training.eval_freq.setValue(17)
    training.lr.setValue(0.0025)
    settings = AppSettings()
    for pane in (tokens, generation, training):
        pane.save_settings(settings)
    settings.qsettings.sync()

    again = AppSettings()
    tokens2, generation2, training2 = TokensPane(), GenerationPane(), TrainingPane()
    for pane in (tokens2, generation2, training2):
        qtbot.addWidget(pane)
        pane.restore_settings(again)
    assert tokens2.text() == "one two <|endoftext|>"
    assert (tokens2.max_length.value(), tokens2.stride.value()) == (7, 3)
    assert generation2.prompt.text() == "In the beginning"
    sampling = generation2.sampling()
    assert (sampling.temperature, sampling.top_k, sampling.top_p, sampling.seed, sampling.stop_at_eot) == (
        1.3,
        None,
        0.5,
        42,
        False,
    )
    assert (training2.steps.value(), training2.batch_size.value(), training2.eval_freq.value()) == (
        1234,
        3,
        17,
    )
    assert training2.lr.value() == 0.0025


def test_a_first_launch_and_a_bad_saved_value(qtbot):
    settings = AppSettings()
    tokens, generation = TokensPane(), GenerationPane()
    qtbot.addWidget(tokens)
    qtbot.addWidget(generation)
    before = generation.sampling()
    settings.set_value("generation/top_p", 7.5)  # outside (0, 1]: SamplingSettings refuses it
    tokens.restore_settings(settings)
    generation.restore_settings(settings)
    assert tokens.text() == DEFAULT_TEXT
    assert generation.sampling() == before
