"""Training: our `Trainer.step()` against a loop written the book's way (ch. 5 `train_model_simple`).

The book's loop body is `optimizer.zero_grad(); loss = calc_loss_batch(...); loss.backward();
optimizer.step()` with the ch. 4 model (separate Q/K/V projections, written-out LayerNorm and GELU, an untied
output head) and `torch.optim.AdamW(model.parameters(), lr=0.0004, weight_decay=0.1)`. Both sides start from
the same weights and train on the same batches (the trainer's own batch order), interleaved step block by
step block. Evaluation, probes and checkpoints happen only on our warm-up step, so the timed steps compare
the training work alone (ours still clips gradients and reads the loss, which the book's loop does not).

Model FLOPs utilisation uses the PaLM estimate of 6N + 12·L·T·D FLOPs a token (N: parameters without the
position table, which is a lookup, not a product) over fp32 matmul FLOP/s measured in the same process.

On a GPU (`device="cuda"`) ours trains as `gptviz train` would there: torch.autocast in bfloat16
(`TrainSettings.amp`), the fused AdamW kernel and F.scaled_dot_product_attention; the book's loop runs as
written (float32, explicit attention, the default AdamW). The ceiling for MFU is then a large bfloat16 matrix
product timed in the same rounds, and every timed call ends with torch.cuda.synchronize.
"""

from __future__ import annotations

import gc
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import cast

import torch
import torch.nn.functional as F

from gptviz.bench.harness import BenchResult, Figure, Stats, at_least, device_sync, interleave
from gptviz.bench.models import make_pair
from gptviz.config import GPTConfig, preset
from gptviz.data import BUILTIN, encode_corpus, load_corpus, split_ids
from gptviz.engine.train_settings import TrainSettings
from gptviz.engine.trainer import Trainer
from gptviz.tokenizer import default_tokenizer

SPEEDUP_TARGET = 1.3
DIAGNOSTICS_OVERHEAD_TARGET = 5.0  # %, per-part gradient norms and update ratios at 124M (issue 12)
MFU_TARGET = 0.60
CUDA_MFU_TARGET = 0.40  # bf16 on a GPU, against the measured bf16 matmul rate (issue 14)
MATMUL_SIZE = 1024
MATMUL_REPEATS = (
    20  # about 0.4 s of products at 100 GFLOP/s: one burst a round, next to the steps it measures
)
CUDA_MATMUL_SIZE = 8192  # bf16 products of 8192² matrices: about 1.4 ms each at 800 TFLOP/s
CUDA_MATMUL_REPEATS = 50
COMPILE_CASE_LIMIT_S = 150  # the torch.compile case gives up (and says so) rather than eat a GPU lease


@dataclass(frozen=True)
class TrainCase:
    cfg: GPTConfig
    batch_size: int
    steps_per_round: int
    repeats: int
    amp: str = "off"  # TrainSettings.amp for ours ("bf16" on a GPU)
    compile: bool = False  # bench only: ours trains through torch.compile(model)


@dataclass(frozen=True)
class TrainingSizes:
    cases: tuple[TrainCase, ...]  # the first is the headline


FULL = TrainingSizes(
    (
        # 4 rounds: ours and ours-without-diagnostics meet in both orders equally often (interleave alternates)
        TrainCase(preset("124M").replace(context_length=256), batch_size=2, steps_per_round=1, repeats=4),
        TrainCase(preset("tiny"), batch_size=8, steps_per_round=4, repeats=3),
    )
)
QUICK = TrainingSizes((TrainCase(preset("tiny"), batch_size=4, steps_per_round=2, repeats=2),))
_GPU_124M = preset("124M").replace(context_length=1024)
CUDA_FULL = TrainingSizes(
    (
        TrainCase(_GPU_124M, batch_size=16, steps_per_round=4, repeats=5, amp="bf16"),
        TrainCase(_GPU_124M, batch_size=16, steps_per_round=4, repeats=3, amp="bf16", compile=True),
    )
)
CUDA_QUICK = TrainingSizes((TrainCase(_GPU_124M, batch_size=4, steps_per_round=1, repeats=2, amp="bf16"),))


