"""`gptviz import SRC --out CKPT_DIR [--heads N]`: GPT-2 weights from elsewhere as a gptviz checkpoint.

SRC is a Hugging Face GPT-2 folder (config.json + model.safetensors or pytorch_model.bin), one such file,
the book's `.pth` state dict, or a gptviz checkpoint. Pickled files are read without running any code.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gptviz.config import count_params


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "src",
        metavar="SRC",
        help="Hugging Face GPT-2 folder or file, the book's .pth, or a gptviz checkpoint",
    )
    parser.add_argument(
        "--out", required=True, metavar="CKPT_DIR", help="checkpoint directory to write (replaced atomically)"
    )
    parser.add_argument(
        "--heads",
        type=int,
        default=None,
        metavar="N",
        help="attention heads, when there is no config.json and the width "
        "is not a standard GPT-2 size (768, 1024, 1280, 1600)",
    )


def run(args: argparse.Namespace) -> int:
    from gptviz.engine.checkpoint import save_checkpoint
    from gptviz.engine.importers import read_weights

    imported = read_weights(args.src, args.heads)
    for note in imported.warnings:
        print(f"gptviz import: warning: {note}", file=sys.stderr)
    meta = {
        "source": str(Path(args.src).expanduser().resolve()),
        "source_format": imported.file_format,
        "key_style": imported.key_style,
        "imported_by": "gptviz import",
    }
    out = save_checkpoint(imported.model, args.out, meta=meta)
    cfg = imported.model.cfg
    print(
        f"imported {args.src} ({imported.file_format}, {imported.key_style} keys): {count_params(cfg):,} "
        f"parameters, {cfg.n_layers} layers, {cfg.n_heads} heads, width {cfg.emb_dim}, context "
        f"{cfg.context_length}, vocab {cfg.vocab_size} -> {out}"
    )
    return 0
