"""`gptviz bench [--quick | --judged-quick] [--device cpu|cuda|auto] [--json] [--only NAME ...] [--out FILE | --no-write]`.

Runs the side-by-side benchmarks (gptviz.bench), prints a table (or, with --json, only the JSON object),
and writes the results as markdown to docs/benchmarks.md (relative to the current folder) unless told not to.
A GPU run (`--device cuda`) runs generation, training and capture there and writes docs/benchmarks-cuda.md
by default, so it never overwrites the CPU report.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

DEFAULT_OUT = "docs/benchmarks.md"
DEFAULT_CUDA_OUT = "docs/benchmarks-cuda.md"
GPU_NOTES = "What these GPU figures mean, against which ceiling and target: docs/benchmarks.md, 'On a GPU'."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from gptviz.bench.runner import BENCHMARKS

    parser.add_argument(
        "--quick",
        action="store_true",
        help="smaller sizes and fewer repeats (under 2 minutes on 2 idle cores); judges nothing",
    )
    parser.add_argument(
        "--judged-quick",
        action="store_true",
        help="every target at the size it is stated for, with fewer repeats (about 15 minutes on 2 idle "
        "cores): judged, but noisier than a full run",
    )
    parser.add_argument(
        "--device",
        choices=("cpu", "cuda", "auto"),
        default="cpu",
        help="where the model benchmarks run (default cpu; auto: cuda when PyTorch sees a GPU). cuda runs "
        "generation, training (bf16 autocast) and capture on the GPU",
    )
    parser.add_argument("--json", action="store_true", help="print the results as one JSON object on stdout")
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=120.0,
        metavar="SECONDS",
        help="before each benchmark of a full run, wait up to this long for the 1-minute load average to fall "
        "to 1 (default 120; 0 never waits); a busier machine is named in a warning and in the report",
    )
    parser.add_argument(
        "--only",
        nargs="+",
        metavar="NAME",
        choices=list(BENCHMARKS),
        help=f"run only these benchmarks ({', '.join(BENCHMARKS)})",
    )
    parser.add_argument(
        "--out",
        default=None,
        metavar="FILE",
        help=f"markdown report to write (default {DEFAULT_OUT}; {DEFAULT_CUDA_OUT} with --device cuda)",
    )
    parser.add_argument(
        "--render",
        action="store_true",
        help="measure nothing: rewrite FILE from the results stored in FILE with .json (after editing the notes)",
    )
    parser.add_argument(
        "--no-write",
        action="store_true",
        help="do not write the report (by default FILE and FILE with .json; with --only, the other "
        "benchmarks' sections are kept from that .json)",
    )


def run(args: argparse.Namespace) -> int:
    from gptviz.bench.harness import load_average, machine_info, resolve_device, summary_table
    from gptviz.bench.runner import (
        as_json,
        merge_previous,
        run_benchmarks,
        select,
        write_json,
        write_markdown,
    )

    if args.quick and args.judged_quick:
        from gptviz.errors import ConfigError

        raise ConfigError("choose one of --quick (small sizes, nothing judged) and --judged-quick")
    if args.render:  # measures nothing, so needs no GPU
        args.out = args.out or (DEFAULT_CUDA_OUT if args.device == "cuda" else DEFAULT_OUT)
        return _render(args)
    device = resolve_device(args.device)  # cuda without a GPU: a one-line error before anything runs
    args.out = args.out or (DEFAULT_OUT if device == "cpu" else DEFAULT_CUDA_OUT)
    names = select(args.only, device)
    machine = machine_info(device)
    log = sys.stderr
    if device != "cpu":
        print(f"[bench] on {device}: {machine.get('gpu')}", file=log, flush=True)
    if args.quick:
        print(
            "[bench] quick run: smaller sizes and fewer repeats (see each setup line)", file=log, flush=True
        )
    if args.judged_quick:
        print(
            "[bench] judged quick run: the targets' own sizes, fewer repeats (see each setup line)",
            file=log,
            flush=True,
        )
    results = run_benchmarks(
        names,
        quick=args.quick,
        judged_quick=args.judged_quick,
        log=log,
        device=device,
        quiet_wait=args.quiet_wait,
    )
    args.device = device
    machine["load_average_end"] = load_average()
    command = "gptviz bench " + " ".join(shlex.quote(a) for a in _argv_of(args))
    if not args.no_write:
        sidecar = Path(args.out).with_suffix(".json")
        report = merge_previous(results, sidecar) if args.only else list(results)
        if len(report) > len(results):
            command = f"gptviz bench` (earlier), sections updated by `{command.strip()}"
        write_json(sidecar, report, machine, args.quick, command.strip())
        notes = None if device == "cpu" else GPU_NOTES  # notes.md profiles the CPU run
        path = write_markdown(
            args.out, report, machine, quick=args.quick, command=command.strip(), notes=notes
        )
        print(f"[bench] wrote {path} and {sidecar}", file=log, flush=True)
    if args.json:
        print(json.dumps(as_json(results, machine, args.quick), indent=2))
    else:
        print(summary_table(results))
        for r in results:
            if r.setup:
                print(f"\n{r.name}: {r.setup}")
    return 0


def _render(args: argparse.Namespace) -> int:
    from gptviz.bench.runner import merge_previous, write_markdown
    from gptviz.errors import DataError

    sidecar = Path(args.out).with_suffix(".json")
    try:
        stored = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read stored results {sidecar}: {exc}") from None
    results = merge_previous([], sidecar)
    command = stored.get("command") or "gptviz bench"
    write_markdown(
        args.out, results, stored.get("machine") or {}, quick=bool(stored.get("quick")), command=command
    )
    print(f"[bench] wrote {args.out} from {sidecar}", file=sys.stderr, flush=True)
    return 0


def _argv_of(args: argparse.Namespace) -> list[str]:
    """The options as a user would type them, for the report's 'measured with' line."""
    argv: list[str] = []
    if args.quick:
        argv.append("--quick")
    if getattr(args, "judged_quick", False):
        argv.append("--judged-quick")
    if getattr(args, "device", "cpu") != "cpu":
        argv += ["--device", args.device]
    if args.only:
        argv += ["--only", *args.only]
    return argv
