"""What a Hub repo holds, asked before a weight byte moves: the commit a revision points at, each file's size
and hash, and the weight files to fetch (a safetensors index's shards, model.safetensors, then the PyTorch
pickles), with huggingface_hub's exceptions turned into one-line messages for a user.

Apart from the fetching (engine/download.py) because it is the plan, not the transfer: the download checks
disk space and memory against these listed sizes, and verifies each fetched file against these hashes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gptviz.engine.download_errors import (
    DownloadError,
    HubUnreachableError,
    NotGPT2Error,
    UnknownModelError,
    short,
)

CONFIG_FILE = "config.json"
# Preference order: safetensors (read as data) before PyTorch pickles, a sharded index before one file.
WEIGHT_CHOICES = (
    ("model.safetensors.index.json", True),
    ("model.safetensors", False),
    ("pytorch_model.bin.index.json", True),
    ("pytorch_model.bin", False),
)
API_TIMEOUT_S = 15.0


@dataclass(frozen=True)
class HubFile:
    """One file of the repo listing: its size and the hash the Hub gives for it."""

    name: str
    size: int
    sha256: str | None  # LFS files: the sha256 of the content (also the ETag and the cache blob's name)
    git_oid: str | None  # the git blob id: sha1 of b"blob <size>\0" + content (the ETag of non-LFS files)

    @property
    def blob_name(self) -> str | None:
        """The name the cache gives this file's blob (its ETag), known before any request."""
        return self.sha256 or self.git_oid


@dataclass
class RepoPlan:
    """One download's plan: which repo at which commit, the cache it goes into, and what the listing says."""

    repo_id: str
    revision: str
    commit: str
    endpoint: str
    cache: Path
    listing: dict[str, HubFile]
    config: dict[str, Any] = field(default_factory=dict)
    weights: list[HubFile] = field(default_factory=list)


def hub_endpoint() -> str:
    """HF_ENDPOINT as it is now (huggingface_hub reads it once, at import)."""
    return (os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")


def hub_cache_dir() -> Path:
    """The huggingface_hub cache as the environment says now: HF_HUB_CACHE, else HF_HOME/hub."""
    explicit = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", "~/.cache"), "huggingface"
    )
    return Path(os.path.expandvars(home)).expanduser() / "hub"


@contextmanager
def hub_errors(repo_id: str, revision: str, endpoint: str) -> Iterator[None]:
    """huggingface_hub's exceptions (tracebacks of HTTP errors) as one-line messages for a user."""
    import httpx2
    from huggingface_hub import errors as hf

    try:
        yield
    except hf.GatedRepoError:
        raise UnknownModelError(
            f"{repo_id} is gated: accept its terms on the Hub, then log in (`hf auth login` or HF_TOKEN)"
        ) from None
    except hf.RepositoryNotFoundError:
        raise UnknownModelError(
            f"no model repo {repo_id!r} on {endpoint} (check the name; a private repo needs "
            "`hf auth login` or HF_TOKEN)"
        ) from None
    except hf.RevisionNotFoundError:
        raise UnknownModelError(f"{repo_id} has no revision {revision!r}") from None
    except hf.RemoteEntryNotFoundError as exc:
        raise NotGPT2Error(f"{repo_id} lacks a file it lists: {exc.response.url}") from None
    except hf.OfflineModeIsEnabled:
        raise HubUnreachableError(
            "HF_HUB_OFFLINE is set, so the Hugging Face Hub is not asked; unset it, or download the files "
            "yourself and use gptviz import"
        ) from None
    except (httpx2.TransportError, hf.LocalEntryNotFoundError, ConnectionError, TimeoutError) as exc:
        raise HubUnreachableError(
            f"cannot reach the Hugging Face Hub ({endpoint}: {short(exc)}); set HF_ENDPOINT, or download "
            "the files yourself and use gptviz import"
        ) from None
    except hf.HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else "?"
        raise DownloadError(f"the Hub answered HTTP {status} for {repo_id}: {short(exc)}") from None


def list_repo(
    repo_id: str, revision: str, endpoint: str, token: str | bool | None
) -> tuple[str, dict[str, HubFile]]:
    """The commit a revision points at and the files there, with sizes and hashes (one API call)."""
    from huggingface_hub import HfApi

    api = HfApi(endpoint=endpoint, token=token)
    with hub_errors(repo_id, revision, endpoint):
        info = api.model_info(repo_id, revision=revision, files_metadata=True, timeout=API_TIMEOUT_S)
    if not info.sha:
        raise DownloadError(f"the Hub did not say which commit {repo_id}@{revision} is")
    listing = {}
    for sibling in info.siblings or []:
        lfs = sibling.lfs
        sha256 = lfs.sha256 if lfs is not None else None
        size = lfs.size if lfs is not None else sibling.size
        listing[sibling.rfilename] = HubFile(sibling.rfilename, int(size or 0), sha256, sibling.blob_id)
    return info.sha, listing


def choose_weights(plan: RepoPlan, fetch_small: Callable[[HubFile], Path]) -> list[HubFile]:
    """The weight files to fetch: a safetensors index's shards, model.safetensors, then the .bin forms.

    `fetch_small` brings an index file into the cache (kilobytes) so its weight_map can be read."""
    for name, is_index in WEIGHT_CHOICES:
        if name not in plan.listing:
            continue
        if not is_index:
            return [plan.listing[name]]
        index_path = fetch_small(plan.listing[name])
        try:
            weight_map = json.loads(index_path.read_text()).get("weight_map")
        except (OSError, ValueError, AttributeError):
            weight_map = None
        if not isinstance(weight_map, dict) or not weight_map:
            raise NotGPT2Error(f"{plan.repo_id}'s {name} has no weight_map")
        shards = sorted(set(map(str, weight_map.values())))
        missing = [s for s in shards if s not in plan.listing]
        if missing:
            raise NotGPT2Error(f"{plan.repo_id}'s {name} names shards the repo lacks: {', '.join(missing)}")
        return [plan.listing[name], *(plan.listing[s] for s in shards)]
    others = ", ".join(sorted(plan.listing)) or "nothing"
    raise NotGPT2Error(
        f"{plan.repo_id} holds no PyTorch weights (model.safetensors or pytorch_model.bin); it has {others}"
    )
