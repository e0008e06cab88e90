"""engine/atomic: a reader sees the old file or folder or the new one, never half of either, even when the
writer raises or is killed mid-write; staging left by dead processes is cleaned up by the next save."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from gptviz.engine.atomic import (
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    backup_name,
    staged_directory,
    staged_file,
    staging_name,
)


def test_writes_replace_the_file_whole(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "settings.json"  # missing folders are made
    atomic_write_json(target, {"steps": 3})
    assert json.loads(target.read_text()) == {"steps": 3}
    atomic_write_text(target, "hello")
    assert target.read_text() == "hello"
    atomic_write_bytes(target, b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01"
    assert sorted(p.name for p in target.parent.iterdir()) == ["settings.json"]  # no staging left


def test_an_error_keeps_the_old_file_and_removes_the_staging(tmp_path: Path) -> None:
    target = tmp_path / "probe.npz"
    target.write_bytes(b"old")
    with pytest.raises(OSError), staged_file(target) as staging:
        staging.write_bytes(b"half of the new")
        raise OSError(28, "No space left on device")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["probe.npz"]


def test_a_writer_killed_mid_write_leaves_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "settings.json"
    atomic_write_json(target, {"version": 1})
    code = (
        "import os, signal, sys\n"
        "from gptviz.engine.atomic import staged_file\n"
        "with staged_file(sys.argv[1]) as staging:\n"
        '    staging.write_text(\'{"version": 2, "trunc\')\n'
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    result = subprocess.run([sys.executable, "-c", code, str(target)], check=False)
    assert result.returncode == -signal.SIGKILL
    assert json.loads(target.read_text()) == {"version": 1}


def test_staged_directory_swaps_and_cleans_up(tmp_path: Path) -> None:
    target = tmp_path / "ckpt"
    with staged_directory(target) as staging:
        (staging / "a.txt").write_text("one")
    with staged_directory(target) as staging:
        (staging / "a.txt").write_text("two")
    assert (target / "a.txt").read_text() == "two"
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]  # neither staging nor backup remains
    with pytest.raises(RuntimeError), staged_directory(target) as staging:
        (staging / "a.txt").write_text("three")
        raise RuntimeError("killed by the test")
    assert (target / "a.txt").read_text() == "two"
    assert not backup_name(target).exists() and not staging_name(target).exists()


@pytest.mark.skipif(os.name != "posix", reason="dead processes are found with kill(pid, 0)")
def test_staging_of_a_dead_process_is_removed_by_the_next_save(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True)
    dead_pid = int(dead.stdout)  # finished: its pid names no process (reuse within the test is unlikely)
    stale = tmp_path / f".ckpt.tmp-{dead_pid}"
    stale.mkdir()
    (stale / "model.safetensors").write_bytes(b"\x00" * 1000)
    alive = tmp_path / f".ckpt.tmp-{os.getppid()}"  # a live process's staging is left alone
    alive.mkdir()
    with staged_directory(tmp_path / "ckpt") as staging:
        (staging / "a.txt").write_text("x")
    assert not stale.exists() and alive.exists()
