"""The names some panes import token labels by (`display_token`, `quoted_display_token`); the one
convention itself lives in gptviz.qt.token_labels, so every pane reads a token the same way."""

from __future__ import annotations

from gptviz.qt.token_labels import quoted_token as quoted_display_token
from gptviz.qt.token_labels import token_label as display_token

__all__ = ["display_token", "quoted_display_token"]
