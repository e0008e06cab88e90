"""Step: what one generation step costs with every pane following it, in the real window, against the
KV-cached `Generator.step` alone.

"ours" is the time from a Step request (the same `gen_step` command the Step button sends) until every pane
holds the new token: the Generation pane shows it, and the Attention and Activations panes hold a snapshot
that ends with it. "baseline" is one `Generator.step()` of a second generator over the same weights and the
same context length, run in this thread while the window is idle, interleaved with ours (A B A B ...), so
both see the same machine. Before the live inspection (gptviz.engine.live_inspection) the panes re-ran the
whole context with every tap after each step: 25-150x the step at 124M.

Play: tokens per second with every pane live (the worker inspects every token, the window draws at ~30 Hz),
from the first generated token to the last, against `Generator.generate` alone over the same range.

Memory: what the panes keep at the end: every buffer under the snapshot both panes share, counted whole
(the live inspection sizes them for the context), plus the arrays the panes hold for drawing.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from gptviz.bench.harness import BenchResult, Figure, Stats, at_least, at_most
from gptviz.config import GPTConfig, preset

RATIO_TARGET = 1.5
PLAY_TARGET = 0.6
MEMORY_TARGET_MIB = 150.0


@dataclass(frozen=True)
class StepSizes:
    cfg: GPTConfig
    context_tokens: int  # prompt length before the timed steps
    steps: int  # timed steps (median)
    play_tokens: int  # Play from a one-token prompt for this many tokens (0: skip)
    judged: bool  # the targets are stated for 124M at 1,000 tokens


FULL = StepSizes(preset("124M"), context_tokens=1000, steps=12, play_tokens=1000, judged=True)
JUDGED_QUICK = dataclasses.replace(FULL, steps=6)  # --judged-quick: the judged context, fewer steps
QUICK = StepSizes(
    GPTConfig(context_length=256, emb_dim=128, n_heads=4, n_layers=4, drop_rate=0.0, name="bench-small"),
    context_tokens=200,
    steps=6,
    play_tokens=100,
    judged=False,
)


def _root(array: np.ndarray) -> np.ndarray:
    """The array that owns the memory under a view."""
    while isinstance(array.base, np.ndarray):
        array = array.base
    return array


def held_nbytes(snapshot: Any, window: Any) -> int:
    """Bytes the Attention and Activations panes keep: each buffer under the snapshot's arrays once, whole
    (a live snapshot's arrays are views into buffers sized for the context, and those count in full), plus
    the arrays the panes hold for drawing that are not views of them."""
    from dataclasses import fields

    arrays = [getattr(snapshot, f.name) for f in fields(snapshot)]
    maps = snapshot.attention
    arrays += [maps.packed, maps.thumbnails, maps.thumbnails_skip_first]
    for pane in (window.attention_pane, window.activations_pane):
        for value in vars(pane).values():
            if hasattr(value, "_display") and hasattr(value, "_matrix"):  # a HeatmapView
                arrays += [value._display, value._matrix]
            arrays += [value, getattr(value, "tiles", None)]  # the attention overview's tiled image
    owners = {}
    for array in arrays:
        if isinstance(array, np.ndarray):
            root = _root(array)
            owners[id(root)] = root.nbytes
    return sum(owners.values())


def _prompt_text(tokenizer: Any, n_tokens: int, seed: int = 0) -> tuple[str, int]:
    """A text of about n_tokens random tokens (and its exact token count once re-encoded)."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, 50000, size=n_tokens).tolist()
    text = tokenizer.decode(ids)
    ids = tokenizer.encode(text)[:n_tokens]
    text = tokenizer.decode(ids)
    return text, len(tokenizer.encode(text))


def on_worker(window: Any, work: Callable[[], object]) -> float:
    """Run `work()` on the window's worker thread and return the seconds it took there.

    The baselines run where the window's own model work runs. Torch's OpenMP threads form one team per
    thread that calls into torch; once a second thread has its own team, libgomp counts more threads than
    cores and stops spinning between parallel regions, and every op pays to wake its team: measured here,
    Generator.step at 124M/1,000 tokens 28.7 ms alone, 37.3 ms after another thread had used torch. The
    app's GUI thread never runs the model, so timing the baseline on the GUI thread slowed both figures."""
    from PySide6.QtCore import QTimer

    from gptviz.bench.gui import wait_until

    took: list[float] = []
    failed: list[BaseException] = []

    def timed() -> None:
        t0 = time.perf_counter()
        try:
            work()
        except BaseException as exc:  # noqa: BLE001 - raised again on the GUI thread below
            failed.append(exc)
        took.append(time.perf_counter() - t0)

    QTimer.singleShot(0, window.host.worker, timed)  # the worker QObject lives on the worker thread
    if not wait_until(lambda: bool(took), 3600):
        raise RuntimeError("the worker thread did not run the baseline")
    if failed:
        raise failed[0]
    return took[0]


def run(sizes: StepSizes = FULL) -> BenchResult:
    """The section, for the named sizes (FULL, JUDGED_QUICK, QUICK) in a fresh interpreter: in the app only
    the worker thread runs the model, while a `gptviz bench` process has run the earlier sections' models on
    its main thread. A second thread with its own OpenMP team slows every op of both (see `on_worker`): the
    full run's step baseline took 46.6 ms where a process of its own measured 31.0. Other sizes (tests) run
    here."""
    for name in ("FULL", "JUDGED_QUICK", "QUICK"):
        if sizes == globals()[name]:
            return _in_fresh_process(name)
    return _run_here(sizes)


def _in_fresh_process(sizes_name: str) -> BenchResult:
    """`python -m gptviz.bench.step --section NAME`: its last stdout line is the result as JSON."""
    import json
    import subprocess
    import sys

    env = {**os.environ, "QT_QPA_PLATFORM": os.environ.get("QT_QPA_PLATFORM", "offscreen")}
    done = subprocess.run(
        [sys.executable, "-m", "gptviz.bench.step", "--section", sizes_name],
        capture_output=True,
        text=True,
        env=env,
        timeout=3600,
        check=False,
    )
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise RuntimeError(f"the step section's process failed ({done.returncode}): {tail}")
    return BenchResult.from_dict("step", json.loads(lines[-1]))


def _run_here(sizes: StepSizes) -> BenchResult:
    from gptviz.qt.settings import ENV_SETTINGS_DIR, use_settings_dir

    with tempfile.TemporaryDirectory(prefix="gptviz-bench-settings-") as folder:
        os.environ[ENV_SETTINGS_DIR] = folder
        use_settings_dir(folder)
        try:
            return _run(sizes)
        finally:
            os.environ.pop(ENV_SETTINGS_DIR, None)


def _run(sizes: StepSizes) -> BenchResult:
    import torch

    from gptviz.bench.gui import _app, wait_until
    from gptviz.engine.generator import Generator
    from gptviz.engine.sampling_settings import SamplingSettings
    from gptviz.engine.session import Session
    from gptviz.model.gpt import GPTModel
    from gptviz.qt import commands as cmd
    from gptviz.qt.main_window import MainWindow
    from gptviz.tokenizer import default_tokenizer

    started = time.perf_counter()
    _app()
    tokenizer = default_tokenizer()
    torch.manual_seed(123)
    model = GPTModel(sizes.cfg).eval()
    greedy = SamplingSettings(temperature=0.0, seed=0)
    prompt, prompt_tokens = _prompt_text(tokenizer, sizes.context_tokens)

    window = MainWindow(lambda: Session(model, tokenizer, corpus=None, sampling=greedy), startup_tokens=0)
    ready: list[bool] = []
    window.host.ready.connect(lambda: ready.append(True))
    window.resize(1400, 900)
    window.show()

    def panes_hold(n_tokens: int) -> bool:
        attention = window.attention_pane.snapshot
        activations = window.activations_pane.snapshot
        generation = window.generation_pane.view
        return (
            attention is not None
            and activations is not None
            and generation is not None
            and attention.n_tokens == n_tokens
            and activations.n_tokens == n_tokens
            and len(generation.prompt_ids) + len(generation.new_ids) == n_tokens
        )

    try:
        if not wait_until(lambda: bool(ready), 300):
            raise RuntimeError("the app's worker did not become ready within 300 s")
        window.host.submit(cmd.SetSampling(greedy))
        window.set_prompt(prompt)
        first_ready = time.perf_counter()
        if not wait_until(lambda: panes_hold(prompt_tokens), 600):
            raise RuntimeError("the panes did not show the prompt within 600 s")
        prompt_seconds = time.perf_counter() - first_ready

        baseline_gen = Generator(model, tokenizer, tokenizer.encode(prompt), greedy)
        on_worker(window, baseline_gen.step)  # warm: the prompt's pass, then one-token steps from here on
        ours_ms: list[float] = []
        base_ms: list[float] = []
        n = prompt_tokens
        for _ in range(sizes.steps + 1):  # the first pair is a warm-up
            t0 = time.perf_counter()
            window.host.submit(cmd.GenStep())
            if not wait_until(functools.partial(panes_hold, n + 1), 120, wake=window.host.resultReady):
                raise RuntimeError("a step did not reach every pane within 120 s")
            ours_ms.append((time.perf_counter() - t0) * 1000)
            n += 1
            wait_until(lambda: False, 0.15)  # the window paints what it holds before the baseline is timed
            base_ms.append(on_worker(window, baseline_gen.step) * 1000)
        ours_ms, base_ms = ours_ms[1:], base_ms[1:]
        snapshot = window.attention_pane.snapshot
        if snapshot is None:  # panes_hold saw it a moment ago
            raise RuntimeError("the Attention pane dropped its snapshot")
        snapshot_mib = snapshot.nbytes / 2**20
        panes_mib = held_nbytes(snapshot, window) / 2**20

        play: dict[str, Any] = {}
        if sizes.play_tokens:
            play = _play(window, model, tokenizer, greedy, sizes.play_tokens, panes_hold, wait_until)
    finally:
        window.close()
        window.deleteLater()
        wait_until(lambda: False, 0.05)

    ours, base = Stats.of(ours_ms), Stats.of(base_ms)
    ratio = ours.median / base.median
    judged = sizes.judged
    figures = [
        Figure("Step until every pane holds the token", ours.median, "ms", ours),
        Figure("Generator.step alone", base.median, "ms", base),
        Figure(f"first inspection of the {prompt_tokens}-token prompt", prompt_seconds * 1000, "ms"),
        Figure("snapshot the panes share", snapshot_mib, "MiB"),
        Figure(
            f"what the panes keep at {snapshot.n_tokens} tokens",
            panes_mib,
            "MiB",
            None,
            f"<= {MEMORY_TARGET_MIB:g} MiB" if judged else "",
            at_most(panes_mib, MEMORY_TARGET_MIB) if judged else None,
        ),
    ]
    if play:
        figures.append(
            Figure(
                f"Play with every pane live / generator alone, tokens 1..{play['tokens']}",
                play["ratio"],
                "x",
                None,
                f">= {PLAY_TARGET:g}x" if judged else "",
                at_least(play["ratio"], PLAY_TARGET) if judged else None,
            )
        )
        figures.append(
            Figure(
                "Play tokens/s, first and last tenth",
                play["first_rate"],
                "tok/s",
                Stats.of([play["first_rate"], play["last_rate"]]),
            )
        )
    cfg = sizes.cfg
    return BenchResult(
        name="step",
        ours=ours.median,
        baseline=base.median,
        unit="ms",
        ratio=ratio,
        target=f"<= {RATIO_TARGET:g}x" if judged else "",
        passed=at_most(ratio, RATIO_TARGET) if judged else None,
        ours_label="Step until every pane holds the new token",
        baseline_label="KV-cached Generator.step alone",
        ours_stats=ours,
        baseline_stats=base,
        figures=figures,
        setup=(
            f"The real window offscreen, {cfg.name} ({cfg.n_layers} layers x {cfg.n_heads} heads, width "
            f"{cfg.emb_dim}, random weights), a {prompt_tokens}-token prompt of random tokens, greedy; median "
            f"of {sizes.steps} steps after a warm-up, interleaved with the baseline, each timed once the window has painted the step before."
            + (f" Play: {play['tokens']} tokens from a one-token prompt, interval 0." if play else "")
        ),
        notes=[]
        if judged
        else ["not judged at quick sizes: the targets are stated for 124M at 1,000 tokens"],
        details={
            "prompt_tokens": prompt_tokens,
            "snapshot_mib": snapshot_mib,
            "panes_mib": panes_mib,
            "play": play,
        },
        seconds=time.perf_counter() - started,
    )


def _play(window, model, tokenizer, greedy, tokens: int, panes_hold, wait_until) -> dict[str, Any]:
    """Play `tokens` tokens from "<|endoftext|>" with every pane live, then the generator alone over the same
    tokens; the rate of each, and Play's rate in its first and last tenth (does it slow as the context grows?)."""
    from gptviz.engine.generator import Generator
    from gptviz.qt import commands as cmd

    counts: list[tuple[float, int]] = []
    window.host.resultReady.connect(
        lambda channel, payload: (
            counts.append((time.perf_counter(), len(payload.new_ids))) if channel == "generation" else None
        )
    )
    window.set_prompt("")  # an empty prompt means "<|endoftext|>"
    if not wait_until(lambda: panes_hold(1), 120):
        raise RuntimeError("the panes did not show the one-token prompt")
    counts.clear()
    t0 = time.perf_counter()
    window.host.submit(cmd.Play(interval_ms=0, limit=tokens))
    if not wait_until(lambda: bool(counts) and counts[-1][1] >= tokens, 3600):
        raise RuntimeError("Play did not finish")
    play_seconds = time.perf_counter() - t0
    window.host.submit(cmd.PausePlay())
    alone = Generator(model, tokenizer, [tokenizer.eot_id], greedy)
    alone_seconds = on_worker(window, functools.partial(alone.generate, tokens))
    times = np.array([t for t, _ in counts])
    done = np.array([k for _, k in counts])
    tenth = max(1, tokens // 10)

    def rate(lo: int, hi: int) -> float:
        a, b = int(np.searchsorted(done, lo)), int(np.searchsorted(done, hi))
        b = min(b, len(done) - 1)
        return float((done[b] - done[a]) / max(times[b] - times[a], 1e-9))

    return {
        "tokens": tokens,
        "play_tok_s": tokens / play_seconds,
        "alone_tok_s": tokens / alone_seconds,
        "ratio": (tokens / play_seconds) / (tokens / alone_seconds),
        "first_rate": rate(1, tenth),
        "last_rate": rate(tokens - tenth, tokens),
    }


def scale_rows(
    presets: tuple[str, ...] = ("124M", "355M", "774M", "1558M"),
    context_tokens: int = 1000,
    steps: int = 3,
    device: str = "cpu",
) -> list[dict[str, Any]]:
    """Each GPT-2 size (random weights of its shape) opened and stepped with every pane's inspection, in this
    process, one after the other: time to inspect the prompt, median time per Step with the live inspection
    (`Session.gen_step` + `Session.inspect`), the snapshot's size and the process's resident memory.

    No window: this is the engine's share. `gptviz bench --only step` measures the window at 124M."""
    import gc

    import torch

    from gptviz.engine.memory import process_rss_bytes
    from gptviz.engine.sampling_settings import SamplingSettings
    from gptviz.engine.session import Session
    from gptviz.model.gpt import GPTModel
    from gptviz.tokenizer import default_tokenizer

    tokenizer = default_tokenizer()
    prompt, prompt_tokens = _prompt_text(tokenizer, context_tokens)
    rows = []
    for name in presets:
        gc.collect()
        rss_before = process_rss_bytes()
        torch.manual_seed(123)
        model = GPTModel(preset(name)).eval()
        greedy = SamplingSettings(temperature=0.0, seed=0)
        session = Session(model, tokenizer, device=device, corpus=None, sampling=greedy)
        sync = torch.cuda.synchronize if session.device.type == "cuda" else (lambda: None)
        session.set_prompt(prompt)
        t0 = time.perf_counter()
        session.inspect()
        sync()
        prompt_s = time.perf_counter() - t0
        session.gen_step()
        session.inspect()  # warm-up: the first step after a prompt may still size buffers
        per_step = []
        for _ in range(steps):
            t0 = time.perf_counter()
            session.gen_step()
            snapshot = session.inspect()
            sync()
            per_step.append(time.perf_counter() - t0)
        alone = []
        gen = session.generator
        assert gen is not None
        gen.step()  # uses the logits the last inspected step's feed kept; from here each step runs the model
        for _ in range(steps):
            t0 = time.perf_counter()
            gen.step()
            sync()
            alone.append(time.perf_counter() - t0)
        rows.append(
            {
                "preset": name,
                "params": model.num_parameters(),
                "prompt_tokens": prompt_tokens,
                "prompt_inspect_s": prompt_s,
                "step_ms": float(np.median(per_step)) * 1000,
                "generator_step_ms": float(np.median(alone)) * 1000,
                "snapshot_mib": snapshot.nbytes / 2**20,
                "rss_gib": process_rss_bytes() / 2**30,
                "rss_added_gib": (process_rss_bytes() - rss_before) / 2**30,
                "device": str(session.device),
            }
        )
        del session, model, snapshot, gen
    return rows


if __name__ == "__main__":  # python -m gptviz.bench.step: the size table for docs/benchmarks.md
    import json
    import sys

    args = sys.argv[1:]
    if args[:1] == ["--section"]:  # the section itself, for run(): one JSON line
        section = _run_here(globals()[args[1]])
        print(json.dumps(section.to_dict()), flush=True)
        sys.exit(0)
    where = "cpu"
    if "--device" in args:  # python -m gptviz.bench.step [--device cuda] [SIZE ...]
        at = args.index("--device")
        where = args[at + 1]
        del args[at : at + 2]
    names = tuple(args) or ("124M", "355M", "774M", "1558M")
    for row in scale_rows(names, device=where):
        print(json.dumps(row), flush=True)