def calc_loss_batch(
    input_batch: torch.Tensor, target_batch: torch.Tensor, model: torch.nn.Module, device: torch.device
) -> torch.Tensor:
    """The book's ch. 5 loss of one batch."""
    input_batch, target_batch = input_batch.to(device), target_batch.to(device)  # (B, T), (B, T)
    logits = model(input_batch)  # (B, T, V)
    return F.cross_entropy(logits.flatten(0, 1), target_batch.flatten())  # ()


def book_train_steps(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    batches: list[tuple[torch.Tensor, torch.Tensor]],
    device: torch.device,
) -> list[torch.Tensor]:
    """The body of the book's `train_model_simple` over `batches`; returns each step's loss (detached)."""
    losses = []
    model.train()
    for input_batch, target_batch in batches:
        optimizer.zero_grad()
        loss = calc_loss_batch(input_batch, target_batch, model, device)
        loss.backward()
        optimizer.step()
        losses.append(loss.detach())  # () kept as a tensor: the book's loop never reads it back
    return losses


def flops_per_token(cfg: GPTConfig, context: int, params: int) -> float:
    """6N + 12 L T D: forward and backward matmuls of the weights plus attention's QK^T and AV."""
    n = params - cfg.context_length * cfg.emb_dim  # the position table is looked up, not multiplied
    return 6.0 * n + 12.0 * cfg.n_layers * context * cfg.emb_dim


@dataclass
class CaseResult:
    case: TrainCase
    ours: Stats  # tokens/s
    book: Stats  # tokens/s
    flops_token: float
    first_losses: tuple[float, float]
    matmul: Stats  # FLOP/s of 1024² fp32 products (8192² bf16 on a GPU), one burst a round
    mfu_ours: Stats  # %
    mfu_book: Stats  # %
    mfu_ours_6n: Stats  # %, counting 6N FLOPs a token only (no attention products)
    first_round_s: float  # ours' untimed first round (kernel choice; torch.compile's compile time)
    # %, per round: a step that measures the update ratios over one without, divided by how many steps the
    # trainer lets pass between measurements (PartNorms.period): what a user pays on average
    diagnostics_overhead: Stats | None = None
    measuring_step_overhead: Stats | None = None  # %, per round: a measuring step over one without, − 1
    ratio_period: int = 1  # the trainer measures the ratios every this many steps at this size


def _corpus_ids() -> tuple[torch.Tensor, torch.Tensor]:
    tokenizer = default_tokenizer()
    ids = encode_corpus(tokenizer, load_corpus(BUILTIN).text)  # (N,)
    return split_ids(ids, 0.1)


