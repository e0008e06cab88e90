"""`gptviz download NAME [--out DIR] [--revision REV]`: GPT-2 from the Hugging Face Hub as a checkpoint.

NAME is 124M, 355M, 774M or 1558M (OpenAI's GPT-2: openai-community/gpt2, -medium, -large, -xl) or a repo id
owner/name holding a transformers GPT-2. The checkpoint goes to the data folder's models/NAME unless --out
says otherwise. On a terminal a bar shows the bytes, rate and ETA; Ctrl-C keeps what arrived, and running the
same command again resumes.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import TextIO

from gptviz.engine.download import DownloadProgress
from gptviz.engine.gpt2_sizes import GPT2_REPOS
from gptviz.engine.human_units import format_bytes, format_duration

BAR_WIDTH = 24
REDRAW_S = 0.2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "name",
        metavar="NAME",
        help=f"a GPT-2 size ({', '.join(GPT2_REPOS)}) or a Hub repo id owner/name holding a GPT-2 model",
    )
    parser.add_argument(
        "--out",
        metavar="DIR",
        default=None,
        help="checkpoint directory to write (default: the data folder's models/NAME; GPTVIZ_DATA_DIR moves it)",
    )
    parser.add_argument(
        "--revision", metavar="REV", default=None, help="branch, tag or commit (default: main)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress output")


class ByteBar:
    """Download progress on stderr: a bar redrawn in place on a terminal, a line per phase otherwise."""

    def __init__(self, stream: TextIO, quiet: bool = False) -> None:
        self.stream = stream
        self.quiet = quiet
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self._phase = ""
        self._drawn = 0.0
        self.last: DownloadProgress | None = None

    def __call__(self, report: DownloadProgress) -> None:
        self.last = report
        if self.quiet:
            return
        if report.phase != "downloading":
            if report.phase != self._phase:
                self.finish()
                if report.phase != "done":
                    print(f"{report.phase} {report.file}", file=self.stream, flush=True)
            self._phase = report.phase
            return
        self._phase = report.phase
        now = time.monotonic()
        if self.tty and (now - self._drawn >= REDRAW_S or report.done >= report.total):
            self._drawn = now
            filled = int(round(BAR_WIDTH * report.fraction))
            bar = "#" * filled + "." * (BAR_WIDTH - filled)
            eta = format_duration(report.eta_s, "short", unknown="--")
            self.stream.write(
                f"\r\033[K[{bar}] {report.fraction:4.0%} {format_bytes(report.done)} / "
                f"{format_bytes(report.total)}  {format_bytes(report.rate)}/s  ETA {eta}  "
                f"{report.file}"
            )
            self.stream.flush()
        elif not self.tty and report.done >= report.total:
            print(
                f"downloaded {format_bytes(report.total)} ({format_bytes(report.rate)}/s)", file=self.stream
            )

    def finish(self) -> None:
        if self.tty and self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = 0.0


def run(args: argparse.Namespace) -> int:
    from gptviz.engine.download import download_model

    bar = ByteBar(sys.stderr, quiet=args.quiet)
    try:
        result = download_model(args.name, args.out, args.revision, progress=bar)
    except KeyboardInterrupt:
        bar.finish()
        kept = (
            f" ({format_bytes(bar.last.done)} on disk)"
            if bar.last and bar.last.phase == "downloading"
            else ""
        )
        print(
            f"gptviz download: interrupted; what arrived is kept in the Hugging Face cache{kept}, and the same "
            "command resumes",
            file=sys.stderr,
        )
        return 130
    bar.finish()
    for note in result.warnings:
        print(f"gptviz download: warning: {note}", file=sys.stderr)
    how = (
        "all from the cache"
        if not result.fetched_bytes and result.cached_files
        else f"{format_bytes(result.fetched_bytes)} downloaded"
        + (f", {format_bytes(result.resumed_bytes)} resumed" if result.resumed_bytes else "")
    )
    print(f"{result.repo_id}@{result.commit[:10]}: {result.params:,} parameters, {how} -> {result.path}")
    return 0
