import pytest

from gptviz.config import PRESETS, GPTConfig, count_params, preset, size_report
from gptviz.errors import ConfigError
from gptviz.model.gpt import GPTModel


def test_book_parameter_counts():
    cfg = preset("124M")
    assert count_params(cfg, tied=False) == 163_009_536
    assert count_params(cfg, tied=True) == 124_412_160
    report = size_report(cfg)
    assert report["params"] == 124_412_160
    assert report["params_untied"] == 163_009_536
    assert round(report["bytes_fp32_untied"] / 2**20, 2) == 621.83


@pytest.mark.parametrize("name", ["tiny", "124M"])
def test_count_matches_a_real_model(name):
    cfg = PRESETS[name]
    assert GPTModel(cfg).num_parameters() == count_params(cfg)
    untied = cfg.replace(tie_weights=False, qkv_bias=True)
    assert GPTModel(untied).num_parameters() == count_params(untied)


def test_book_sizes():
    widths = {name: (c.emb_dim, c.n_layers, c.n_heads) for name, c in PRESETS.items()}
    assert widths["355M"] == (1024, 24, 16)
    assert widths["774M"] == (1280, 36, 20)
    assert widths["1558M"] == (1600, 48, 25)
    assert all(PRESETS[n].context_length == 1024 for n in ("124M", "355M", "774M", "1558M"))


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"n_heads": 5}, "must divide"),
        ({"emb_dim": 0}, "positive"),
        ({"n_layers": -1}, "positive"),
        ({"drop_rate": 1.5}, "drop_rate"),
    ],
)
def test_bad_settings_are_refused(changes, message):
    with pytest.raises(ConfigError, match=message):
        GPTConfig(**{"emb_dim": 64, "n_heads": 4, **changes})


def test_round_trip_dict():
    cfg = preset("tiny")
    assert GPTConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError, match="unknown"):
        GPTConfig.from_dict({**cfg.to_dict(), "wings": 2})
    with pytest.raises(ConfigError, match="unknown preset"):
        preset("7B")
