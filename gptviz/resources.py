"""Paths of the files that ship in `resources/` (tokenizer ranks, demo model)."""

from __future__ import annotations

from pathlib import Path

RESOURCES_DIR = Path(__file__).resolve().parent.parent / "resources"
TOKENIZER_FILE = RESOURCES_DIR / "gpt2.tiktoken"
TOKENIZER_SHA256_FILE = RESOURCES_DIR / "gpt2.tiktoken.sha256"
DEMO_MODEL_DIR = RESOURCES_DIR / "demo-model"
