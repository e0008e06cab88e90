"""GPT-2 from the Hugging Face Hub as a gptviz checkpoint: listed, checked, fetched, verified, imported.

huggingface_hub does the talking: the repo listing with each file's size and LFS sha256, HEAD requests for
etags and redirects, HTTP GET with Range and retries, the shared cache (HF_HOME, HF_HUB_CACHE), tokens and
HF_ENDPOINT. Two things it does not do in 2.x are done here:

- Keep a partial file when the process stops. `hf_hub_download` deletes its temporary file on any
  exception, so a Ctrl-C 5 GB into gpt2-xl would start from zero. Weight files are fetched with
  `http_get(resume_size=...)` into `blobs/<etag>.resume.incomplete` inside the same cache; the next run
  continues from the bytes on disk, and `hf_hub_download` then only links the finished blob into the
  snapshot, so transformers and every later download read it from the cache.
- Check the bytes. Each file is hashed and compared with the Hub's listing (sha256 for LFS files, the git
  blob id otherwise) before it enters the cache; a file that does not match is deleted.

Only config.json, a weight index and the weight files are fetched (never the TF, Flax, ONNX or rust files
that GPT-2 repos also hold). Disk space and memory are checked from the listed sizes before the first weight
byte is requested. The checkpoint is written by `save_checkpoint`, atomically, so the models folder holds
either nothing new or a complete checkpoint.

This module is the transfer itself: progress and Cancel, hashing, fetching with resume, the disk check and
`download_model`. What the Hub holds is asked in hub_listing, which GPT-2 a name means in gpt2_sizes, where
models live in models_folder, and the errors all of them raise are in download_errors.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

from gptviz.config import count_params
from gptviz.engine.download_errors import (
    ChecksumError,
    DownloadCancelled,
    DownloadError,
    NotEnoughDiskError,
    NotGPT2Error,
    short,
)
from gptviz.engine.gpt2_sizes import GPT2_REPOS, gpt2_config, resolve_repo_id
from gptviz.engine.hub_listing import (
    CONFIG_FILE,
    HubFile,
    RepoPlan,
    choose_weights,
    hub_cache_dir,
    hub_endpoint,
    hub_errors,
    list_repo,
)
from gptviz.engine.human_units import format_bytes
from gptviz.engine.models_folder import DEFAULT_REVISION, default_out, device_of, free_disk_bytes
from gptviz.engine.path_kind import is_own_checkpoint

PARTIAL_SUFFIX = ".resume.incomplete"
DISK_MARGIN = 16 * 2**20  # room for the checkpoint's JSON, the cache's symlinks and the file system
PROGRESS_INTERVAL_S = 0.1  # at most ten progress reports a second: a GUI redraws from them
HASH_BLOCK = 8 * 2**20


@dataclass(frozen=True)
class DownloadProgress:
    """One progress report. Bytes count only the weight files this run had to fetch (cached ones excluded)."""

    phase: str  # "listing", "checking", "downloading", "verifying", "importing", "saving", "done"
    file: str = ""
    done: int = 0  # bytes on disk so far, including those a previous run left (resumed)
    total: int = 0
    rate: float = 0.0  # bytes per second fetched by this run
    eta_s: float | None = None

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 0.0


@dataclass(frozen=True)
class DownloadResult:
    path: Path
    repo_id: str
    commit: str
    params: int
    fetched_bytes: int  # bytes transferred by this run
    resumed_bytes: int  # bytes a previous, interrupted run had left
    cached_files: tuple[str, ...]  # files found complete in the cache (and re-verified)
    files: dict[str, str] = field(default_factory=dict)  # name -> sha256 (or git blob id)
    warnings: tuple[str, ...] = ()


ProgressCallback = Callable[[DownloadProgress], None]


# ----------------------------------------------------------------------------------------------- progress


class _Tracker:
    """Counts fetched bytes, reports at most every PROGRESS_INTERVAL_S, and is where a Cancel lands."""

    def __init__(
        self, total: int, on_disk: int, progress: ProgressCallback | None, cancel: threading.Event | None
    ) -> None:
        self.total = total
        self.done = on_disk
        self.fetched = 0
        self.file = ""
        self.progress = progress
        self.cancel = cancel
        self.started = time.monotonic()
        self._last = 0.0

    def check_cancel(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise DownloadCancelled(
                "download cancelled; the bytes so far are kept and the next download resumes"
            )

    def add(self, n: int) -> None:
        self.done += n
        self.fetched += n
        self.check_cancel()
        now = time.monotonic()
        if now - self._last >= PROGRESS_INTERVAL_S or self.done >= self.total:
            self._last = now
            self.report("downloading")

    def report(self, phase: str, file: str | None = None) -> None:
        if file is not None:
            self.file = file
        if self.progress is None:
            return
        elapsed = max(time.monotonic() - self.started, 1e-6)
        rate = self.fetched / elapsed
        eta = (self.total - self.done) / rate if rate > 0 and phase == "downloading" else None
        self.progress(DownloadProgress(phase, self.file, self.done, self.total, rate, eta))


class _ByteSink:
    """What `http_get` takes for its tqdm bar (it calls `cls(**kwargs)` and `.update(n)`): bytes go to the
    tracker, so a Cancel raises inside the download loop, before the chunk is written."""

    def __init__(self, tracker: _Tracker, **_tqdm_kwargs: Any) -> None:
        self.tracker = tracker

    def __enter__(self) -> _ByteSink:
        return self

    def __exit__(self, *exc: object) -> Literal[False]:
        return False

    def update(self, n: int | float = 1) -> None:
        self.tracker.add(int(n))


# ----------------------------------------------------------------------------------------------- hashing


def file_digest(path: Path, file: HubFile, cancel: _Tracker | None = None) -> str:
    """The hash the listing gives for `file` (sha256 for LFS files, the git blob id otherwise) of `path`."""
    if file.sha256:
        digest = hashlib.sha256()
    else:
        digest = hashlib.sha1()  # noqa: S324 - git's blob id, compared with the Hub's, not a security hash
        digest.update(f"blob {path.stat().st_size}\0".encode())
    with open(path, "rb") as handle:
        while block := handle.read(HASH_BLOCK):
            digest.update(block)
            if cancel is not None:
                cancel.check_cancel()
    return digest.hexdigest()


def _matches(path: Path, file: HubFile, tracker: _Tracker | None = None) -> bool:
    expected = file.sha256 or file.git_oid
    return expected is None or file_digest(path, file, tracker) == expected


# ----------------------------------------------------------------------------------------------- fetching


def _storage_folder(plan: RepoPlan) -> Path:
    from huggingface_hub.file_download import repo_folder_name

    return plan.cache / repo_folder_name(repo_id=plan.repo_id, repo_type="model")


def _cached_path(plan: RepoPlan, file: HubFile) -> Path | None:
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(plan.repo_id, file.name, cache_dir=plan.cache, revision=plan.commit)
    return Path(found) if isinstance(found, str) else None


def _partial_path(plan: RepoPlan, file: HubFile) -> Path | None:
    blob = file.blob_name
    return _storage_folder(plan) / "blobs" / f"{blob}{PARTIAL_SUFFIX}" if blob else None


def _fetch(plan: RepoPlan, file: HubFile, tracker: _Tracker, token: str | bool | None) -> Path:
    """Bring one file into the cache, continuing a partial download, and return its verified path."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_download, hf_hub_url
    from huggingface_hub.file_download import http_get
    from huggingface_hub.utils import build_hf_headers

    url = hf_hub_url(plan.repo_id, file.name, revision=plan.commit, endpoint=plan.endpoint)
    with hub_errors(plan.repo_id, plan.revision, plan.endpoint):
        meta = get_hf_file_metadata(url, token=token, endpoint=plan.endpoint)
    if not meta.etag:
        raise DownloadError(f"the Hub gave no ETag for {plan.repo_id}/{file.name}")
    blobs = _storage_folder(plan) / "blobs"
    blobs.mkdir(parents=True, exist_ok=True)
    blob = blobs / meta.etag
    partial = blobs / f"{meta.etag}{PARTIAL_SUFFIX}"
    if blob.exists() and not _matches(blob, file, tracker):
        blob.unlink()  # another snapshot's copy of these bytes, damaged on disk: fetch it again
    if not blob.exists():
        headers = build_hf_headers(token=token)
        headers["Accept-Encoding"] = "identity"  # the sizes and ranges are of the stored bytes
        if urlparse(meta.location).netloc != urlparse(url).netloc:
            headers.pop("authorization", None)  # a signed CDN URL: the token stays with the Hub
        expected = meta.size if meta.size is not None else file.size
        if partial.exists() and partial.stat().st_size > expected:
            partial.unlink()  # longer than the file: not a prefix of it
        partial.touch()
        resume = partial.stat().st_size
        tracker.report("downloading", file.name)
        with open(partial, "r+b") as handle, hub_errors(plan.repo_id, plan.revision, plan.endpoint):
            handle.seek(resume)
            http_get(
                meta.location,
                handle,
                resume_size=resume,
                headers=headers,
                expected_size=expected,
                displayed_filename=file.name,
                tqdm_class=functools.partial(_ByteSink, tracker),  # type: ignore[arg-type]
            )
            handle.flush()
            os.fsync(handle.fileno())
        tracker.report("verifying", file.name)
        if not _matches(partial, file, tracker):
            actual = file_digest(partial, file)
            partial.unlink(missing_ok=True)
            raise ChecksumError(
                f"{plan.repo_id}/{file.name}: the downloaded bytes do not match the Hub's "
                f"{'sha256' if file.sha256 else 'git hash'} (expected {file.sha256 or file.git_oid}, got "
                f"{actual}); the file was deleted, so the next download fetches it afresh"
            )
        os.replace(partial, blob)
    with hub_errors(plan.repo_id, plan.revision, plan.endpoint):
        # The blob is complete: huggingface_hub only links it into the snapshot (no GET).
        path = hf_hub_download(
            plan.repo_id,
            file.name,
            revision=plan.commit,
            cache_dir=plan.cache,
            endpoint=plan.endpoint,
            token=token,
        )
    return Path(path)


