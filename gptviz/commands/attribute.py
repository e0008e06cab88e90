"""`gptviz attribute CKPT --prompt P --target TOK --method dla|ixg|ig [--json]`: why the model predicts TOK."""

from __future__ import annotations

import argparse
import json
import sys

from gptviz.commands.inspect import resolve_model_source


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", metavar="CKPT", help="a gptviz checkpoint, `demo`, or GPT-2 weights")
    parser.add_argument("--prompt", required=True, metavar="TEXT", help="the text the model reads")
    parser.add_argument("--target", required=True, metavar="TOKEN", help='one token, e.g. " Paris"')
    parser.add_argument(
        "--against", default=None, metavar="TOKEN", help="dla: explain the target's logit minus this one's"
    )
    parser.add_argument(
        "--position", type=int, default=-1, metavar="N", help="which position predicts (default: the last)"
    )
    parser.add_argument(
        "--method",
        choices=("dla", "ixg", "ig"),
        default="dla",
        help="dla: the logit split into the model's parts; ixg: input x gradient; ig: integrated gradients",
    )
    parser.add_argument("--steps", type=int, default=32, metavar="N", help="ig: points on the path (>= 32)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--heads", type=int, default=None, metavar="N", help="attention heads, if the source cannot say"
    )


def run(args: argparse.Namespace) -> int:
    from gptviz.engine.attribution import direct_logit_attribution, input_attribution
    from gptviz.engine.importers import import_weights
    from gptviz.engine.patching import single_token
    from gptviz.errors import ConfigError
    from gptviz.tokenizer import default_tokenizer

    tokenizer = default_tokenizer()
    ids = tokenizer.encode(args.prompt)
    if not ids:
        raise ConfigError("the prompt has no tokens")
    target = single_token(tokenizer, args.target, "target")
    against = single_token(tokenizer, args.against, "token to compare with") if args.against else None
    notes: list[str] = []
    model = import_weights(resolve_model_source(args.checkpoint), args.heads, warnings=notes)
    for note in notes:
        print(f"gptviz attribute: warning: {note}", file=sys.stderr)
    if args.method == "dla":
        result = direct_logit_attribution(model, ids, target, position=args.position, against_id=against)
        out = {
            "method": "dla",
            "target_id": result.target_id,
            "against_id": result.against_id,
            "position": result.position,
            "logit": result.logit,
            "components": [[name, value] for name, value in result.components],
        }
        lines = [
            f"{name:>18}  {value:+.4f}" for name, value in sorted(result.components, key=lambda c: -abs(c[1]))
        ]
        text = [f"logit {result.logit:.4f} at position {result.position}, largest parts first:", *lines[:20]]
    else:
        attributed = input_attribution(
            model, ids, target, position=args.position, method=args.method, steps=args.steps
        )
        pieces = [tokenizer.piece(i) for i in ids]
        out = {
            "method": attributed.method,
            "target_id": attributed.target_id,
            "position": attributed.position,
            "tokens": pieces,
            "scores": list(attributed.scores),
            "target_logit": attributed.target_logit,
            "baseline_logit": attributed.baseline_logit,
        }
        text = [f"target logit {attributed.target_logit:.4f}; score per input token:"]
        text += [
            f"{piece!r:>20}  {score:+.4f}" for piece, score in zip(pieces, attributed.scores, strict=True)
        ]
    print(json.dumps(out, ensure_ascii=False) if args.json else "\n".join(text))
    return 0
