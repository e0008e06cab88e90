"""Paths of the files that ship in `resources/` (tokenizer ranks, The Verdict, demo model)."""

from __future__ import annotations

from pathlib import Path

RESOURCES_DIR = Path(__file__).resolve().parent.parent / "resources"
TOKENIZER_FILE = RESOURCES_DIR / "gpt2.tiktoken"
TOKENIZER_SHA256_FILE = RESOURCES_DIR / "gpt2.tiktoken.sha256"
# Edith Wharton's "The Verdict" (1908, public domain), the text of the book's chapters 2 and 5; its note
# (source, licence, the book's printed chapter 5 table) is the README beside it.
VERDICT = "the-verdict"  # its corpus name (gptviz train --corpus the-verdict)
VERDICT_FILE = RESOURCES_DIR / "the-verdict.txt"
VERDICT_SHA256_FILE = RESOURCES_DIR / "the-verdict.txt.sha256"
VERDICT_NOTE_FILE = RESOURCES_DIR / "the-verdict.README.md"
DEMO_MODEL_DIR = RESOURCES_DIR / "demo-model"
