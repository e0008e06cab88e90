"""`gptviz info (CKPT_DIR | --preset NAME) --json`."""

from __future__ import annotations

import argparse
import json

from gptviz.config import PRESETS, preset, size_report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", nargs="?", help="a gptviz checkpoint directory")
    parser.add_argument(
        "--preset", choices=list(PRESETS), help="a built-in model size instead of a checkpoint"
    )
    parser.add_argument("--json", action="store_true", help="print the numbers as JSON")


def run(args: argparse.Namespace) -> int:
    if (args.checkpoint is None) == (args.preset is None):
        raise SystemExit("gptviz info: error: give a checkpoint directory or --preset NAME (one of them)")
    if args.preset:
        cfg = preset(args.preset)
    else:
        from gptviz.engine.checkpoint import read_checkpoint_config

        cfg = read_checkpoint_config(args.checkpoint)
    report = size_report(cfg)
    if args.json:
        print(json.dumps(report))
    else:
        print(
            f"{report['name']}: {report['n_layers']} layers, {report['n_heads']} heads, width {report['emb_dim']}, "
            f"context {report['context_length']}"
        )
        print(f"parameters: {report['params']:,} ({report['params_untied']:,} with an untied output head)")
        print(
            f"fp32 memory: {report['bytes_fp32'] / 2**20:.2f} MB "
            f"({report['bytes_fp32_untied'] / 2**20:.2f} MB untied)"
        )
    return 0
