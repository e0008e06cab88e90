"""The GPT of the book, written out, with taps. Torch only, no Qt."""

from gptviz.model.gpt import GPTModel, KVCache
from gptviz.model.hooks import HookPoint, capture, hook_names

__all__ = ["GPTModel", "KVCache", "HookPoint", "capture", "hook_names"]