def run_case(
    case: TrainCase, train_ids: torch.Tensor, val_ids: torch.Tensor, device: str = "cpu"
) -> CaseResult:
    cfg = case.cfg
    ours_model, book_model = make_pair(cfg)
    settings = TrainSettings(
        lr=4e-4,
        weight_decay=0.1,
        batch_size=case.batch_size,
        context=cfg.context_length,
        steps=10**6,
        eval_freq=10**6,
        eval_iter=1,
        probe_tokens=0,
        device=device,
        seed=123,
        amp=case.amp,
    )
    trainer = Trainer(ours_model, None, train_ids, val_ids, settings)
    if case.compile:
        # step() trains through train_model; compiling a Module gives an OptimizedModule (a Module), which
        # torch.compile's annotation widens to any callable
        trainer.train_model = cast(torch.nn.Module, torch.compile(trainer.model))
    book_model = book_model.to(device)
    book_model.train()
    k = case.steps_per_round
    needed = (1 + case.repeats) * k
    batches = [trainer.batches.for_step(i) for i in range(needed)]  # the same batches, in the same order
    book_opt = torch.optim.AdamW(book_model.parameters(), lr=0.0004, weight_decay=0.1)
    position = {"book": 0}
    first: dict[str, float] = {}

    def ours() -> None:
        for _ in range(k):
            result = trainer.step()
            first.setdefault("ours", result.train_loss)

    def plain() -> None:
        """Ours without the update ratios (TrainSettings.diagnostics False)."""
        trainer.settings = trainer.settings.replace(diagnostics=False)
        try:
            for _ in range(k):
                trainer.step()
        finally:
            trainer.settings = trainer.settings.replace(diagnostics=True)

    def measuring() -> None:
        """Ours measuring the update ratios on every step (the trainer does so every `period` steps)."""
        trainer.parts.every_step = True
        try:
            for _ in range(k):
                measured = trainer.step().update_ratios  # the step runs outside the assert (python -O)
                assert measured is not None
        finally:
            trainer.parts.every_step = False

    def book() -> None:
        start = position["book"]
        losses = book_train_steps(book_model, book_opt, batches[start : start + k], torch.device(device))
        first.setdefault("book", float(losses[0]))
        position["book"] = start + k

    matmul, matmul_flops = matmul_burst(device)
    sync = device_sync(device)
    tokens = k * case.batch_size * cfg.context_length
    # One untimed round first (interleave's warm-up, written out to time ours': torch.compile compiles here).
    first_round = interleave({"ours": ours}, 1, warmup=0, sync=sync)["ours"][0]
    book()
    matmul()
    plain()
    measuring()
    # The diagnostics' cost, as a step that measures the update ratios against one that does not, the two
    # beside each other (plain between ours and measuring, both orders). It used to be ours against plain,
    # plain last in a round: ours measured the ratios on at most one of its three timed steps (the trainer
    # does every few steps), so the figure was two equal steps' difference, 1-3.5 % alone and 14-15 % in full
    # runs, where ours followed the book's step (its 2 GB of model and AdamW state) every other round.
    timed = {"ours": ours, "plain": plain, "measuring": measuring} if not case.compile else {"ours": ours}
    timed |= {"book": book, "matmul": matmul}
    times = interleave(timed, case.repeats, warmup=0, sync=sync)
    overhead = measuring_step = None
    period = 1
    if "plain" in times:
        pairs = zip(times["measuring"], times["plain"], strict=True)
        measuring_step = Stats.of([100.0 * (on / off - 1.0) for on, off in pairs])  # % per round
        period = trainer.parts.period(Stats.of(times["plain"]).median / k)
        overhead = measuring_step.map(lambda pct: pct / period)
    matmul_rate = Stats.of(times["matmul"]).map(lambda s: matmul_flops / s)
    flops_token = flops_per_token(cfg, cfg.context_length, ours_model.num_parameters())
    flops_6n = flops_token - 12.0 * cfg.n_layers * cfg.context_length * cfg.emb_dim
    ours_rate = Stats.of(times["ours"]).map(lambda s: tokens / s)
    book_rate = Stats.of(times["book"]).map(lambda s: tokens / s)
    # MFU per round: each round's tokens/s over the matmul rate measured in that same round.
    rounds = zip(ours_rate.values, book_rate.values, matmul_rate.values, strict=True)
    mfu_triples = [(o * flops_token / m, b_ * flops_token / m, o * flops_6n / m) for o, b_, m in rounds]
    return CaseResult(
        case,
        ours_rate,
        book_rate,
        flops_token,
        (first["ours"], first["book"]),
        matmul_rate,
        Stats.of([100 * p[0] for p in mfu_triples]),
        Stats.of([100 * p[1] for p in mfu_triples]),
        Stats.of([100 * p[2] for p in mfu_triples]),
        first_round,
        overhead,
        measuring_step,
        period,
    )


