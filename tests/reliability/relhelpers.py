"""Helpers shared by the reliability tests: a tiny model and a snapshot of a folder."""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from gptviz.config import GPTConfig
from gptviz.model.gpt import GPTModel

# Small enough that a checkpoint is ~30 KB and a save takes a millisecond; the GPT-2 vocabulary is kept
# down to 300 ids, so generate/import through the CLI stay fast too.
REL_CFG = GPTConfig(vocab_size=300, context_length=16, emb_dim=16, n_heads=2, n_layers=1, drop_rate=0.0)


def make_model(seed: int = 0, cfg: GPTConfig = REL_CFG) -> GPTModel:
    torch.manual_seed(seed)
    return GPTModel(cfg).eval()


def tree_digest(root: Path) -> dict[str, str]:
    """Every file under `root` (hidden ones too) with its sha256: 'nothing changed on disk' is equality."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        out[rel] = "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def fill_model(model: GPTModel, value: float) -> GPTModel:
    """Every weight set to `value`, so a loaded checkpoint tells which save it came from."""
    with torch.no_grad():
        for param in model.parameters():
            param.fill_(value)
    return model


def save_forever(directory: str, counter, first_version: int) -> None:
    """Child process of the SIGKILL test: save checkpoints version after version until killed.

    `counter` (a multiprocessing.Value) holds the last version whose save_checkpoint returned.
    """
    from gptviz.engine.checkpoint import save_checkpoint

    torch.set_num_threads(1)
    model = make_model()
    version = first_version
    while True:
        fill_model(model, float(version))
        save_checkpoint(model, directory, trainer_state={"step": version}, meta={"version": version})
        counter.value = version
        version += 1


def write_metrics_slowly(path: str, counter, piece: int = 5) -> None:
    """Child process of the follower test: append metrics lines a few bytes at a time until killed, so a
    kill almost always lands in the middle of a line. `counter` holds the last step written in full."""
    import time

    from gptviz.engine.rundir import dumps_record

    step = 0
    with open(path, "ab", buffering=0) as handle:
        while True:
            step += 1
            line = (
                dumps_record({"step": step, "train_loss": 10.0 / step, "note": "é" * (step % 7)}) + "\n"
            ).encode()
            for start in range(0, len(line), piece):
                handle.write(line[start : start + piece])
                time.sleep(0.0005)
            counter.value = step
