"""A full disk in the middle of `gptviz download` (issue 15, item 4): one line, nothing half-written in the
models folder, and the bytes already fetched are kept so the next run continues from them.

The other download faults (a dropped connection, Ctrl-C, corrupted bytes, a rotted cache, no network, not
enough space known in advance) are in tests/engine/test_download.py; this one needs the disk to fill while
the weights are being written, which the free-space check before downloading cannot foresee.
"""

from __future__ import annotations

import errno
import time

import pytest
import torch
from fake_hub import FakeHub, FakeRepo, folder_files, random_gpt2

from gptviz import cli
from gptviz.engine import download as dl
from gptviz.engine.checkpoint import load_checkpoint
from gptviz.engine.models_folder import DATA_DIR_ENV

pytest.importorskip("transformers")

REPO = "openai-community/gpt2"  # what "124M" resolves to; the fake Hub serves a tiny random model there
WEIGHTS = "model.safetensors"
FULL_AFTER = 300_000  # bytes of the weights written before the disk is full


class _FillingDisk:
    """A file handle on a disk that is full after `limit` bytes: writes past it raise ENOSPC, as the OS
    would (after writing what fits)."""

    def __init__(self, handle, limit: int) -> None:
        self._handle = handle
        self._limit = limit

    def write(self, data) -> int:
        room = self._limit - self._handle.tell()
        if len(data) > room:
            self._handle.write(bytes(data[: max(0, room)]))
            raise OSError(errno.ENOSPC, "No space left on device")
        return self._handle.write(data)

    def __getattr__(self, name):
        return getattr(self._handle, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self._handle.close()


def _settled(server: FakeHub) -> int:
    """The bytes of the weights the server has sent, once the count has stopped changing for half a second."""
    last, since = server.sent[WEIGHTS], time.monotonic()
    while time.monotonic() - since < 0.5:
        time.sleep(0.05)
        if server.sent[WEIGHTS] != last:
            last, since = server.sent[WEIGHTS], time.monotonic()
    return last


@pytest.fixture
def hub(tmp_path, monkeypatch):
    import huggingface_hub.constants

    model = random_gpt2()
    model.save_pretrained(tmp_path / "hf-model")
    server = FakeHub({REPO: FakeRepo(folder_files(tmp_path / "hf-model"))})
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_TOKEN", "XDG_CACHE_HOME", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", server.endpoint)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "data"))
    monkeypatch.setattr(huggingface_hub.constants, "DOWNLOAD_CHUNK_SIZE", 64 * 1024)
    yield server, model
    server.close()


def test_disk_full_while_the_weights_are_written_is_one_line_and_the_next_run_resumes(
    hub, tmp_path, monkeypatch, capsys
):
    server, model = hub
    size = len(server.repos[REPO].files[WEIGHTS])
    assert size > 2 * FULL_AFTER
    real_open = open

    def filling_open(path, mode="r", *args, **kwargs):
        handle = real_open(path, mode, *args, **kwargs)
        if str(path).endswith(dl.PARTIAL_SUFFIX) and "b" in mode and ("+" in mode or "w" in mode):
            return _FillingDisk(handle, FULL_AFTER)
        return handle

    monkeypatch.setattr(dl, "open", filling_open, raising=False)  # the download's own writes only
    assert cli.main(["download", "124M", "--quiet"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("gptviz download: error: ") and "No space left" in err[0]
    models = tmp_path / "data" / "models"
    assert not models.exists() or list(models.iterdir()) == []  # nothing half-written there
    (partial,) = sorted((tmp_path / "hf-home").rglob(f"*{dl.PARTIAL_SUFFIX}"))
    assert partial.stat().st_size == FULL_AFTER  # what fitted is kept for the next run

    monkeypatch.undo()  # space freed
    monkeypatch.setenv("HF_ENDPOINT", server.endpoint)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "data"))
    sent = _settled(server)  # the failed request's server thread may still be pushing bytes into the socket
    assert cli.main(["download", "124M", "--quiet"]) == 0
    assert server.gets(WEIGHTS)[-1] == f"bytes={FULL_AFTER}-"
    assert server.sent[WEIGHTS] - sent == size - FULL_AFTER  # only the bytes that did not fit
    loaded, _meta = load_checkpoint(models / "124M")
    ids = torch.randint(0, 50257, (1, 12), generator=torch.Generator().manual_seed(1))  # (1, 12)
    with torch.no_grad():
        assert (loaded(ids) - model(ids).logits).abs().max().item() <= 1e-4
    assert sorted(p.name for p in models.iterdir()) == ["124M"]
