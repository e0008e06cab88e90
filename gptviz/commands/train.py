"""`gptviz train --corpus (PATH|builtin|the-verdict) --preset NAME --out RUN_DIR [--steps N | --epochs N] ...`.

`gptviz train --recipe book-ch5 --out RUN_DIR` is the book's chapter 5 run (`gptviz.engine.train_settings.BOOK_CH5`);
any option given beside a recipe changes that one setting. Runs the step-wise Trainer in a loop with a
progress line on stderr (under the book's evaluation protocol, also the book's "Ep 1 (Step 000000)" lines). Under `torchrun` it trains with DDP
(one process a rank); rank 0 alone prints and writes the run directory. Ctrl-C (or SIGTERM) finishes the
current step, saves a checkpoint and exits with 130; `--resume` continues from it.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from gptviz.config import PRESETS, GPTConfig, preset
from gptviz.engine.human_units import format_duration
from gptviz.engine.kept_checkpoints import parse_keep
from gptviz.engine.train_settings import RESUME_OVERRIDES, Recipe, TrainSettings
from gptviz.errors import ConfigError

if TYPE_CHECKING:
    from gptviz.engine.distributed import DistInfo
    from gptviz.engine.trainer import Trainer
    from gptviz.tokenizer import Tokenizer

# Options that set a TrainSettings field: {option dest: field}.
SETTING_OPTIONS = {
    "steps": "steps",
    "epochs": "epochs",
    "batch_size": "batch_size",
    "stride": "stride",
    "lr": "lr",
    "weight_decay": "weight_decay",
    "eval_freq": "eval_freq",
    "eval_iter": "eval_iter",
    "val_ratio": "val_ratio",
    "seed": "seed",
    "device": "device",
    "warmup": "warmup_steps",
    "grad_clip": "grad_clip",
    "save_dtype": "save_dtype",
    "context": "context",
    "split": "split",
    "init": "init",
    "decay": "decay",
    "eval_protocol": "eval_protocol",
    "keep_checkpoints": "keep_checkpoints",
}
# Options a resumed run keeps as recorded (with a note when given): the ones that decide which data it sees,
# i.e. every setting outside RESUME_OVERRIDES, and the corpus and model options.
FIXED_ON_RESUME = ("corpus", "preset", "recipe", "lenient", "untied_head") + tuple(
    opt for opt, field in SETTING_OPTIONS.items() if field not in RESUME_OVERRIDES
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--recipe",
        metavar="NAME",
        help="a named run: book-ch5 is the book's chapter 5 run (The Verdict, 124M with an untied head, "
        "10 epochs; every setting below that you give changes that one setting)",
    )
    parser.add_argument(
        "--corpus",
        help='a UTF-8 text file, "builtin" (the Python reference topics) or "the-verdict" (the book\'s '
        "chapter 5 text, bundled)",
    )
    parser.add_argument(
        "--preset", choices=list(PRESETS), help="model size (see `gptviz info --preset NAME`)"
    )
    parser.add_argument("--out", required=True, help="run directory (must be new or empty unless --resume)")
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--steps", type=int, help="optimizer steps to train in all")
    length.add_argument("--epochs", type=int, help="passes over the training windows (default 1)")
    parser.add_argument(
        "--context",
        type=int,
        help="window length in tokens; shorter than the preset's "
        "context builds the model with this context length",
    )
    parser.add_argument("--batch-size", type=int, help="windows per step and process (default 8)")
    parser.add_argument("--stride", type=int, help="tokens between window starts (default: the context)")
    parser.add_argument("--lr", type=float, help="peak learning rate (default 4e-4)")
    parser.add_argument("--weight-decay", type=float, help="AdamW weight decay on matrices (default 0.1)")
    parser.add_argument("--eval-freq", type=int, help="evaluate, probe and save every N steps (default 50)")
    parser.add_argument(
        "--eval-iter", type=int, help="batches per loss estimate at an evaluation (default 5)"
    )
    parser.add_argument("--val-ratio", type=float, help="share of the text kept for validation (default 0.1)")
    parser.add_argument("--seed", type=int, help="seed for weights, batch order and dropout (default 123)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], help="where to train (default auto)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    parser.add_argument("--warmup", type=int, help="linear learning-rate warm-up steps (default 0)")
    parser.add_argument("--cosine", action="store_true", help="cosine decay to lr/10 after the warm-up")
    parser.add_argument("--grad-clip", type=float, help="max gradient norm, 0 for none (default 1.0)")
    parser.add_argument(
        "--untied-head",
        action="store_true",
        help="give the output head its own weights instead of sharing the token embedding's (the book's)",
    )
    parser.add_argument(
        "--split",
        choices=["tokens", "chars"],
        help="cut the token stream (tokens, default) or the characters, tokenizing each part (chars, the "
        "book's)",
    )
    parser.add_argument(
        "--init",
        choices=["gpt2", "book"],
        help="initial weights: GPT-2's N(0, 0.02) (gpt2, default) or PyTorch's defaults drawn in the book's "
        "module order (book: with --seed 123, the book's initial weights)",
    )
    parser.add_argument(
        "--decay",
        choices=["matrices", "all"],
        help="weight decay on matrices only (default) or on every parameter (all, the book's)",
    )
    parser.add_argument(
        "--eval-protocol",
        choices=["fixed", "book"],
        help="fixed (default): the same evenly spread windows at step 1, every --eval-freq steps and the "
        "end; book: the book's loaders and evaluate_model (shuffled batches as its DataLoader draws them, "
        "evaluation after steps 1, 1 + eval-freq, ... over each loader's first --eval-iter batches, "
        "dropout drawn in the book's order)",
    )
    parser.add_argument(
        "--save-dtype",
        choices=["float32", "float16"],
        help="checkpoint weight type (float16 halves the file; resume still continues from fp32)",
    )
    parser.add_argument(
        "--keep-checkpoints",
        type=_keep_count,
        metavar="N|all",
        help="also keep each evaluation's weights under OUT/checkpoints/step-NNNNNN/ (in --save-dtype), the "
        "newest N of them or all; the window's Checkpoints tab scrubs through them (0: none)",
    )
    parser.add_argument(
        "--lenient", action="store_true", help="read a corpus that is not valid UTF-8, replacing bad bytes"
    )
    parser.add_argument(
        "--no-diagnostics",
        dest="no_diagnostics",
        action="store_true",
        help="leave out each part's update ratio |dw|/|w| from the metrics (it keeps a copy of the weights "
        "from before each step); gradient norms per part are always recorded",
    )
    parser.add_argument(
        "--tensorboard",
        metavar="DIR",
        help="also write the scalars (losses, lr, gradient norms and update ratios per part) to a TensorBoard "
        "log in DIR; needs pip install 'gptviz[tensorboard]'",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress output")


def _keep_count(text: str) -> int:
    try:
        return parse_keep(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _given(args: argparse.Namespace, name: str) -> bool:
    value = getattr(args, name, None)
    return value is not None and value is not False


def _settings_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The TrainSettings fields the command line gives (the rest keep their defaults, or the recipe's)."""
    kwargs = {field: getattr(args, opt) for opt, field in SETTING_OPTIONS.items() if _given(args, opt)}
    if args.cosine:
        kwargs["cosine"] = True
    if getattr(args, "no_diagnostics", False):
        kwargs["diagnostics"] = False
    if _given(args, "steps"):
        kwargs.pop("epochs", None)
    return kwargs


