"""The files a GUI monkey's file dialogs answer with, and the dialogs that answer them.

QFileDialog's static functions are replaced for the run by ones that return a random path from a folder
made here: valid (a corpus, a checkpoint, a Hugging Face folder, the book's .pth, a new folder to save into)
or not (missing, a directory, binary bytes, a damaged checkpoint, a folder that cannot be written), or
cancel. Apart from the driver (gptviz.bench.monkey) because it is the data the input reaches, not the input.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any


def make_answers(root: Path, cfg: Any) -> dict[str, list[str]]:
    """Paths the patched file dialogs answer with: for opening files, folders, and for saving."""
    import torch

    from gptviz.data import builtin_text
    from gptviz.engine.checkpoint import save_checkpoint
    from gptviz.engine.export import export_book, export_hf
    from gptviz.model.gpt import GPTModel

    root.mkdir(parents=True, exist_ok=True)
    (root / "corpus.txt").write_text(builtin_text()[:20_000], encoding="utf-8")
    (root / "binary.bin").write_bytes(bytes(range(256)) * 8)
    (root / "latin1.txt").write_bytes("caf\xe9 cr\xe8me".encode("latin-1"))
    (root / "empty.txt").write_bytes(b"")
    torch.manual_seed(1)
    model = GPTModel(cfg).eval()
    save_checkpoint(model, root / "checkpoint")
    save_checkpoint(model, root / "damaged")
    weights_file = root / "damaged" / "model.safetensors"
    weights_file.write_bytes(weights_file.read_bytes()[:100])
    export_hf(model, root / "hf")
    export_book(model, root / "book.pth")
    (root / "empty-dir").mkdir(exist_ok=True)
    missing = str(root / "missing" / "nothing.txt")
    files = [str(root / n) for n in ("corpus.txt", "binary.bin", "latin1.txt", "empty.txt", "book.pth")]
    files += [str(root / "hf" / "model.safetensors"), missing, str(root), "", "\x00bad", "é/☃.txt"]
    dirs = [str(root / n) for n in ("checkpoint", "damaged", "hf", "empty-dir")] + [missing, str(root), ""]
    saves = ["", missing, "/proc/gptviz-cannot-write", str(root / "corpus.txt"), str(root / "checkpoint")]
    saves += ["{new}"]  # a fresh path under root each time
    return {"open": files, "dir": dirs, "save": saves}


class DialogAnswers:
    """Answers a file dialog with a random path of its kind ("open", "dir", "save"), noting each answer."""

    def __init__(self, answers: dict[str, list[str]], rng: random.Random, note: Callable[[str], None]):
        self.answers, self.rng, self.note = answers, rng, note
        self.root = Path(answers["open"][0]).parent
        self.new_paths = 0

    def answer(self, kind: str) -> str:
        choice = self.rng.choice(self.answers[kind])
        if choice == "{new}":
            self.new_paths += 1
            choice = str(self.root / f"saved-{self.new_paths}")
        self.note(f"dialog answers {kind}: {choice!r}")
        return choice

    def patch_dialogs(self) -> Callable[[], None]:
        """Replace QFileDialog's static functions with answers; the function returned puts them back."""
        from PySide6.QtWidgets import QFileDialog

        names = ("getOpenFileName", "getSaveFileName", "getExistingDirectory", "getOpenFileNames")
        saved = {name: QFileDialog.__dict__.get(name) for name in names}
        rng = self.rng

        def open_file(*_a, **_k):
            return self.answer("open"), ""

        def open_files(*_a, **_k):
            return [self.answer("open") for _ in range(rng.randint(0, 2))], ""

        def save_file(*_a, **_k):
            return self.answer("save"), ""

        def directory(*_a, **_k):
            return self.answer("dir")

        fakes = {
            "getOpenFileName": open_file,
            "getOpenFileNames": open_files,
            "getSaveFileName": save_file,
            "getExistingDirectory": directory,
        }
        for name, fake in fakes.items():  # a monkey-patch, undone by restore(): setattr, as restore does
            setattr(QFileDialog, name, staticmethod(fake))

        def restore() -> None:
            for name, value in saved.items():
                if value is not None:
                    setattr(QFileDialog, name, value)

        return restore