def _verified_cache_hit(plan: RepoPlan, file: HubFile, tracker: _Tracker) -> Path | None:
    """A cached copy of `file` whose bytes match the listing; a damaged one is set aside to be replaced."""
    cached = _cached_path(plan, file)
    if cached is None:
        return None
    if _matches(cached, file, tracker):
        return cached
    blob = cached.resolve()
    blob.unlink(missing_ok=True)  # damaged: fetched again into the same blob, which the snapshot links to
    if cached.is_symlink() or cached.exists():
        cached.unlink(missing_ok=True)
    return None


# ----------------------------------------------------------------------------------------------- checks


def _check_target(target: Path) -> None:
    """Refuse to replace a folder that is not a gptviz checkpoint (save_checkpoint swaps whole folders)."""
    if not target.exists():
        return
    if target.is_file():
        raise DownloadError(f"--out {target} is a file; give a folder for the checkpoint")
    if not any(target.iterdir()):
        return
    if not is_own_checkpoint(target):
        raise DownloadError(
            f"--out {target} holds other files; give a new folder or a gptviz checkpoint to replace"
        )


def _check_disk(plan: RepoPlan, to_fetch: int, checkpoint_bytes: int, target: Path) -> None:
    """Refuse before downloading when the cache's disk and the checkpoint's disk cannot hold the files."""
    needs: dict[Any, list[tuple[str, Path, int]]] = {}
    for what, place, amount in (
        ("the download cache", plan.cache, to_fetch),
        ("the checkpoint", target.parent, checkpoint_bytes),
    ):
        if amount > 0:
            needs.setdefault(device_of(place) or str(place), []).append((what, place, amount))
    for parts in needs.values():
        need = sum(amount for _what, _place, amount in parts) + DISK_MARGIN
        free = free_disk_bytes(parts[0][1])
        if need > free:
            detail = " and ".join(
                f"{format_bytes(amount)} for {what} ({place})" for what, place, amount in parts
            )
            raise NotEnoughDiskError(
                f"not enough disk space for {plan.repo_id}: it needs {detail}, but only {format_bytes(free)} is "
                "free there; free some space, or put the cache (HF_HOME) or --out on another disk"
            )


