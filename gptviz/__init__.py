"""gptviz: see inside a GPT while it reads, learns and writes."""

__version__ = "0.1.0"
