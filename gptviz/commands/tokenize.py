"""`gptviz tokenize --json TEXT`."""

from __future__ import annotations

import argparse
import json

from gptviz.tokenizer import default_tokenizer


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("text", help="text to tokenize; <|endoftext|> becomes id 50256")
    parser.add_argument("--json", action="store_true", help='print {"ids": [...], "tokens": [...]}')


def run(args: argparse.Namespace) -> int:
    pieces = default_tokenizer().tokenize(args.text)
    ids = [p.id for p in pieces]
    tokens = [p.display for p in pieces]
    if args.json:
        print(json.dumps({"ids": ids, "tokens": tokens}, ensure_ascii=False))
    else:
        for piece in pieces:
            print(f"{piece.id:>6}  {piece.display!r}")
        print(f"{len(args.text)} characters, {len(ids)} tokens")
    return 0
