"""What a path on disk is: the one place that looks at a file or folder and says how gptviz opens it.

The window (drop, File › Open, the recent list), the open dialog and the importers all used to sniff paths
on their own, each with its own idea of which files make a checkpoint. `classify` decides once, from names
and a few bytes (a config.json's "format", a zip's pickle mentioning nanoGPT's `model_args`); it never
unpickles, never reads tensors and never imports torch, so the window can call it at start-up and in the
GUI thread.

    CHECKPOINT   gptviz's own checkpoint folder (config.json with format "gptviz-checkpoint" and
                 model.safetensors), its `.NAME.old` backup after a save killed mid-swap, or a folder
                 holding one as `checkpoint/` (a run directory without a metrics file)
    RUN_DIR      a run directory: settings.json and metrics.jsonl (and checkpoint/ once one is saved)
    HF_FOLDER    a folder of Hugging Face GPT-2 weights: config.json, model.safetensors,
                 pytorch_model.bin or a sharded index
    NANOGPT      nanoGPT's train.py checkpoint: a ckpt.pt, or an out_dir holding one
    WEIGHT_FILE  a single weights file (.safetensors, .bin, .pth, .pt): HF, the book's .pth, a state dict
    CORPUS       any other file: a text to tokenize (reading it refuses a binary one)
    MISSING      nothing there
    UNKNOWN      a folder that holds none of the above
"""

from __future__ import annotations

import enum
import json
import os
import zipfile
from pathlib import Path

from gptviz.engine.rundir import CHECKPOINT_DIR, METRICS_FILE, SETTINGS_FILE

CHECKPOINT_FORMAT = "gptviz-checkpoint"  # config.json's "format" in a gptviz checkpoint
CONFIG_FILE = "config.json"  # gptviz's checkpoint config, and Hugging Face's model config
WEIGHTS_FILE = "model.safetensors"  # gptviz's checkpoint weights, and a Hub model's
HF_WEIGHT_FILES = (
    "model.safetensors",
    "pytorch_model.bin",
    "model.safetensors.index.json",
    "pytorch_model.bin.index.json",
)
WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")
NANOGPT_CHECKPOINT = "ckpt.pt"  # what nanoGPT's train.py writes into its out_dir
_SNIFF_LIMIT = 64 * 2**20  # a checkpoint's pickle (no tensor data) is kilobytes; never read a huge one
_CONFIG_LIMIT = 16 * 2**20  # a config.json is kilobytes; a huge one is not read to classify it


class PathKind(enum.Enum):
    CHECKPOINT = "checkpoint"
    RUN_DIR = "run directory"
    HF_FOLDER = "Hugging Face folder"
    NANOGPT = "nanoGPT checkpoint"
    WEIGHT_FILE = "weights file"
    CORPUS = "corpus"
    MISSING = "missing"
    UNKNOWN = "unknown"

    @property
    def is_model(self) -> bool:
        """Opens as a model (loaded or imported), not as a corpus."""
        return self in _MODELS

    @property
    def is_own(self) -> bool:
        """gptviz's own format (loaded as a checkpoint, its history shown), as opposed to imported."""
        return self in (PathKind.CHECKPOINT, PathKind.RUN_DIR)


_MODELS = frozenset(
    {PathKind.CHECKPOINT, PathKind.RUN_DIR, PathKind.HF_FOLDER, PathKind.NANOGPT, PathKind.WEIGHT_FILE}
)


def classify(path: str | os.PathLike) -> PathKind:
    """What `path` is (see the module's table). Checks run from the most specific to the least: a gptviz
    checkpoint is also a folder with config.json, and the demo model is a checkpoint with a run's files
    beside it (it opens as the checkpoint, whose history is found by gptviz.engine.run_follow)."""
    path = Path(path).expanduser()
    if path.is_dir():
        return _classify_folder(path)
    if path.is_file():
        if find_nanogpt_checkpoint(path) is not None:
            return PathKind.NANOGPT
        return PathKind.WEIGHT_FILE if path.suffix.lower() in WEIGHT_SUFFIXES else PathKind.CORPUS
    if path.exists():
        return PathKind.UNKNOWN  # a socket, a device: nothing gptviz reads
    return PathKind.CHECKPOINT if is_own_checkpoint(path) else PathKind.MISSING


def _classify_folder(path: Path) -> PathKind:
    if is_own_checkpoint(path):
        return PathKind.CHECKPOINT
    if is_run_dir(path):
        return PathKind.RUN_DIR
    if is_own_checkpoint(path / CHECKPOINT_DIR):
        return PathKind.CHECKPOINT  # a run directory whose metrics are gone: its checkpoint still opens
    if any((path / name).is_file() for name in (CONFIG_FILE, *HF_WEIGHT_FILES)):
        return PathKind.HF_FOLDER
    if find_nanogpt_checkpoint(path) is not None:
        return PathKind.NANOGPT
    return PathKind.UNKNOWN


def is_run_dir(path: str | os.PathLike) -> bool:
    """A run directory: settings.json and metrics.jsonl (the layout of gptviz.engine.rundir)."""
    path = Path(path)
    return (path / SETTINGS_FILE).is_file() and (path / METRICS_FILE).exists()


def checkpoint_in(path: str | os.PathLike) -> Path:
    """The checkpoint folder to load for `path`: the folder itself, or the `checkpoint/` a run directory
    (or any folder) holds when the folder is not a checkpoint of its own."""
    path = Path(path)
    inner = path / CHECKPOINT_DIR
    if (inner / CONFIG_FILE).is_file() and not (path / CONFIG_FILE).is_file():
        return inner
    return path


def is_own_checkpoint(path: str | os.PathLike) -> bool:
    """A gptviz checkpoint folder (its config.json says format "gptviz-checkpoint"), or, when `path` is
    gone, the `.NAME.old` backup a save killed between its two renames left behind."""
    path = Path(path)
    candidate = path if path.exists() else path.parent / f".{path.name}.old"
    config = candidate / CONFIG_FILE
    try:
        if not config.is_file() or config.stat().st_size > _CONFIG_LIMIT:
            return False
        data = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):  # ValueError: also a huge int
        return False
    return isinstance(data, dict) and data.get("format") == CHECKPOINT_FORMAT


def find_nanogpt_checkpoint(path: str | os.PathLike) -> Path | None:
    """The nanoGPT checkpoint `path` names (a ckpt.pt file, or an out_dir holding ckpt.pt), else None.

    Decided without unpickling: a torch.save zip whose pickle mentions `model_args`. The reader
    (gptviz.engine.nanogpt) then checks the structure properly and explains anything that does not fit.
    An out_dir that also holds Hugging Face or gptviz files is not one: those decide.
    """
    path = Path(path)
    if path.is_dir():
        candidate = path / NANOGPT_CHECKPOINT
        others = (WEIGHTS_FILE, "pytorch_model.bin", CONFIG_FILE)
        if not candidate.is_file() or any((path / name).exists() for name in others):
            return None
        path = candidate
    return path if path.is_file() and _mentions_model_args(path) else None


def _mentions_model_args(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as archive:
            pickles = [i for i in archive.infolist() if i.filename.endswith("data.pkl")]
            if len(pickles) != 1 or pickles[0].file_size > _SNIFF_LIMIT:
                return False
            return b"model_args" in archive.read(pickles[0])
    except (OSError, zipfile.BadZipFile, ValueError, RuntimeError):
        return False  # not a torch.save zip: the other importers decide what it is
