"""Errors a user can cause. The CLI prints them as one line; the GUI shows them in a dialog."""


class GptvizError(Exception):
    """Base class: the message is written for the user, not the developer, and is one line: names read
    from a user's file (a tensor's key, a shard's name) may hold line breaks, written here as \\n."""

    def __init__(self, *args: object) -> None:
        if args and isinstance(args[0], str):
            args = (one_line(args[0]), *args[1:])
        super().__init__(*args)


class ConfigError(GptvizError, ValueError):
    """A model or training setting that cannot work (heads not dividing the width, sizes <= 0, ...)."""


class DataError(GptvizError, ValueError):
    """A corpus that cannot be read or is too short."""


class WeightsError(GptvizError, ValueError):
    """A checkpoint or weight file that cannot be loaded safely or does not fit the model."""


class TokenizerError(GptvizError, RuntimeError):
    """The bundled tokenizer file is missing or corrupt."""


def one_line(text: str) -> str:
    """`text` with its line breaks written as \\n and \\r: names read from a user's file (a tensor's key, a
    config's field) may hold them, and an error is one line."""
    return text.replace("\r", "\\r").replace("\n", "\\n")