class Progress:
    """A one-line bar redrawn with \\r on a terminal; one line per evaluation when stderr is a file or pipe."""

    def __init__(self, stream: TextIO, quiet: bool = False, book_lines: bool = False) -> None:
        self.stream = stream
        self.quiet = quiet
        self.book_lines = book_lines  # also print each evaluation as the book does
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self._last_draw = 0.0
        self._val: float | None = None

    def message(self, text: str) -> None:
        if not self.quiet:
            self._clear()
            print(text, file=self.stream, flush=True)

    def _clear(self) -> None:
        if self.tty and self._last_draw:
            self.stream.write("\r\033[K")

    def update(self, result: Any) -> None:
        if self.quiet:
            return
        if result.val_loss is not None:
            self._val = result.val_loss
        if self.book_lines and result.train_eval_loss is not None:
            val = result.val_loss if result.val_loss is not None else math.nan
            self.message(
                f"Ep {result.epoch + 1} (Step {result.step - 1:06d}): "
                f"Train loss {result.train_eval_loss:.3f}, Val loss {val:.3f}"
            )
        fraction = result.step / max(1, result.total_steps)
        val = f" val {self._val:.3f}" if self._val is not None else ""
        text = (
            f"step {result.step}/{result.total_steps} loss {result.train_loss:.3f}{val} "
            f"{result.tokens_per_s:,.0f} tok/s ETA {format_duration(result.eta_s, 'short', unknown='?')}"
        )
        if self.tty:
            now = time.monotonic()
            if now - self._last_draw < 0.1 and not result.done and result.val_loss is None:
                return
            self._last_draw = now
            filled = int(round(20 * fraction))
            bar = "#" * filled + "." * (20 - filled)
            self.stream.write(f"\r\033[K[{bar}] {fraction:4.0%} {text}")
            if result.done:
                self.stream.write("\n")
            self.stream.flush()
        elif result.val_loss is not None or result.train_eval_loss is not None or result.done:
            print(f"{fraction:4.0%} {text}", file=self.stream, flush=True)


