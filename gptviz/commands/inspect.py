"""`gptviz inspect CKPT_DIR --prompt TEXT --out FILE.npz`: one forward pass, every tap a view needs, saved.

The .npz holds exactly:
  token_ids  (T,)          int64    the prompt's tokens (the last context_length of them)
  logits     (T, V)        float32
  attention  (L, H, T, T)  float32  weights after softmax, row = query, column = key
  hidden     (L+1, T, D)   float32  the residual stream: embeddings, then after each block (before final norm)
CKPT_DIR may be `demo` for the bundled demo model, or any source `gptviz import` reads.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from gptviz.engine.atomic import staged_file
from gptviz.errors import GptvizError, WeightsError

if TYPE_CHECKING:
    from gptviz.model.gpt import GPTModel


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "checkpoint", metavar="CKPT_DIR", help="a gptviz checkpoint directory, `demo`, or GPT-2 weights"
    )
    parser.add_argument("--prompt", required=True, metavar="TEXT", help="the text to run through the model")
    parser.add_argument(
        "--out", required=True, metavar="FILE.npz", help="the .npz file to write (replaced atomically)"
    )
    parser.add_argument(
        "--heads", type=int, default=None, metavar="N", help="attention heads, if the source cannot say"
    )
    add_ablation_arguments(parser)


def add_ablation_arguments(parser: argparse.ArgumentParser) -> None:
    """--ablate and --ablate-mode, shared by inspect and generate."""
    parser.add_argument(
        "--ablate",
        metavar="SPEC",
        default=None,
        help="switch parts off: L.H (head H of layer L), L.attn, L.mlp, L.mlp.N (neuron N), comma-separated",
    )
    parser.add_argument(
        "--ablate-mode",
        choices=("zero", "mean"),
        default="zero",
        help="zero (default), or the part's mean over the prompt's positions",
    )


def apply_ablations(model: GPTModel, args: argparse.Namespace, prompt_ids: list[int]) -> None:
    """Switch off what --ablate names (means over the prompt for --ablate-mode mean); nothing without it."""
    if not args.ablate:
        return
    from gptviz.engine import ablation
    from gptviz.engine.ablation_spec import parse_ablations

    parts = parse_ablations(args.ablate, args.ablate_mode)
    ablation.check(model, parts)
    ablation.install(model, parts, ablation.reference_means(model, prompt_ids, parts))


def resolve_model_source(name: str) -> Path:
    """`demo` means the bundled demo checkpoint; anything else is a path."""
    if name == "demo":
        from gptviz.resources import DEMO_MODEL_DIR

        if not DEMO_MODEL_DIR.is_dir():
            raise WeightsError(f"the demo model is not installed (expected {DEMO_MODEL_DIR})")
        return DEMO_MODEL_DIR
    return Path(name)


def inspect_arrays(model: GPTModel, token_ids: list[int]) -> dict[str, np.ndarray]:
    """Run the model once in eval mode and return the four arrays of the .npz contract."""
    from gptviz.model import capture

    cfg = model.cfg
    names = ["hook_embed"]
    names += [f"blocks.{i}.attn.hook_weights" for i in range(cfg.n_layers)]
    names += [f"blocks.{i}.hook_resid_post" for i in range(cfg.n_layers)]
    model.eval()
    idx = torch.tensor([token_ids], dtype=torch.long)  # (1, T)
    with torch.no_grad(), capture(model, names) as taps:
        logits = model(idx)  # (1, T, V)
    attention = torch.stack(
        [taps[f"blocks.{i}.attn.hook_weights"][0] for i in range(cfg.n_layers)]
    )  # (L, H, T, T)
    resid = [taps["hook_embed"][0]] + [taps[f"blocks.{i}.hook_resid_post"][0] for i in range(cfg.n_layers)]
    hidden = torch.stack(resid)  # (L+1, T, D)
    return {
        "token_ids": np.asarray(token_ids, dtype=np.int64),  # (T,)
        "logits": logits[0].float().cpu().numpy(),  # (T, V)
        "attention": attention.float().cpu().numpy(),  # (L, H, T, T)
        "hidden": hidden.float().cpu().numpy(),  # (L+1, T, D)
    }


def write_npz_atomically(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write beside `path`, then rename (gptviz.engine.atomic): a reader never sees half a file."""
    with staged_file(path) as staging, open(staging, "wb") as handle:
        np.savez(handle, allow_pickle=False, **arrays)  # numbers only: nothing to pickle


def run(args: argparse.Namespace) -> int:
    from gptviz.engine.importers import import_weights
    from gptviz.tokenizer import default_tokenizer

    if args.prompt == "":
        raise GptvizError("the prompt is empty; give some text with --prompt")
    source = resolve_model_source(args.checkpoint)
    notes: list[str] = []
    model = import_weights(source, args.heads, warnings=notes)
    for note in notes:
        print(f"gptviz inspect: warning: {note}", file=sys.stderr)
    ids = default_tokenizer().encode(args.prompt)
    if not ids:
        raise GptvizError("the prompt has no tokens")
    too_big = [i for i in ids if i >= model.cfg.vocab_size]
    if too_big:
        raise GptvizError(
            f"token id {too_big[0]} is outside the model's vocabulary of {model.cfg.vocab_size}; "
            "this model was not trained with the GPT-2 tokenizer"
        )
    ctx = model.cfg.context_length
    if len(ids) > ctx:
        print(
            f"gptviz inspect: note: the prompt has {len(ids)} tokens; kept the last {ctx} "
            f"(context length), cropped {len(ids) - ctx}",
            file=sys.stderr,
        )
        ids = ids[-ctx:]
    apply_ablations(model, args, ids)
    arrays = inspect_arrays(model, ids)
    out = Path(args.out)
    write_npz_atomically(out, arrays)
    L, H, T, _ = arrays["attention"].shape
    print(
        f"wrote {out}: {T} tokens, {L} layers x {H} heads, width {model.cfg.emb_dim}, vocab {model.cfg.vocab_size}"
    )
    return 0
