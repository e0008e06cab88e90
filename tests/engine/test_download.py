"""`gptviz download` against a local fake Hub (tests/fake_hub.py): real HTTP through huggingface_hub, no network.

The repo holds a random GPT-2 written by transformers' save_pretrained; the downloaded checkpoint must give
transformers' logits. Faults: a connection dropped halfway, a Ctrl-C halfway, corrupted bytes, a repo that is
not GPT-2, an unknown repo, a closed port, a full disk; each leaves nothing in the models folder.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest
import torch
from fake_hub import FakeHub, FakeRepo, folder_files, random_gpt2

from gptviz import cli
from gptviz.engine import download as dl
from gptviz.engine.checkpoint import load_checkpoint
from gptviz.engine.download_errors import (
    ChecksumError,
    DownloadError,
    HubUnreachableError,
    NotEnoughDiskError,
    NotGPT2Error,
    UnknownModelError,
)
from gptviz.engine.gpt2_sizes import hub_download_bytes
from gptviz.engine.models_folder import DATA_DIR_ENV

transformers = pytest.importorskip("transformers")

REPO = "openai-community/gpt2"  # what "124M" resolves to; the fake Hub serves a tiny random model there
WEIGHTS = "model.safetensors"
DECOYS = ("tf_model.h5", "flax_model.msgpack", "rust_model.ot", "onnx/decoder_model.onnx", "README.md")
ATOL = 1e-4


@pytest.fixture(scope="module")
def hf_model():
    return random_gpt2()


def _saved(model, folder: Path, **kwargs) -> dict[str, bytes]:
    model.save_pretrained(folder, **kwargs)
    return folder_files(folder)


@pytest.fixture(scope="module")
def gpt2_files(hf_model, tmp_path_factory) -> dict[str, bytes]:
    files = _saved(hf_model, tmp_path_factory.mktemp("hf") / "gpt2")
    for index, name in enumerate(DECOYS):  # what real GPT-2 repos also hold; never to be fetched
        files[name] = bytes([index]) * 1000
    return files


@pytest.fixture(scope="module")
def sharded_files(hf_model, tmp_path_factory) -> dict[str, bytes]:
    return _saved(hf_model, tmp_path_factory.mktemp("hf") / "sharded", max_shard_size="2MB")


@pytest.fixture(scope="module")
def bin_files(hf_model, tmp_path_factory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("hf") / "bin"
    files = {k: v for k, v in _saved(hf_model, folder).items() if not k.endswith(".safetensors")}
    buffer = io.BytesIO()
    torch.save(hf_model.state_dict(), buffer)  # the old pytorch_model.bin form (a zip pickle of tensors)
    files["pytorch_model.bin"] = buffer.getvalue()
    return files


@pytest.fixture
def hub(gpt2_files, sharded_files, bin_files, tmp_path, monkeypatch):
    import huggingface_hub.constants

    server = FakeHub(
        {
            REPO: FakeRepo(dict(gpt2_files)),
            "someone/sharded-gpt2": FakeRepo(dict(sharded_files)),
            "someone/bin-gpt2": FakeRepo(dict(bin_files)),
            "someone/tiny-bert": FakeRepo(
                {"config.json": b'{"model_type": "bert", "hidden_size": 32}', WEIGHTS: b"\0" * 4096}
            ),
            "someone/tf-only-gpt2": FakeRepo(
                {"config.json": gpt2_files["config.json"], "tf_model.h5": b"\0" * 4096}
            ),
        }
    )
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_TOKEN", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", server.endpoint)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "data"))
    # The test files are a few MB, less than one of huggingface_hub's 10 MiB reads: smaller reads let a test
    # stop a download halfway, as a Ctrl-C during a real 500 MB file would.
    monkeypatch.setattr(huggingface_hub.constants, "DOWNLOAD_CHUNK_SIZE", 256 * 1024)
    yield server
    server.close()


def _models(tmp_path: Path) -> Path:
    return tmp_path / "data" / "models"


def _assert_models_clean(tmp_path: Path, keep: tuple[str, ...] = ()) -> None:
    """Nothing half-written: only complete checkpoints named in `keep`, no hidden staging folders."""
    models = _models(tmp_path)
    left = sorted(p.name for p in models.iterdir()) if models.exists() else []
    assert left == sorted(keep)


def _assert_same_logits(path: Path, hf_model) -> None:
    model, meta = load_checkpoint(path)
    ids = torch.randint(0, 50257, (2, 12), generator=torch.Generator().manual_seed(1))  # (2, 12)
    with torch.no_grad():
        ours = model(ids)  # (2, 12, 50257)
        theirs = hf_model(ids).logits  # (2, 12, 50257)
    assert ours.shape == theirs.shape
    assert (ours - theirs).abs().max().item() <= ATOL


def _partials(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "hf-home").rglob(f"*{dl.PARTIAL_SUFFIX}"))


def test_download_by_size_matches_transformers_and_fetches_only_config_and_weights(hub, hf_model, tmp_path):
    reports: list[dl.DownloadProgress] = []
    result = dl.download_model("124M", progress=reports.append)

    assert result.path == _models(tmp_path) / "124M"  # the default: GPTVIZ_DATA_DIR/models/NAME
    _assert_same_logits(result.path, hf_model)
    repo = hub.repos[REPO]
    assert result.repo_id == REPO and result.commit == repo.commit
    assert result.files[WEIGHTS] == hashlib.sha256(repo.files[WEIGHTS]).hexdigest()
    assert result.fetched_bytes == len(repo.files[WEIGHTS])
    fetched = {
        path.rsplit("/", 1)[-1] for method, path, _ in hub.log if method == "GET" and "/resolve/" in path
    }
    assert fetched == {"config.json", WEIGHTS}  # not generation_config.json, TF, Flax, ONNX, rust, README
    assert not any(decoy in path for _, path, _ in hub.log for decoy in DECOYS)
    phases = [r.phase for r in reports]
    assert phases[0] == "listing" and phases[-1] == "done"
    assert {"downloading", "verifying", "importing", "saving"} <= set(phases)
    last = [r for r in reports if r.phase == "downloading"][-1]
    assert last.done == last.total == len(repo.files[WEIGHTS])
    _, meta = load_checkpoint(result.path)
    assert meta["hub_commit"] == repo.commit and meta["imported_by"] == "gptviz download"
    _assert_models_clean(tmp_path, keep=("124M",))


def test_second_download_reads_the_cache(hub, hf_model, tmp_path):
    first = dl.download_model(REPO, tmp_path / "first")
    sent = hub.sent[WEIGHTS]
    second = dl.download_model(REPO, tmp_path / "second")
    assert hub.sent[WEIGHTS] == sent  # no weight byte crossed the wire again
    assert second.fetched_bytes == 0 and second.cached_files == (WEIGHTS,)
    assert first.files == second.files
    _assert_same_logits(second.path, hf_model)


def test_dropped_connection_resumes_with_a_range_request(hub, hf_model, tmp_path):
    size = len(hub.repos[REPO].files[WEIGHTS])
    hub.repos[REPO].drop_once.add(WEIGHTS)
    result = dl.download_model(REPO, tmp_path / "out")
    ranges = hub.gets(WEIGHTS)
    assert len(ranges) == 2 and ranges[0] == ""
    resumed_at = int(ranges[1].removeprefix("bytes=").removesuffix("-"))
    assert 0 < resumed_at <= size // 2
    assert hub.sent[WEIGHTS] == size // 2 + (size - resumed_at)  # the second request sent only the rest
    _assert_same_logits(result.path, hf_model)


def test_interrupted_download_resumes_next_time(hub, hf_model, tmp_path):
    size = len(hub.repos[REPO].files[WEIGHTS])

    def ctrl_c_halfway(report: dl.DownloadProgress) -> None:
        if report.phase == "downloading" and report.done >= size // 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        dl.download_model("124M", progress=ctrl_c_halfway)
    _assert_models_clean(tmp_path)
    (partial,) = _partials(tmp_path)
    kept = partial.stat().st_size
    assert 0 < kept < size
    sent_before = hub.wait_quiet(WEIGHTS)  # the interrupted request's last bytes, counted before the next

    result = dl.download_model("124M")
    assert hub.gets(WEIGHTS)[-1] == f"bytes={kept}-"
    assert hub.sent[WEIGHTS] - sent_before == size - kept  # only the missing bytes
    assert result.resumed_bytes == kept and result.fetched_bytes == size - kept
    assert _partials(tmp_path) == []
    _assert_same_logits(result.path, hf_model)
    _assert_models_clean(tmp_path, keep=("124M",))


def test_corrupted_bytes_are_refused_and_deleted(hub, hf_model, tmp_path):
    repo = hub.repos[REPO]
    repo.corrupt.add(WEIGHTS)
    with pytest.raises(ChecksumError, match="do not match the Hub's sha256"):
        dl.download_model("124M")
    _assert_models_clean(tmp_path)
    assert _partials(tmp_path) == []
    sha = hashlib.sha256(repo.files[WEIGHTS]).hexdigest()
    assert not list((tmp_path / "hf-home").rglob(sha))  # the bad bytes never became the cache's blob

    repo.corrupt.clear()
    result = dl.download_model("124M")  # fetched afresh, from byte 0
    assert hub.gets(WEIGHTS)[-1] == ""
    _assert_same_logits(result.path, hf_model)


def test_damaged_cache_blob_is_fetched_again(hub, hf_model, tmp_path):
    first = dl.download_model(REPO, tmp_path / "a")
    blob = next((tmp_path / "hf-home").rglob(first.files[WEIGHTS]))
    blob.write_bytes(b"\0" * blob.stat().st_size)  # rot on disk, same size
    second = dl.download_model(REPO, tmp_path / "b")
    assert second.cached_files == () and second.fetched_bytes == len(hub.repos[REPO].files[WEIGHTS])
    _assert_same_logits(second.path, hf_model)


@pytest.mark.parametrize("repo_id", ["someone/sharded-gpt2", "someone/bin-gpt2"])
def test_sharded_and_pytorch_bin_repos(hub, hf_model, tmp_path, repo_id):
    result = dl.download_model(repo_id)
    assert result.path == _models(tmp_path) / repo_id.replace("/", "--")
    names = set(result.files)
    if "sharded" in repo_id:
        assert "model.safetensors.index.json" in names and len(names) >= 4  # config, index, 2+ shards
    else:
        assert names == {"config.json", "pytorch_model.bin"}
    _assert_same_logits(result.path, hf_model)


def test_non_gpt2_repo_is_refused_before_its_weights(hub, tmp_path):
    with pytest.raises(NotGPT2Error, match="model_type 'bert'"):
        dl.download_model("someone/tiny-bert")
    assert hub.gets(WEIGHTS) == []
    with pytest.raises(NotGPT2Error, match="no PyTorch weights"):
        dl.download_model("someone/tf-only-gpt2")
    assert hub.gets("tf_model.h5") == []
    _assert_models_clean(tmp_path)


def test_unknown_repo_revision_and_name(hub, tmp_path):
    with pytest.raises(UnknownModelError, match="no model repo 'nobody/nothing'"):
        dl.download_model("nobody/nothing")
    with pytest.raises(UnknownModelError, match="no revision 'v9'"):
        dl.download_model("124M", revision="v9")
    with pytest.raises(UnknownModelError, match="unknown model 'gpt3'"):
        dl.download_model("gpt3")
    _assert_models_clean(tmp_path)


def test_no_network(hub, tmp_path, monkeypatch):
    import socket

    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    with pytest.raises(HubUnreachableError) as caught:
        dl.download_model("124M")
    message = str(caught.value)
    assert message.startswith("cannot reach the Hugging Face Hub")
    assert message.endswith("set HF_ENDPOINT, or download the files yourself and use gptviz import")
    assert "\n" not in message
    _assert_models_clean(tmp_path)


def test_not_enough_disk_is_refused_before_downloading(hub, tmp_path, monkeypatch):
    monkeypatch.setattr(dl, "free_disk_bytes", lambda _path: 1_000_000)
    with pytest.raises(NotEnoughDiskError, match="only 1.00 MB is free"):
        dl.download_model("124M")
    assert hub.gets(WEIGHTS) == []
    _assert_models_clean(tmp_path)


def test_out_folder_with_other_files_is_left_alone(hub, tmp_path):
    out = tmp_path / "documents"
    out.mkdir()
    (out / "thesis.txt").write_text("precious")
    with pytest.raises(DownloadError, match="holds other files"):
        dl.download_model("124M", out)
    assert (out / "thesis.txt").read_text() == "precious"
    assert hub.log == []  # refused before asking the Hub anything


def test_cli_download_and_one_line_errors(hub, tmp_path, capsys):
    out = tmp_path / "cli-out"
    assert cli.main(["download", "124M", "--out", str(out), "--quiet"]) == 0
    captured = capsys.readouterr()
    assert str(out) in captured.out and "parameters" in captured.out
    assert (out / "model.safetensors").is_file()

    assert cli.main(["download", "nobody/nothing"]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(errors) == 1 and errors[0].startswith("gptviz download: error: no model repo 'nobody/nothing'")


def test_hub_download_bytes_matches_the_hubs_listing_for_124m():
    assert abs(hub_download_bytes("124M") - 548_105_171) < 20_000  # the Hub lists 548,105,171 bytes
