"""`gptviz` on the command line. With no command it opens the desktop app.

Each command lives in `gptviz/commands/<name>.py` with `add_arguments(parser)` and `run(args) -> int`;
modules are imported only when their command runs, so `gptviz tokenize` does not pay for Qt.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from gptviz.errors import GptvizError

COMMANDS = {
    "tokenize": "text -> ids and tokens",
    "info": "parameter count and memory of a checkpoint or preset",
    "import": "import GPT-2 weights (Hugging Face folder/file or the book's .pth) as a gptviz checkpoint",
    "download": "download GPT-2 (124M/355M/774M/1558M or a Hub repo id) as a gptviz checkpoint",
    "inspect": "run a prompt and save logits, attention and hidden states to .npz",
    "train": "train a model on a corpus, writing a run directory",
    "generate": "generate text from a checkpoint",
    "screenshot": "render the main window and each pane to PNG files (no display needed)",
    "bench": "speed and memory benchmarks against the book's way",
    "patch": "activation patching: which layer, position and head carry a clean prompt's answer",
    "attribute": "why this token: its logit split into the model's parts (dla), or per input token (ixg, ig)",
    "export": "write a model as a Hugging Face GPT-2 folder or the book's .pth state dict",
    "neighbours": "the tokens nearest one token in the embedding matrix (cosine)",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gptviz", description="See inside a GPT while it reads, learns and writes."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, help_text in COMMANDS.items():
        module = _command_module(name)
        if module is None:
            continue
        command_parser = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(command_parser)
    return parser


def _command_module(name: str):
    try:
        return importlib.import_module(f"gptviz.commands.{name}")
    except ModuleNotFoundError as exc:
        if exc.name == f"gptviz.commands.{name}":
            return None  # command not built yet
        raise


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0].startswith("-psn") or argv[0] in ("--open",):
        from gptviz.qt.app import main as app_main

        return app_main(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return int(_command_module(args.command).run(args) or 0)
    except GptvizError as exc:
        print(f"gptviz {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # disk full, read-only folder, missing file: the OS's words, one line
        where = f": {exc.filename}" if exc.filename else ""
        print(f"gptviz {args.command}: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"gptviz {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
