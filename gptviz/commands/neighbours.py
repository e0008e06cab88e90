"""`gptviz neighbours CKPT --token T [--k 10] [--json]`: the tokens nearest one token in the embedding matrix."""

from __future__ import annotations

import argparse
import json
import sys

from gptviz.commands.inspect import resolve_model_source


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", metavar="CKPT", help="a gptviz checkpoint, `demo`, or GPT-2 weights")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--token", metavar="TEXT", help='one token, e.g. " the" (mind the space)')
    which.add_argument("--id", type=int, metavar="N", help="a token id instead of its text")
    parser.add_argument("--k", type=int, default=10, metavar="K", help="how many neighbours (default 10)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--heads", type=int, default=None, metavar="N", help="attention heads, if the source cannot say"
    )


def run(args: argparse.Namespace) -> int:
    from gptviz.engine.embeddings import nearest_neighbours
    from gptviz.engine.importers import import_weights
    from gptviz.engine.patching import single_token
    from gptviz.tokenizer import default_tokenizer

    tokenizer = default_tokenizer()
    token = single_token(tokenizer, args.token, "token") if args.token is not None else args.id
    notes: list[str] = []
    model = import_weights(resolve_model_source(args.checkpoint), args.heads, warnings=notes)
    for note in notes:
        print(f"gptviz neighbours: warning: {note}", file=sys.stderr)
    found = nearest_neighbours(model, tokenizer, token, args.k)
    if args.json:
        out = {
            "token_id": found.token_id,
            "token": found.piece,
            "neighbours": [
                [int(i), piece, float(c)]
                for i, piece, c in zip(found.ids.tolist(), found.pieces, found.cosine.tolist(), strict=True)
            ],
        }
        print(json.dumps(out, ensure_ascii=False))
        return 0
    print(f"nearest {len(found.ids)} to {found.piece!r} (id {found.token_id}) by cosine of embedding rows:")
    for i, piece, c in zip(found.ids.tolist(), found.pieces, found.cosine.tolist(), strict=True):
        print(f"{c:+.4f}  {i:>6}  {piece!r}")
    return 0