# ----------------------------------------------------------------------------------------------- main


def download_model(
    name: str,
    out: str | os.PathLike | None = None,
    revision: str | None = None,
    *,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    token: str | bool | None = None,
) -> DownloadResult:
    """Download GPT-2 NAME ('124M'..'1558M' or a repo id) and write it as a gptviz checkpoint.

    Returns where the checkpoint is and what was transferred. Raises a DownloadError subclass with a one-line
    message for every case a user can meet; KeyboardInterrupt (and `cancel`) leave the partial file in the
    cache, so the same call later resumes, and leave nothing in the models folder.
    """
    from gptviz.engine.checkpoint import save_checkpoint
    from gptviz.engine.importers import read_weights
    from gptviz.engine.memory import check_fits

    repo_id = resolve_repo_id(name)
    revision = revision or DEFAULT_REVISION
    target = Path(out).expanduser() if out is not None else default_out(name, revision)
    _check_target(target)
    endpoint = hub_endpoint()
    tracker = _Tracker(0, 0, progress, cancel)
    tracker.report("listing", repo_id)
    commit, listing = list_repo(repo_id, revision, endpoint, token)
    plan = RepoPlan(repo_id, revision, commit, endpoint, hub_cache_dir(), listing)
    if CONFIG_FILE not in listing:
        raise NotGPT2Error(f"{repo_id} has no config.json, so it is not a transformers GPT-2 model")

    quiet = _Tracker(0, 0, None, cancel)  # config and index: kilobytes, not part of the progress bar

    def fetch_small(file: HubFile) -> Path:
        return _verified_cache_hit(plan, file, quiet) or _fetch(plan, file, quiet, token)

    paths: dict[str, Path] = {CONFIG_FILE: fetch_small(listing[CONFIG_FILE])}
    try:
        plan.config = json.loads(paths[CONFIG_FILE].read_text())
    except (OSError, ValueError) as exc:
        raise NotGPT2Error(f"{repo_id}'s config.json is not JSON: {short(exc)}") from None
    if not isinstance(plan.config, dict):
        raise NotGPT2Error(f"{repo_id}'s config.json is not a JSON object")
    cfg = gpt2_config(plan.config, repo_id)
    plan.weights = choose_weights(plan, fetch_small)
    check_fits(cfg, training=False, batch_size=1, context=cfg.context_length)

    tracker.report("checking", repo_id)
    cached: list[str] = []
    pending: list[HubFile] = []
    for file in plan.weights:
        hit = _verified_cache_hit(plan, file, tracker)
        if hit is not None:
            paths[file.name] = hit
            cached.append(file.name)
        else:
            pending.append(file)
    on_disk = 0
    for file in pending:
        partial = _partial_path(plan, file)
        if partial is not None and partial.is_file() and partial.stat().st_size <= file.size:
            on_disk += partial.stat().st_size
    total = sum(f.size for f in pending)
    checkpoint_bytes = 4 * count_params(cfg)  # saved in fp32, the head tied
    _check_disk(plan, total - on_disk, checkpoint_bytes, target)

    tracker.total, tracker.done = total, on_disk
    for file in pending:
        tracker.check_cancel()
        paths[file.name] = _fetch(plan, file, tracker, token)

    tracker.check_cancel()
    tracker.report("importing", repo_id)
    with tempfile.TemporaryDirectory(prefix="gptviz-download-") as scratch:
        folder = _link_folder(Path(scratch) / cfg.name, paths)
        imported = read_weights(folder)
    tracker.check_cancel()
    tracker.report("saving", str(target))
    hashes = {f.name: f.sha256 or f.git_oid or "" for f in (listing[CONFIG_FILE], *plan.weights)}
    meta = {
        "name": repo_id if name not in GPT2_REPOS else f"GPT-2 {name} ({repo_id.rsplit('/', 1)[-1]})",
        "source": f"{endpoint}/{repo_id}",
        "hub_repo": repo_id,
        "hub_revision": revision,
        "hub_commit": commit,
        "hub_files": hashes,
        "source_format": imported.file_format,
        "key_style": imported.key_style,
        "imported_by": "gptviz download",
    }
    path = save_checkpoint(imported.model, target, meta=meta)
    tracker.report("done", str(path))
    return DownloadResult(
        path=path,
        repo_id=repo_id,
        commit=commit,
        params=count_params(imported.model.cfg),
        fetched_bytes=tracker.fetched,
        resumed_bytes=on_disk,
        cached_files=tuple(cached),
        files=hashes,
        warnings=tuple(imported.warnings),
    )


def _link_folder(folder: Path, paths: dict[str, Path]) -> Path:
    """A folder holding exactly the files chosen (symlinks into the cache), for `read_weights` to read.

    The snapshot folder itself may hold more (a tf_model.h5 transformers fetched, another weight format), and
    read_weights picks files by name; this way it sees only the ones verified here.
    """
    folder.mkdir(parents=True)
    for name, path in paths.items():
        try:
            os.symlink(path.resolve(), folder / name)
        except OSError:  # no symlinks (Windows without developer mode): read the snapshot folder instead
            return next(iter(paths.values())).parent
    return folder
