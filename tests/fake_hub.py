"""A Hugging Face Hub on 127.0.0.1 for the download tests: real HTTP, no network.

It answers what huggingface_hub asks when gptviz downloads:
- GET /api/models/{repo}[/revision/{rev}]  the repo's commit and files (size, git blob id, LFS sha256)
- HEAD/GET /{repo}/resolve/{rev}/{file}    the bytes, with ETag, X-Repo-Commit, Content-Length and Range
and the Hub's error headers (X-Error-Code: RepoNotFound / RevisionNotFound / EntryNotFound).

Faults a test can ask for, per file: `drop_once` (the first GET sends half the bytes, then closes the
connection), `corrupt` (one byte differs from what the listing's sha256 says), `delay_s` (each 64 KiB piece
waits, so a test can press Cancel mid-file). `log` records (method, path, range header) of every request and
`sent` the body bytes sent per file, so a test can tell what was fetched.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse

PIECE = 64 * 1024
LFS_SUFFIXES = (".safetensors", ".bin", ".h5", ".msgpack", ".onnx", ".ot")


@dataclass
class FakeRepo:
    files: dict[str, bytes]
    commit: str = ""
    drop_once: set[str] = field(default_factory=set)
    corrupt: set[str] = field(default_factory=set)
    delay_s: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.commit:
            digest = hashlib.sha1(b"".join(sorted(self.files.values())))  # noqa: S324 - a fake commit id
            self.commit = digest.hexdigest()

    def is_lfs(self, name: str) -> bool:
        return name.endswith(LFS_SUFFIXES)

    def etag(self, name: str) -> str:
        data = self.files[name]
        if self.is_lfs(name):
            return hashlib.sha256(data).hexdigest()
        return hashlib.sha1(f"blob {len(data)}\0".encode() + data).hexdigest()  # noqa: S324 - git's blob id

    def served(self, name: str) -> bytes:
        data = self.files[name]
        if name in self.corrupt:
            middle = len(data) // 2
            data = data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1 :]
        return data

    def listing(self, repo_id: str) -> dict:
        """What /api/models/{repo}?blobs=true says: an LFS file's blobId is its pointer's, and its hash is in lfs."""
        siblings = []
        for name, data in sorted(self.files.items()):
            if self.is_lfs(name):
                pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{self.etag(name)}\n"
                sibling = {
                    "rfilename": name,
                    "size": len(data),
                    "blobId": hashlib.sha1(pointer.encode()).hexdigest(),  # noqa: S324 - git's id
                    "lfs": {"sha256": self.etag(name), "size": len(data), "pointerSize": len(pointer)},
                }
            else:
                sibling = {"rfilename": name, "size": len(data), "blobId": self.etag(name)}
            siblings.append(sibling)
        return {"id": repo_id, "modelId": repo_id, "sha": self.commit, "private": False, "siblings": siblings}


def random_gpt2(n_embd: int = 32, n_layer: int = 2, n_head: int = 4, n_positions: int = 32):
    """A transformers GPT2LMHeadModel with every weight random (biases and norms too), eager attention."""
    from hf_random import random_hf_gpt2

    return random_hf_gpt2(n_embd, n_layer, n_head, n_positions, seed=0)


def folder_files(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` (as save_pretrained wrote it), keyed by its path in the repo."""
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