def matmul_burst(device: str = "cpu") -> tuple[Callable[[], None], float]:
    """A burst of square products and its FLOPs: fp32 1024² on a CPU, bf16 8192² on a GPU (the ceiling)."""
    on_gpu = torch.device(device).type == "cuda"
    size = CUDA_MATMUL_SIZE if on_gpu else MATMUL_SIZE
    repeats = CUDA_MATMUL_REPEATS if on_gpu else MATMUL_REPEATS
    dtype = torch.bfloat16 if on_gpu else torch.float32
    a = torch.randn(size, size, device=device, dtype=dtype)  # (n, n)
    b = torch.randn(size, size, device=device, dtype=dtype)  # (n, n)
    out = torch.empty(size, size, device=device, dtype=dtype)  # (n, n)

    def burst() -> None:
        for _ in range(repeats):
            torch.mm(a, b, out=out)  # (n, n)

    return burst, repeats * 2.0 * size**3


def run(sizes: TrainingSizes = FULL, device: str = "cpu") -> BenchResult:
    started = time.perf_counter()
    on_gpu = torch.device(device).type == "cuda"
    train_ids, val_ids = _corpus_ids()
    cases: list[CaseResult] = []
    failed: list[str] = []
    for case in sizes.cases:
        try:
            with _time_limit(COMPILE_CASE_LIMIT_S if case.compile else None):
                cases.append(run_case(case, train_ids, val_ids, device))
        except Exception as exc:  # noqa: BLE001 - only the torch.compile variant may fail, and says why
            if not case.compile:
                raise
            first_line = (str(exc).strip().splitlines() or [""])[0][:300]
            failed.append(f"{_label(case)} failed: {type(exc).__name__}: {first_line}")
        if on_gpu:
            gc.collect()
            torch.cuda.empty_cache()
    peak = Stats.of([v for c in cases for v in c.matmul.values])
    head = cases[0]
    ratio = head.ours.median / head.book.median
    # Targets are judged at the sizes they are stated for (the full run's); quick sizes only report.
    judged = head.case in (CUDA_FULL if on_gpu else FULL).cases
    mfu_target = CUDA_MFU_TARGET if on_gpu else MFU_TARGET
    figures: list[Figure] = []
    for i, c in enumerate(cases):
        label = _label(c.case)
        mfu, book_mfu = c.mfu_ours, c.mfu_book  # %
        if i > 0:
            r = c.ours.median / c.book.median
            figures.append(Figure(f"{label}: ours", c.ours.median, "tokens/s", c.ours))
            figures.append(Figure(f"{label}: book", c.book.median, "tokens/s", c.book))
            figures.append(
                Figure(
                    f"{label}: ratio", r, "x", None, f">= {SPEEDUP_TARGET:g}x", at_least(r, SPEEDUP_TARGET)
                )
            )
        headline = i == 0 and judged  # the MFU target applies to the full run's headline size
        figures.append(
            Figure(
                f"{label}: MFU ours",
                mfu.median,
                "%",
                mfu,
                f">= {100 * mfu_target:g}%" if headline else "",
                at_least(mfu.median, 100 * mfu_target) if headline else None,
            )
        )
        if on_gpu:
            figures.append(Figure(f"{label}: MFU ours, 6N only", c.mfu_ours_6n.median, "%", c.mfu_ours_6n))
            figures.append(Figure(f"{label}: ours' first round (untimed)", c.first_round_s, "s"))
        figures.append(Figure(f"{label}: MFU book", book_mfu.median, "%", book_mfu))
        if c.diagnostics_overhead is not None and c.measuring_step_overhead is not None:
            cost = c.diagnostics_overhead
            figures.append(
                Figure(
                    f"{label}: a step measuring the update ratios against one without",
                    c.measuring_step_overhead.median,
                    "%",
                    c.measuring_step_overhead,
                )
            )
            figures.append(
                Figure(
                    f"{label}: diagnostics overhead (that, as the trainer measures every {c.ratio_period} "
                    "step(s))",
                    cost.median,
                    "%",
                    cost,
                    f"<= {DIAGNOSTICS_OVERHEAD_TARGET:g}%" if headline else "",
                    cost.median <= DIAGNOSTICS_OVERHEAD_TARGET if headline else None,
                )
            )
    figures.append(
        Figure(
            f"bf16 matmul {CUDA_MATMUL_SIZE}² (interleaved bursts)"
            if on_gpu
            else "fp32 matmul 1024² (interleaved bursts)",
            peak.median / (1e12 if on_gpu else 1e9),
            "TFLOP/s" if on_gpu else "GFLOP/s",
            peak.map(lambda v: v / (1e12 if on_gpu else 1e9)),
        )
    )
    setup_lines = [
        f"{_label(c.case)}: {c.case.repeats} interleaved rounds of {c.case.steps_per_round} optimizer step(s) "
        f"each after one warm-up round; first-batch loss ours {c.first_losses[0]:.4f}, "
        f"book {c.first_losses[1]:.4f} (same weights and batch; dropout draws differ)"
        for c in cases
    ]
    where = ""
    if on_gpu:
        where = (
            f"On {torch.cuda.get_device_name()}: ours with torch.autocast bf16, fused AdamW and "
            "F.scaled_dot_product_attention; the book's loop as written (float32). "
        )
    mfu_note = (
        "MFU = (6N + 12·L·T·D) × tokens/s ÷ fp32 matmul FLOP/s, per round: each round also times 20 "
        "products of 1024×1024 matrices, so the denominator sees the same machine load as the steps."
    )
    if on_gpu:
        mfu_note = (
            "MFU = (6N + 12·L·T·D) × tokens/s ÷ the bf16 matmul FLOP/s measured in the same round "
            f"({CUDA_MATMUL_REPEATS} products of {CUDA_MATMUL_SIZE}² bf16 matrices), N without the position "
            "table. 12·L·T·D counts the attention products QK^T and AV in full (PaLM's convention), though "
            "the causal kernel skips about half of them; the '6N only' row leaves them out."
        )
    return BenchResult(
        name="training",
        ours=head.ours.median,
        baseline=head.book.median,
        unit="tokens/s",
        ratio=ratio,
        target=f">= {SPEEDUP_TARGET:g}x" + ("" if judged else " (at the full sizes)"),
        passed=at_least(ratio, SPEEDUP_TARGET) if judged else None,
        ours_label=f"ours: Trainer.step(), {_label(head.case)}",
        baseline_label=f"book: train_model_simple loop, {_label(head.case)}",
        ours_stats=head.ours,
        baseline_stats=head.book,
        figures=figures,
        setup=where + "Built-in corpus, lr 4e-4, weight decay 0.1, seed 123. " + "; ".join(setup_lines) + ".",
        notes=[mfu_note, *failed],
        details={
            "first_losses": {
                _label(c.case): {"ours": c.first_losses[0], "book": c.first_losses[1]} for c in cases
            },
            "flops_per_token": {_label(c.case): c.flops_token for c in cases},
            "matmul_flops": peak.median,
            "device": device,
            "mfu_ours": {_label(c.case): c.mfu_ours.median for c in cases},
            "first_round_s": {_label(c.case): c.first_round_s for c in cases},
            "diagnostics_overhead_pct": {
                _label(c.case): c.diagnostics_overhead.median for c in cases if c.diagnostics_overhead
            },
            "measuring_step_overhead_pct": {
                _label(c.case): c.measuring_step_overhead.median for c in cases if c.measuring_step_overhead
            },
            "update_ratio_period": {_label(c.case): c.ratio_period for c in cases},
            "failed": failed,
        },
        seconds=time.perf_counter() - started,
    )


@contextmanager
def _time_limit(seconds: float | None) -> Iterator[None]:
    """Raise TimeoutError inside the block after `seconds` (main thread on Unix only; elsewhere no limit)."""
    usable = hasattr(signal, "SIGALRM") and threading.current_thread() is threading.main_thread()
    if seconds is None or not usable:
        yield
        return

    def expire(_signum: int, _frame: object) -> None:
        raise TimeoutError(f"took longer than {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _label(case: TrainCase) -> str:
    extra = (f", {case.amp}" if case.amp != "off" else "") + (", torch.compile" if case.compile else "")
    return f"{case.cfg.name} ctx {case.cfg.context_length} batch {case.batch_size}{extra}"
