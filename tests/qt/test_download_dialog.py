"""Model › Get GPT-2… and the Model menu's switch list, against the local fake Hub (tests/fake_hub.py).

The fake Hub serves a tiny random GPT-2 as openai-community/gpt2, so choosing "124M" in the dialog really
downloads (over HTTP, on the dialog's own thread), writes the checkpoint and has the worker load it.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import torch
from fake_hub import FakeHub, FakeRepo, folder_files, random_gpt2

from gptviz.engine import download as dl
from gptviz.engine.checkpoint import save_checkpoint
from gptviz.engine.download_errors import DownloadCancelled
from gptviz.engine.models_folder import DATA_DIR_ENV
from gptviz.model.gpt import GPTModel
from gptviz.qt.download_dialog import size_rows
from gptviz.resources import DEMO_MODEL_DIR

pytest.importorskip("transformers")

REPO = "openai-community/gpt2"
WEIGHTS = "model.safetensors"


@pytest.fixture(scope="module")
def gpt2_files(tmp_path_factory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("hf") / "gpt2"
    random_gpt2().save_pretrained(folder)
    return folder_files(folder)


@pytest.fixture
def hub(gpt2_files, tmp_path, monkeypatch):
    import huggingface_hub.constants

    server = FakeHub({REPO: FakeRepo(dict(gpt2_files))})
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_TOKEN", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", server.endpoint)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "data"))
    # Reads of 256 KiB instead of 10 MiB, so progress (and Cancel) happen within this 6 MB file.
    monkeypatch.setattr(huggingface_hub.constants, "DOWNLOAD_CHUNK_SIZE", 256 * 1024)
    yield server
    server.close()


def _menu_labels(window) -> list[str]:
    window.model_switcher.rebuild()
    return [act.text() for act in window.model_switcher.switch_actions]


def test_size_rows_cost_and_fit():
    rows = size_rows(free_ram=4 * 10**9)
    assert [r["size"] for r in rows] == ["124M", "355M", "774M", "1558M"]
    assert [r["download"] for r in rows] == sorted(r["download"] for r in rows)
    assert abs(rows[0]["download"] - 548_105_171) < 20_000  # what the Hub lists for gpt2's model.safetensors
    assert all(r["memory"] > r["download"] for r in rows)  # fp32 weights plus the KV cache and activations
    assert [r["fits"] for r in rows] == [True, True, False, False]  # 1.2 / 2.3 / 4.2 / 7.6 GB against 3.6


def test_dialog_downloads_and_every_pane_follows(qtbot, main_window, hub, tmp_path):
    dialog = main_window.model_switcher.open_download_dialog()
    assert dialog.table.rowCount() == 4
    assert dialog.table.item(0, 0).text() == "124M" and dialog.table.item(0, 1).text() == REPO
    assert dialog.table.item(0, 2).text().endswith("MB") and dialog.table.item(3, 2).text().endswith("GB")
    assert dialog.table.item(0, 4).text().startswith(("fits", "too big"))
    dialog.table.selectRow(0)
    assert dialog.chosen() == "124M"

    expected = tmp_path / "data" / "models" / "124M"
    hub.repos[REPO].delay_s[WEIGHTS] = 0.01  # about a second on the wire
    gui_thread = threading.current_thread()
    seen_threads = set()
    ready: list[str] = []
    dialog.modelReady.connect(ready.append)
    dialog.download_button.click()
    assert dialog.job is not None and not dialog.download_button.isEnabled()
    dialog.job.runner.progressed.connect(lambda _r: seen_threads.add(threading.current_thread()))
    qtbot.waitUntil(
        lambda: main_window.model_info is not None and Path(main_window.model_info.path) == expected,
        timeout=60_000,
    )
    assert seen_threads and gui_thread not in seen_threads  # the download ran on its own thread
    assert ready == [str(expected)]
    assert main_window.model_switcher.dialog is None  # closed itself once the model was on its way
    assert main_window.model_info.n_layers == 2 and main_window.model_info.emb_dim == 32
    assert hub.sent[WEIGHTS] == len(hub.repos[REPO].files[WEIGHTS])
    assert sorted(p.name for p in expected.parent.iterdir()) == ["124M"]
    qtbot.waitUntil(lambda: any("GPT-2 124M" in label for label in _menu_labels(main_window)))
    checked = [a.text() for a in main_window.model_switcher.switch_actions if a.isChecked()]
    assert checked == ["GPT-2 124M (gpt2)"]


def test_cancel_leaves_nothing_in_models(qtbot, main_window, hub, tmp_path):
    hub.repos[REPO].delay_s[WEIGHTS] = 0.05  # about 5 s for the file: time to press Cancel halfway
    before = main_window.model_info.path
    dialog = main_window.model_switcher.open_download_dialog()
    dialog.table.selectRow(0)
    dialog.download_button.click()
    qtbot.waitUntil(lambda: dialog.progress.value() > 0, timeout=30_000)
    assert dialog.cancel_button.isEnabled()
    assert main_window.host.state.downloading and "download" in main_window.host.state.status_text()
    dialog.cancel_button.click()
    qtbot.waitUntil(lambda: dialog.job is None, timeout=30_000)
    assert not main_window.host.state.downloading
    assert dialog.messages[-1].startswith("download cancelled")
    assert dialog.isVisible() and dialog.download_button.isEnabled()
    models = tmp_path / "data" / "models"
    assert not models.exists() or list(models.iterdir()) == []
    partials = list((tmp_path / "hf-home").rglob(f"*{dl.PARTIAL_SUFFIX}"))
    assert len(partials) == 1 and 0 < partials[0].stat().st_size < len(hub.repos[REPO].files[WEIGHTS])
    assert main_window.model_info.path == before  # the loaded model was never touched
    dialog.close()


def test_failed_download_shows_one_line_and_closes_cleanly(qtbot, main_window, hub):
    dialog = main_window.model_switcher.open_download_dialog()
    dialog.repo_edit.setText("nobody/nothing")
    assert dialog.chosen() == "nobody/nothing"
    dialog.download_button.click()
    qtbot.waitUntil(lambda: dialog.job is None, timeout=30_000)
    assert dialog.messages[-1].startswith("no model repo 'nobody/nothing'")
    assert "nobody/nothing" in dialog.status.text()
    dialog.close()


def test_model_menu_switches_between_downloaded_demo_and_recent(qtbot, main_window, hub, tmp_path, tiny_cfg):
    torch.manual_seed(0)
    downloaded = save_checkpoint(
        GPTModel(tiny_cfg), tmp_path / "data" / "models" / "someone--small", meta={"name": "someone/small"}
    )
    recent = save_checkpoint(GPTModel(tiny_cfg.replace(n_layers=1)), tmp_path / "elsewhere" / "mine")
    main_window.settings.add_recent("checkpoint", recent)
    labels = _menu_labels(main_window)
    assert "someone/small" in labels
    tips = [act.toolTip() for act in main_window.model_switcher.switch_actions]
    assert str(recent.resolve()) in tips and str(downloaded) in tips
    if (DEMO_MODEL_DIR / "config.json").is_file():
        assert labels[0].startswith("Demo model")

    def choose(path: Path) -> None:
        (act,) = [a for a in main_window.model_switcher.switch_actions if a.toolTip() == str(path)]
        act.trigger()

    choose(downloaded)
    qtbot.waitUntil(lambda: Path(main_window.model_info.path) == downloaded, timeout=30_000)
    choose(recent.resolve())
    qtbot.waitUntil(lambda: main_window.model_info.n_layers == 1, timeout=30_000)
    assert _menu_labels(main_window).count("someone/small") == 1  # listed once, recent or not


def test_closing_during_a_stalled_download_returns_at_once(qtbot, main_window, monkeypatch):
    """Found by the GUI monkey (seed 11): closing waited up to 30 s for the download thread."""
    import time

    from gptviz.qt import download_dialog

    released = threading.Event()

    def stalled(name, out, revision, progress=None, cancel=None):
        released.wait(10)  # a read that does not come back soon: the cancel flag is seen only after it
        raise DownloadCancelled("cancelled")

    monkeypatch.setattr(dl, "download_model", stalled)
    dialog = main_window.model_switcher.open_download_dialog()
    dialog.repo_edit.setText("someone/gpt2-like")
    dialog.download_button.click()
    qtbot.waitUntil(lambda: dialog.job is not None and dialog.job.download_thread.isRunning(), timeout=5_000)
    started = time.monotonic()
    dialog.close()
    assert time.monotonic() - started < 1.0
    assert dialog.job is None or dialog.job.cancel.is_set()
    released.set()  # the read returns; the thread sees the cancel and ends by itself
    qtbot.waitUntil(lambda: not download_dialog._RUNNING, timeout=10_000)
