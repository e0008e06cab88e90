"""`gptviz export CKPT --format hf|book --out PATH`: a model in Hugging Face's or the book's format.

`hf` writes a folder that `transformers.GPT2LMHeadModel.from_pretrained(PATH)` loads; `book` writes one
`.pth` state dict that the book's ch. 4 `GPTModel` loads with `load_state_dict`. CKPT is anything
`gptviz import` reads (a gptviz checkpoint, `demo`, a Hugging Face folder, the book's .pth, nanoGPT's ckpt.pt).
"""

from __future__ import annotations

import argparse
import json
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "checkpoint", metavar="CKPT", help="a gptviz checkpoint, `demo`, or any source `gptviz import` reads"
    )
    parser.add_argument(
        "--format",
        required=True,
        choices=("hf", "book"),
        dest="fmt",
        help="hf: a Hugging Face GPT-2 folder (config.json + model.safetensors); book: the book's .pth",
    )
    parser.add_argument(
        "--out",
        required=True,
        metavar="PATH",
        help="hf: the folder to write (new, empty or an earlier export); book: the .pth file (replaced atomically)",
    )
    parser.add_argument(
        "--heads", type=int, default=None, metavar="N", help="attention heads, when CKPT alone cannot tell"
    )


def run(args: argparse.Namespace) -> int:
    from gptviz.commands.inspect import resolve_model_source
    from gptviz.engine.export import FORMATS, book_config, export_model
    from gptviz.engine.importers import import_weights

    notes: list[str] = []
    model = import_weights(resolve_model_source(args.checkpoint), args.heads, warnings=notes)
    for note in notes:
        print(f"gptviz export: warning: {note}", file=sys.stderr)
    out = export_model(model, args.fmt, args.out)
    cfg = model.cfg
    print(
        f"exported {args.checkpoint} as {FORMATS[args.fmt]}: {cfg.n_layers} layers, {cfg.n_heads} heads, width "
        f"{cfg.emb_dim}, head {'tied' if cfg.tie_weights else 'untied'}, q/k/v bias "
        f"{'on' if cfg.qkv_bias else 'off'} -> {out}"
    )
    if args.fmt == "book":
        print(f"the book's config for GPTModel(cfg): {json.dumps(book_config(cfg))}")
    return 0
