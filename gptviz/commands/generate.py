"""`gptviz generate CKPT_DIR --prompt TEXT --max-new-tokens N [...] --json`.

With --json it prints exactly `{"prompt_ids": [...], "new_ids": [...], "text": "..."}` where text is the
decoded prompt followed by the continuation. Without --json the text is streamed as it is generated.
The default temperature is 0 (greedy), so the same command prints the same text every time.
"""

from __future__ import annotations

import argparse
import codecs
import json
import sys

from gptviz.commands.inspect import add_ablation_arguments, apply_ablations
from gptviz.errors import ConfigError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", metavar="CKPT_DIR", help="a gptviz checkpoint directory, or 'demo'")
    parser.add_argument("--prompt", required=True, help="text to continue; <|endoftext|> becomes id 50256")
    parser.add_argument(
        "--max-new-tokens", type=int, default=50, metavar="N", help="tokens to add (default 50)"
    )
    parser.add_argument(
        "--temperature",
        type=float,
        default=0.0,
        metavar="F",
        help="0 = greedy (default); higher is more random",
    )
    parser.add_argument(
        "--top-k",
        type=int,
        default=50,
        metavar="N",
        help="draw only from the N most likely tokens (0 = off, default 50)",
    )
    parser.add_argument(
        "--top-p",
        type=float,
        default=1.0,
        metavar="F",
        help="draw only from the smallest set of tokens whose probability reaches F (1 = off)",
    )
    parser.add_argument("--seed", type=int, default=None, metavar="N", help="seed for sampling (T > 0)")
    parser.add_argument("--no-cache", action="store_true", help="recompute the whole context every token")
    parser.add_argument("--no-stop", action="store_true", help="keep going after <|endoftext|>")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N or auto")
    parser.add_argument(
        "--json",
        action="store_true",
        help='print {"prompt_ids": [...], "new_ids": [...], "text": prompt + continuation}',
    )
    add_ablation_arguments(parser)


def resolve_checkpoint(name: str) -> str:
    """'demo' is the checkpoint bundled in resources/; anything else is a path."""
    if name == "demo":
        from gptviz.resources import DEMO_MODEL_DIR

        return str(DEMO_MODEL_DIR)
    return name


def _token_bytes(tokenizer, token_id: int) -> bytes:
    """The token's bytes; an id past the tokenizer's vocabulary (a padded model) is shown as <id>."""
    if token_id < tokenizer.vocab_size:
        return tokenizer.token_bytes(token_id)
    return f"<{token_id}>".encode()


def run(args: argparse.Namespace) -> int:
    if args.max_new_tokens < 0:
        raise ConfigError(f"--max-new-tokens must be >= 0, got {args.max_new_tokens}")
    from gptviz.engine.checkpoint import load_checkpoint
    from gptviz.engine.devices import resolve_device
    from gptviz.engine.generator import Generator
    from gptviz.engine.sampling_settings import SamplingSettings
    from gptviz.tokenizer import default_tokenizer

    settings = SamplingSettings(
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        seed=args.seed,
        stop_at_eot=not args.no_stop,
    )
    tokenizer = default_tokenizer()
    prompt_ids = tokenizer.encode(args.prompt)
    model, _meta = load_checkpoint(resolve_checkpoint(args.checkpoint), resolve_device(args.device))
    apply_ablations(model, args, prompt_ids or [50256])
    generator = Generator(model, tokenizer, prompt_ids, settings, use_cache=not args.no_cache)

    if args.json:
        generator.generate(args.max_new_tokens)
        out = {"prompt_ids": generator.prompt_ids, "new_ids": generator.new_ids, "text": generator.full_text}
        print(json.dumps(out, ensure_ascii=False))
        return 0

    # Stream: tokens are bytes, and one character may span two tokens, so decode incrementally.
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    sys.stdout.write(decoder.decode(b"".join(tokenizer.token_bytes(i) for i in prompt_ids)))
    sys.stdout.flush()
    for _ in range(args.max_new_tokens):
        step = generator.step()
        sys.stdout.write(decoder.decode(_token_bytes(tokenizer, step.chosen_id)))
        sys.stdout.flush()
        if step.stopped:
            break
    sys.stdout.write(decoder.decode(b"", final=True) + "\n")
    return 0
