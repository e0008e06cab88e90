"""Shared fixtures: tiny seeded models so every test runs in well under a second."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402
import torch  # noqa: E402

from gptviz.config import GPTConfig  # noqa: E402
from gptviz.model.gpt import GPTModel  # noqa: E402


@pytest.fixture(autouse=True)
def _private_data_dir(tmp_path_factory, monkeypatch):
    """Every test gets its own data folder: the window writes its training runs there (and downloads go
    there), never into the user's real one."""
    monkeypatch.setenv("GPTVIZ_DATA_DIR", str(tmp_path_factory.mktemp("data")))


@pytest.fixture
def tiny_cfg() -> GPTConfig:
    return GPTConfig(
        vocab_size=50257, context_length=32, emb_dim=32, n_heads=4, n_layers=2, drop_rate=0.0, name="t"
    )


@pytest.fixture
def tiny_model(tiny_cfg: GPTConfig) -> GPTModel:
    torch.manual_seed(123)
    return GPTModel(tiny_cfg).eval()