class FakeHub:
    """Serves `repos` ({"owner/name": FakeRepo}) until `close()`; `endpoint` is its base URL."""

    def __init__(self, repos: dict[str, FakeRepo] | None = None) -> None:
        self.repos: dict[str, FakeRepo] = dict(repos or {})
        self.log: list[tuple[str, str, str]] = []
        self.sent: dict[str, int] = {}
        self._lock = threading.Lock()
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args) -> None:  # quiet
                pass

            def do_HEAD(self) -> None:  # noqa: N802
                hub._handle(self, body=False)

            def do_GET(self) -> None:  # noqa: N802
                hub._handle(self, body=True)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, name="fake-hub", daemon=True)
        self.thread.start()
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)

    def wait_quiet(self, name: str, settle_s: float = 0.5, timeout_s: float = 15.0) -> int:
        """The bytes sent of `name` once that count has stopped changing for `settle_s`: a request the client
        gave up on (Ctrl-C) may go on filling the socket's buffers for a moment after the client returned."""
        deadline = time.monotonic() + timeout_s
        last, since = self.sent.get(name, 0), time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.05)
            now = self.sent.get(name, 0)
            if now != last:
                last, since = now, time.monotonic()
            elif time.monotonic() - since >= settle_s:
                break
        return last

    def gets(self, name: str) -> list[str]:
        """The Range headers ('' for none) of every GET of a file called `name`, in order."""
        return [rng for method, path, rng in self.log if method == "GET" and path.endswith("/" + name)]

    # ------------------------------------------------------------------------------------------- serving

    def _error(self, handler: BaseHTTPRequestHandler, status: int, code: str, commit: str = "") -> None:
        body = json.dumps({"error": code}).encode()
        handler.send_response(status)
        handler.send_header("X-Error-Code", code)
        if commit:
            handler.send_header("X-Repo-Commit", commit)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def _handle(self, handler: BaseHTTPRequestHandler, body: bool) -> None:
        path = unquote(urlparse(handler.path).path)
        with self._lock:
            self.log.append((handler.command, path, handler.headers.get("Range", "")))
        api = re.fullmatch(r"/api/models/([^/]+/[^/]+)(?:/revision/([^/]+))?", path)
        if api:
            self._api(handler, api[1], api[2] or "main")
            return
        resolve = re.fullmatch(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path)
        if not resolve:
            self._error(handler, 404, "NotFound")
            return
        repo_id, revision, name = resolve.groups()
        repo = self.repos.get(repo_id)
        if repo is None:
            self._error(handler, 404, "RepoNotFound")
        elif revision not in ("main", repo.commit):
            self._error(handler, 404, "RevisionNotFound")
        elif name not in repo.files:
            self._error(handler, 404, "EntryNotFound", repo.commit)
        else:
            self._file(handler, repo, name, body)

    def _api(self, handler: BaseHTTPRequestHandler, repo_id: str, revision: str) -> None:
        repo = self.repos.get(repo_id)
        if repo is None:
            self._error(handler, 404, "RepoNotFound")
            return
        if revision not in ("main", repo.commit):
            self._error(handler, 404, "RevisionNotFound")
            return
        data = json.dumps(repo.listing(repo_id)).encode()
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def _file(self, handler: BaseHTTPRequestHandler, repo: FakeRepo, name: str, body: bool) -> None:
        data = repo.served(name)
        start = 0
        match = re.fullmatch(r"bytes=(\d+)-", handler.headers.get("Range", ""))
        if match and body:
            start = int(match[1])
        chunk = data[start:]
        handler.send_response(206 if start else 200)
        handler.send_header("ETag", f'"{repo.etag(name)}"')
        handler.send_header("X-Repo-Commit", repo.commit)
        handler.send_header("Accept-Ranges", "bytes")
        handler.send_header("Content-Length", str(len(chunk)))
        if start:
            handler.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        handler.end_headers()
        if not body:
            return
        drop = False
        with self._lock:
            if name in repo.drop_once:
                repo.drop_once.discard(name)
                drop = True
        limit = len(chunk) // 2 if drop else len(chunk)
        delay = repo.delay_s.get(name, 0.0)
        try:
            for offset in range(0, limit, PIECE):
                piece = chunk[offset : min(offset + PIECE, limit)]
                handler.wfile.write(piece)
                with self._lock:
                    self.sent[name] = self.sent.get(name, 0) + len(piece)
                if delay:
                    time.sleep(delay)
        except (BrokenPipeError, ConnectionResetError):
            return
        if drop:
            handler.wfile.flush()
            handler.close_connection = True
            handler.connection.shutdown(2)  # the connection dies halfway, as a flaky network's would
