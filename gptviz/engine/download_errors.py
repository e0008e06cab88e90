"""The one-line errors a download can end with, one class for each thing a user can do something about.

Their own module because both sides of a download raise them: the Hub's side (a name, a listing, an
unreachable server: engine/hub_listing.py, engine/gpt2_sizes.py) and the fetching (disk space, checksums,
Cancel: engine/download.py); the window and the CLI catch them without importing either.
"""

from __future__ import annotations

from gptviz.errors import GptvizError


class DownloadError(GptvizError):
    """A download that cannot go on; the message says why and what to do."""


class HubUnreachableError(DownloadError):
    """No answer from the Hub (no network, a closed port, offline mode)."""


class UnknownModelError(DownloadError):
    """A name that is neither a GPT-2 size nor an existing repo (or revision) on the Hub."""


class NotGPT2Error(DownloadError):
    """A repo that exists but does not hold a transformers GPT-2 model."""


class NotEnoughDiskError(DownloadError):
    """The listed sizes do not fit on the disk(s) holding the cache and the checkpoint."""


class ChecksumError(DownloadError):
    """Downloaded bytes that differ from the Hub's listing; the file was deleted."""


class DownloadCancelled(DownloadError):
    """Stopped on request (Cancel in the window); the bytes so far stay in the cache for next time."""


def short(exc: BaseException) -> str:
    """An exception's text on one line of at most 160 characters (an HTTP error's can run to a page)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."