class StopRequest:
    """First Ctrl-C / SIGTERM: finish the step, save, exit 130. A second Ctrl-C interrupts at once."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(ValueError):  # not the main thread (e.g. a test runner thread)
                self._previous[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()


def run(args: argparse.Namespace) -> int:
    from gptviz.engine.distributed import init_distributed, shutdown
    from gptviz.tokenizer import default_tokenizer

    out = Path(args.out)
    stop = StopRequest()
    tensorboard = None  # gptviz.engine.tensorboard_log.TensorBoardLog with --tensorboard
    info = init_distributed(args.device or "auto")
    progress = Progress(sys.stderr, quiet=args.quiet or not info.is_main)
    try:
        tokenizer = default_tokenizer()
        if args.resume:
            trainer = _resumed_trainer(args, out, tokenizer, info, progress)
        else:
            trainer = _fresh_trainer(args, out, tokenizer, info, progress)
        progress.book_lines = trainer.book_protocol
        progress.message(_start_line(trainer))
        if args.tensorboard and info.is_main:
            from gptviz.engine.tensorboard_log import TensorBoardLog

            tensorboard = TensorBoardLog(args.tensorboard)
        stop.install()
        return _train(trainer, out, info, progress, tensorboard, stop)
    finally:
        if tensorboard is not None:
            tensorboard.close()
        stop.restore()
        shutdown(info)


def _resumed_trainer(
    args: argparse.Namespace, out: Path, tokenizer: Tokenizer, info: DistInfo, progress: Progress
) -> Trainer:
    """The run in OUT, continued with the options a resume may change; a note names the ones it ignores."""
    from gptviz.engine.trainer import Trainer

    ignored = [f"--{name.replace('_', '-')}" for name in FIXED_ON_RESUME if _given(args, name)]
    if ignored:
        progress.message(
            f"gptviz train: note: {', '.join(ignored)} ignored on --resume (the run keeps "
            "its recorded corpus and data settings)"
        )
    overrides = {k: v for k, v in _settings_kwargs(args).items() if k in RESUME_OVERRIDES}
    trainer = Trainer.resume(out, tokenizer=tokenizer, dist_info=info, **overrides)
    progress.message(f"resuming {out} at step {trainer.step_count} of {trainer.total_steps}")
    return trainer


def _fresh_trainer(
    args: argparse.Namespace, out: Path, tokenizer: Tokenizer, info: DistInfo, progress: Progress
) -> Trainer:
    """A new run in OUT: settings and model shape from the options (over a recipe's), checked to fit before
    the corpus is read, then a freshly initialised model."""
    import torch

    from gptviz.data import BUILTIN, VERDICT, read_split_ids
    from gptviz.engine.devices import process_device
    from gptviz.engine.distributed import barrier
    from gptviz.engine.memory import check_fits
    from gptviz.engine.rundir import ensure_fresh_run_dir
    from gptviz.engine.train_settings import recipe
    from gptviz.engine.trainer import Trainer
    from gptviz.model.gpt import GPTModel

    base = recipe(args.recipe) if args.recipe else None
    corpus_source = args.corpus or (base.corpus if base else None)
    preset_name = args.preset or (base.preset if base else None)
    if not corpus_source or not preset_name:
        raise ConfigError("--corpus and --preset are needed to start a run (or pass --recipe, or --resume)")
    ensure_fresh_run_dir(out)
    barrier(info)  # every rank has looked before rank 0 writes anything
    settings, cfg = _settings_and_model(args, base, preset_name)
    # Refuse a model that cannot fit before reading the corpus or allocating anything.
    device = process_device(settings.device, info)
    check_fits(
        cfg, training=True, batch_size=settings.batch_size, context=settings.context_for(cfg), device=device
    )
    corpus = read_split_ids(
        corpus_source, tokenizer, settings.val_ratio, settings.split, lenient=args.lenient
    )
    if corpus.replacements:
        progress.message(f"gptviz train: note: {corpus.replacements} undecodable bytes replaced")
    torch.manual_seed(settings.seed)
    model = GPTModel(cfg)  # with --init book the trainer re-draws the book's weights from the seed
    named = corpus_source in (BUILTIN, VERDICT)
    source = corpus_source if named else str(Path(corpus_source).resolve())
    return Trainer(
        model,
        tokenizer,
        corpus.train,  # (N_train,)
        corpus.val,  # (N_val,)
        settings,
        out,
        corpus={"source": source, "name": corpus.name, "lenient": bool(args.lenient)},
        dist_info=info,
    )


def _settings_and_model(
    args: argparse.Namespace, base: Recipe | None, preset_name: str
) -> tuple[TrainSettings, GPTConfig]:
    """The training settings and model shape the options ask for, each option over the recipe's value."""
    if base is not None:
        settings = base.settings(**_settings_kwargs(args))
        cfg = preset(preset_name).replace(**base.model)
    else:
        settings = TrainSettings(**_settings_kwargs(args))
        cfg = preset(preset_name)
    if args.untied_head:
        cfg = cfg.replace(tie_weights=False)
    if args.context is not None:
        longest = preset(preset_name).context_length
        if args.context > longest:
            raise ConfigError(
                f"--context {args.context} is longer than the {preset_name} preset's context length {longest}"
            )
        if args.context <= 0:
            raise ConfigError(f"--context must be a positive integer, got {args.context}")
        cfg = cfg.replace(context_length=args.context)
    return settings, cfg


def _start_line(trainer: Trainer) -> str:
    summary = trainer.model_summary()
    return (
        f"training {trainer.cfg.name} ({summary['params']:,} parameters, context {summary['context']}) on "
        f"{summary['train_tokens']:,} tokens ({summary['train_windows']:,} windows, "
        f"{summary['val_tokens']:,} held out) for {summary['total_steps']:,} steps, batch "
        f"{trainer.settings.batch_size} x {summary['world_size']} process(es), {summary['device']}"
    )


def _train(
    trainer: Trainer, out: Path, info: DistInfo, progress: Progress, tensorboard: Any, stop: StopRequest
) -> int:
    """Step to the end (0), or until a stop request, after which the step is saved (130)."""
    from gptviz.engine.distributed import any_rank

    first = trainer.start()  # step 0, the untrained model (None on --resume)
    if tensorboard is not None and first is not None:
        tensorboard.write(first)
    while not trainer.done:
        result = trainer.step()
        progress.update(result)
        if tensorboard is not None:
            tensorboard.write(result)
        if any_rank(stop.requested, info, trainer.device):
            trainer.save()
            trainer.close()
            progress.message(
                f"gptviz train: interrupted at step {trainer.step_count}; checkpoint saved to "
                f"{out / 'checkpoint'}; continue with --resume"
            )
            return 130
    trainer.close()
    if info.is_main:
        val = f", val loss {trainer.last_val_loss:.4f}" if trainer.last_val_loss is not None else ""
        train = f"train loss {trainer.last_train_loss:.4f}" if trainer.last_train_loss is not None else ""
        print(f"done: step {trainer.step_count}, {train}{val}; checkpoint {out / 'checkpoint'}")
    return 0
