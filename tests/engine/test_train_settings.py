"""Training settings and recipes: torch-free to import, each refusal names its setting, the names match the
torch types the trainer maps them to."""

from __future__ import annotations

import subprocess
import sys

import pytest

from gptviz.engine.train_settings import AMP_MODES, RECIPES, SAVE_DTYPE_NAMES, TrainSettings, recipe
from gptviz.errors import ConfigError


def test_importing_the_settings_and_recipes_leaves_torch_unloaded():
    """The window lists RECIPES before torch is imported; a module-level torch import here would undo that."""
    code = (
        "import sys; from gptviz.engine.train_settings import RECIPES; "
        "assert RECIPES['book-ch5'].title; print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"stride": 0}, "stride must be a positive integer"),
        ({"steps": True}, "steps must be a positive integer"),
        ({"warmup_steps": -1}, "warmup_steps must be 0 or more"),
        ({"lr": float("nan")}, "lr must be a positive number"),
        ({"lr": 1e-3, "min_lr": 2e-3}, r"min_lr must be between 0 and lr \(0.001\)"),
        ({"weight_decay": float("inf")}, "weight_decay must be 0 or more"),
        ({"amp": "fp8"}, "amp must be one of off, bf16"),
        ({"split": "words"}, "split must be one of tokens, chars"),
        ({"init": "xavier"}, "init must be one of gpt2, book"),
        ({"decay": "biases"}, "decay must be one of matrices, all"),
        ({"eval_protocol": "nanogpt"}, "eval_protocol must be one of fixed, book"),
        ({"probe_tokens": -2}, "probe_tokens must be 0 or more"),
    ],
)
def test_each_refusal_names_the_setting_and_the_choices(changes, named):
    with pytest.raises(ConfigError, match=named):
        TrainSettings(**changes)


def test_the_first_bad_setting_in_reading_order_is_the_one_named():
    """Sizes before the optimizer before the choices before the probe, as the settings are listed."""
    with pytest.raises(ConfigError, match="batch_size"):
        TrainSettings(batch_size=0, lr=-1.0, amp="fp8", probe_prompt="")
    with pytest.raises(ConfigError, match="lr must"):
        TrainSettings(lr=-1.0, amp="fp8", probe_prompt="")
    with pytest.raises(ConfigError, match="amp must"):
        TrainSettings(amp="fp8", probe_prompt="")


def test_cuda_with_an_index_is_a_device_name_the_settings_accept():
    assert TrainSettings(device="cuda:1").device == "cuda:1"


def test_the_names_match_the_torch_types_the_trainer_uses():
    from gptviz.engine.train_optimizer import AMP_DTYPES
    from gptviz.engine.train_rundir import SAVE_DTYPES

    assert tuple(SAVE_DTYPES) == SAVE_DTYPE_NAMES
    assert tuple(AMP_DTYPES) == AMP_MODES


def test_a_recipe_gives_its_model_and_settings_and_steps_replace_epochs():
    book = recipe("book-ch5")
    assert RECIPES["book-ch5"] is book
    cfg = book.config()
    assert (cfg.context_length, cfg.tie_weights, cfg.qkv_bias) == (256, False, False)
    assert book.settings().epochs == 10 and book.settings().steps is None
    shorter = book.settings(steps=3)
    assert (shorter.steps, shorter.epochs, shorter.eval_protocol) == (3, None, "book")
    with pytest.raises(ConfigError, match="unknown recipe 'book-ch6'; choose one of book-ch5"):
        recipe("book-ch6")
