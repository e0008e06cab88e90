"""The `cli` fixture: one `gptviz` call in this process, with its exit code, stdout and stderr."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from gptviz.cli import main


@dataclass
class CliOutcome:
    code: int
    out: str
    err: str

    @property
    def err_lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.strip()]


@pytest.fixture
def cli(capsys):
    """Run `gptviz ARGS` in this process (no second torch import) and return code, stdout and stderr."""

    def run(*args: str) -> CliOutcome:
        capsys.readouterr()
        try:
            code = main([str(a) for a in args])
        except SystemExit as exc:  # argparse refusals
            code = exc.code if isinstance(exc.code, int) else 1
        captured = capsys.readouterr()
        return CliOutcome(code, captured.out, captured.err)

    return run
