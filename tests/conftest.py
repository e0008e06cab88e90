"""Shared fixtures: tiny seeded models so every test runs in well under a second."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402
import torch  # noqa: E402

from gptviz.config import GPTConfig  # noqa: E402
from gptviz.model.gpt import GPTModel  # noqa: E402


@pytest.fixture(scope="session")
def _session_cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(autouse=True)
def _private_data_dir(tmp_path_factory, monkeypatch, _session_cache_dir):
    """Every test gets its own data folder: the window writes its training runs there (and downloads go
    there), never into the user's real one. The C decoding step (native_decode) is built once per session
    into a cache folder of the session's own, not the user's."""
    monkeypatch.setenv("GPTVIZ_DATA_DIR", str(tmp_path_factory.mktemp("data")))
    monkeypatch.setenv("GPTVIZ_CACHE_DIR", str(_session_cache_dir))


@pytest.fixture
def tiny_cfg() -> GPTConfig:
    return GPTConfig(
        vocab_size=50257, context_length=32, emb_dim=32, n_heads=4, n_layers=2, drop_rate=0.0, name="t"
    )


@pytest.fixture
def tiny_model(tiny_cfg: GPTConfig) -> GPTModel:
    torch.manual_seed(123)
    return GPTModel(tiny_cfg).eval()
