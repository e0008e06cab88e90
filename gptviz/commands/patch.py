"""`gptviz patch CKPT --clean P1 --corrupt P2 --answer A --wrong B --out F.npz`: activation patching."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from gptviz.commands.inspect import resolve_model_source, write_npz_atomically


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", metavar="CKPT", help="a gptviz checkpoint, `demo`, or GPT-2 weights")
    parser.add_argument("--clean", required=True, metavar="TEXT", help="the prompt whose answer is right")
    parser.add_argument("--corrupt", required=True, metavar="TEXT", help="the same number of tokens, changed")
    parser.add_argument("--answer", required=True, metavar="TOKEN", help='one token, e.g. " Paris"')
    parser.add_argument("--wrong", required=True, metavar="TOKEN", help='one token, e.g. " Rome"')
    parser.add_argument("--out", required=True, metavar="FILE.npz", help="where to write the two maps")
    parser.add_argument(
        "--heads", type=int, default=None, metavar="N", help="attention heads, if the source cannot say"
    )


def run(args: argparse.Namespace) -> int:
    from gptviz.engine.importers import import_weights
    from gptviz.engine.patching import patch, single_token
    from gptviz.tokenizer import default_tokenizer

    tokenizer = default_tokenizer()
    clean, corrupt = tokenizer.encode(args.clean), tokenizer.encode(args.corrupt)
    answer = single_token(tokenizer, args.answer, "answer")
    wrong = single_token(tokenizer, args.wrong, "wrong token")
    notes: list[str] = []
    model = import_weights(resolve_model_source(args.checkpoint), args.heads, warnings=notes)
    for note in notes:
        print(f"gptviz patch: warning: {note}", file=sys.stderr)
    result = patch(model, clean, corrupt, answer, wrong)
    out = Path(args.out)
    write_npz_atomically(
        out,
        {
            "resid": result.resid,  # (L, T)
            "heads": result.heads,  # (L, H)
            "clean_ids": result.clean_ids,  # (T,)
            "corrupt_ids": result.corrupt_ids,  # (T,)
            "ld_clean": np.asarray(result.ld_clean, dtype=np.float32),
            "ld_corrupt": np.asarray(result.ld_corrupt, dtype=np.float32),
        },
    )
    layer, head = np.unravel_index(int(np.argmax(result.heads)), result.heads.shape)
    print(
        f"wrote {out}: logit difference clean {result.ld_clean:.3f}, corrupted {result.ld_corrupt:.3f}; "
        f"strongest head L{layer}.H{head} restores {result.heads[layer, head]:.2f}"
    )
    return 0
