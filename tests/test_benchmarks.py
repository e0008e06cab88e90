"""The benchmarks run (on tiny sizes) and produce the promised shapes; no assertion here is about time."""

from __future__ import annotations

import dataclasses
import json
import math
import os
from unittest import mock

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402
import torch  # noqa: E402

from gptviz import cli  # noqa: E402
from gptviz.bench import capture, causal, generation, gui, harness, runner, startup, training  # noqa: E402
from gptviz.bench.models import make_pair  # noqa: E402
from gptviz.config import GPTConfig  # noqa: E402
from gptviz.engine.inspection import mib, snapshot_nbytes  # noqa: E402
from gptviz.errors import ConfigError  # noqa: E402
from gptviz.model.book_reference import generate_text_simple  # noqa: E402
from gptviz.model.gpt import GPTModel, generate_greedy  # noqa: E402

TINY = GPTConfig(
    vocab_size=50257, context_length=32, emb_dim=32, n_heads=4, n_layers=2, drop_rate=0.0, name="t"
)
HEADLINE_KEYS = {"ours", "baseline", "unit", "ratio", "target", "pass", "figures", "setup"}


def _check_headline(data: dict, unit: str) -> None:
    assert set(data) >= HEADLINE_KEYS
    assert data["unit"] == unit
    assert data["ours"] > 0 and data["baseline"] > 0


# ------------------------------------------------------------------------------------------ harness


def test_stats_and_interleave_order() -> None:
    stats = harness.Stats.of([3.0, 1.0, 2.0, 10.0])
    assert (stats.min, stats.median, stats.max) == (1.0, 2.5, 10.0)
    assert stats.map(lambda s: 10 / s).median == pytest.approx((10 / 2 + 10 / 3) / 2)  # the middle two
    calls: list[str] = []
    times = harness.interleave({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, 3)
    assert calls == ["a", "b", "a", "b", "b", "a", "a", "b"]  # warm-up, then A B, B A, A B
    assert [len(v) for v in times.values()] == [3, 3]


def test_markdown_and_table_show_every_figure() -> None:
    result = harness.BenchResult(
        name="demo",
        ours=2.0,
        baseline=1.0,
        unit="tokens/s",
        ratio=2.0,
        target=">= 1.5x",
        passed=True,
        ours_stats=harness.Stats.of([1.9, 2.0, 2.1]),
        baseline_stats=harness.Stats.of([1.0]),
        figures=[harness.Figure("extra", 7.0, "ms", None, "<= 5 ms", False)],
    )
    text = harness.markdown_report(
        [result], harness.machine_info(), quick=True, command="gptviz bench --quick"
    )
    assert "| demo | 2.00 tokens/s | 1.00 tokens/s | 2.00x | >= 1.5x | pass |" in text
    assert "1.90 / 2.00 / 2.10 tokens/s" in text
    assert "| extra | 7.00 ms | <= 5 ms | MISS |" in text
    assert "load average" in text
    table = harness.summary_table([result])
    assert "MISS" in table and "demo" in table


def test_book_model_gets_our_weights_and_agrees() -> None:
    ours, book = make_pair(TINY)
    idx = torch.tensor([[15496, 11, 314, 716]])  # (1, 4) "Hello, I am"
    with torch.no_grad():
        assert torch.allclose(ours(idx), book(idx), atol=1e-5)  # (1, 4, V)
    expected = generate_greedy(ours, idx, 10)  # (1, 14)
    assert torch.equal(generate_text_simple(book, idx, 10, TINY.context_length), expected)
    assert book.out_head.weight.data_ptr() != book.tok_emb.weight.data_ptr()  # the book's head is untied


def test_select_refuses_unknown_names() -> None:
    assert runner.select(None) == list(runner.BENCHMARKS)
    assert runner.select(["startup", "generation"]) == ["generation", "startup"]
    with pytest.raises(ConfigError, match="unknown benchmark 'nope'"):
        runner.select(["nope"])


# ------------------------------------------------------------------------------------------ benchmarks


def test_generation_tiny() -> None:
    result = generation.run(generation.GenerationSizes(TINY, new_tokens=6, repeats=1))
    data = result.to_dict()
    _check_headline(data, "tokens/s")
    assert data["ratio"] == pytest.approx(data["ours"] / data["baseline"])
    assert data["pass"] is None and data["target"] == ">= 6x (at 200 tokens)"  # 6 tokens: not judged
    ceiling = next(f for f in result.figures if f.name == "per-token time / ceiling")
    assert ceiling.target == "<= 1.25x" and ceiling.value > 0
    assert result.details["agreeing_tokens"] == 6  # same weights, same greedy ids


def test_training_tiny() -> None:
    case = training.TrainCase(TINY, batch_size=2, steps_per_round=1, repeats=1)
    result = training.run(training.TrainingSizes((case,)))
    _check_headline(result.to_dict(), "tokens/s")
    assert result.ratio == pytest.approx(result.ours / result.baseline)
    mfu = next(f for f in result.figures if f.name.endswith("MFU ours"))
    assert mfu.unit == "%" and mfu.value > 0
    assert (result.passed, mfu.passed) == (None, None)  # targets are judged at the full sizes only
    overhead = next(f for f in result.figures if "diagnostics overhead" in f.name)
    assert overhead.unit == "%" and overhead.passed is None and math.isfinite(overhead.value)
    # the average a user pays: a measuring step's extra time spread over the trainer's measuring period
    step = next(f for f in result.figures if "a step measuring the update ratios" in f.name)
    period = result.details["update_ratio_period"]["t ctx 32 batch 2"]
    assert period >= 1 and f"every {period} step(s)" in overhead.name
    assert overhead.value == pytest.approx(step.value / period)
    # Same weights and batch (dropout is off in TINY): the first losses agree, near ln(V) for a fresh model.
    losses = result.details["first_losses"]["t ctx 32 batch 2"]
    assert losses["ours"] == pytest.approx(losses["book"], abs=1e-4)
    assert losses["ours"] == pytest.approx(math.log(TINY.vocab_size), abs=0.2)


def test_flops_per_token_formula() -> None:
    cfg = GPTConfig(vocab_size=100, context_length=8, emb_dim=16, n_heads=2, n_layers=3)
    params = 10_000
    assert training.flops_per_token(cfg, 8, params) == 6 * (params - 8 * 16) + 12 * 3 * 8 * 16


def test_capture_tiny() -> None:
    result = capture.run(capture.CaptureSizes(TINY, tokens=16, repeats=1, measure_memory_at_full_size=False))
    _check_headline(result.to_dict(), "s")
    assert result.ratio == pytest.approx(result.ours / result.baseline)
    memory = next(f for f in result.figures if f.name.startswith("snapshot memory"))
    assert memory.value == pytest.approx(mib(snapshot_nbytes(2, 4, 1024, 32)))
    naive = next(f for f in result.figures if f.name == "naive all-heads fp32 attention")
    assert naive.value == pytest.approx(2 * 4 * 1024 * 1024 * 4 / 2**20)
    details = result.details
    assert details["captured"] == details["taps"] > 0  # every tap recorded something
    assert details["panes_captured"] == details["panes_taps"] == 2 * 5 + 2  # 5 a layer, embed, one MLP
    assert result.ours_label == "forward with the panes' taps captured" and result.target == "<= 1.3x"
    every = next(f for f in result.figures if f.name.startswith("every tap / plain"))
    assert every.target in (None, "") and every.value > 0  # shown, not judged
    assert details["snapshot_bytes"] == details["snapshot_bytes_formula"]  # measured == shape formula
    assert capture.naive_attention_bytes(GPTConfig(), 1024) == 576 * 2**20
    inspect = next(f for f in result.figures if f.name == "inspect_tokens / plain forward")
    assert inspect.target == "<= 1.5x"  # the target for what the panes get
    assert inspect.passed == (inspect.value <= 1.5)


def test_gui_tiny(tmp_path) -> None:
    sizes = gui.GuiSizes(
        lag_seconds=0.3,
        redraw_repeats=1,
        loss_points=300,
        overview_layers=2,
        overview_heads=2,
        overview_tokens=16,
        session_cfg=TINY,
        train_batch=2,
        train_context=16,
    )
    result = gui.run(sizes)
    data = result.to_dict()
    assert data["unit"] == "ms" and data["ratio"] is None and data["ours"] >= 0
    names = [f["name"] for f in data["figures"]]
    assert "attention overview redraw, 2x2 heads at 16 tokens" in names
    assert "loss plot redraw, 300 points" in names
    assert all(f["value"] >= 0 for f in data["figures"])


def test_startup_probe_reports_paint_and_ready(tmp_path) -> None:
    painted, ready = startup.launch_app(str(tmp_path))
    assert 0 < painted < 150 and 0 < ready < 150


# ------------------------------------------------------------------------------------------ the command


def test_cli_json_and_markdown(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(generation, "QUICK", generation.GenerationSizes(TINY, new_tokens=3, repeats=1))
    out = tmp_path / "docs" / "bench.md"
    code = cli.main(["bench", "--quick", "--only", "generation", "--json", "--out", str(out)])
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    assert set(data) == {"generation", "machine", "quick"}
    assert data["quick"] is True
    gen = data["generation"]
    assert gen["unit"] == "tokens/s" and gen["ratio"] == pytest.approx(gen["ours"] / gen["baseline"])
    text = out.read_text(encoding="utf-8")
    assert "## generation" in text and "gptviz bench --quick --only generation" in text
    stored = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
    assert stored["generation"]["ours"] == gen["ours"]


def test_judged_quick_runs_the_judged_sizes_with_fewer_repeats_and_keeps_the_verdicts(
    tmp_path, monkeypatch, capsys
) -> None:
    for module in (generation, capture, causal, startup):  # the judged sizes, only fewer repeats
        assert dataclasses.replace(module.FULL, repeats=module.JUDGED_QUICK.repeats) == module.JUDGED_QUICK
        assert module.JUDGED_QUICK.repeats < module.FULL.repeats
    chosen = []

    def fake_run(sizes):
        chosen.append(sizes)
        return harness.BenchResult("generation", 7.0, 1.0, "tokens/s", 7.0, ">= 6x (at 200 tokens)", True)

    monkeypatch.setattr(generation, "run", fake_run)
    out = tmp_path / "bench.md"
    assert (
        cli.main(
            [
                "bench",
                "--judged-quick",
                "--only",
                "generation",
                "--json",
                "--quiet-wait",
                "0",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert chosen == [generation.JUDGED_QUICK]
    data = json.loads(capsys.readouterr().out)
    assert data["quick"] is False and data["generation"]["pass"] is True  # still judged
    assert "gptviz bench --judged-quick --only generation" in out.read_text(encoding="utf-8")


def test_quick_and_judged_quick_together_are_a_one_line_error(capsys) -> None:
    assert cli.main(["bench", "--quick", "--judged-quick", "--no-write"]) != 0
    assert "choose one of --quick" in capsys.readouterr().err


def test_only_keeps_the_other_sections_of_a_stored_report(tmp_path) -> None:
    def result(name: str, ours: float) -> harness.BenchResult:
        stats = harness.Stats.of([ours - 1, ours, ours + 2])
        return harness.BenchResult(name, ours, 1.0, "s", ours, "<= 2x", ours <= 2, ours_stats=stats)

    sidecar = tmp_path / "bench.json"
    runner.write_json(sidecar, [result("generation", 5.0), result("capture", 1.5)], {"date": "then"}, False)
    merged = runner.merge_previous([result("capture", 1.2)], sidecar)
    assert [r.name for r in merged] == ["generation", "capture"]  # report order, fresh capture wins
    old = merged[0]
    assert (old.ours, old.ratio, old.passed, old.started) == (5.0, 5.0, False, "then")
    assert old.ours_stats.values == (4.0, 5.0, 7.0)
    assert merged[1].ours == 1.2
    assert runner.merge_previous([result("gui", 3.0)], tmp_path / "missing.json")[0].name == "gui"


def test_cli_refuses_unknown_benchmark(capsys) -> None:
    with pytest.raises(SystemExit):
        cli.main(["bench", "--only", "nope", "--no-write"])
    assert "invalid choice" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------ --device


def test_device_flag_parses() -> None:
    parser = cli.build_parser()
    args = parser.parse_args(["bench", "--device", "cuda", "--only", "generation", "training", "capture"])
    assert (args.device, args.only) == ("cuda", ["generation", "training", "capture"])
    assert parser.parse_args(["bench"]).device == "cpu"  # the CPU report stays the default
    assert parser.parse_args(["bench", "--device", "auto"]).device == "auto"
    with pytest.raises(SystemExit):
        parser.parse_args(["bench", "--device", "tpu"])


def test_cuda_without_a_gpu_is_a_one_line_error(monkeypatch, capsys, tmp_path) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "bench.md"
    code = cli.main(["bench", "--device", "cuda", "--only", "generation", "--out", str(out)])
    assert code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "gptviz bench: error: --device cuda was asked for, but PyTorch sees no CUDA device (use --device cpu)"
    ]
    assert not out.exists()  # nothing ran, nothing written
    assert harness.resolve_device("auto") == "cpu"


def test_cuda_selects_only_the_benchmarks_that_run_there() -> None:
    assert runner.select(None, "cuda") == ["generation", "training", "capture"]
    assert runner.select(["capture", "generation"], "cuda") == ["generation", "capture"]
    with pytest.raises(ConfigError, match="the gui benchmark runs on the CPU only"):
        runner.select(["gui"], "cuda")
    for name in runner.CUDA_BENCHMARKS:  # each has GPU sizes the runner can pick
        module = {"generation": generation, "training": training, "capture": capture}[name]
        assert module.CUDA_FULL is not None and module.CUDA_QUICK is not None
    head = training.CUDA_FULL.cases[0]
    assert (head.cfg.name, head.cfg.context_length, head.amp, head.compile) == ("124M", 1024, "bf16", False)


def test_interleave_syncs_around_every_timed_call() -> None:
    calls: list[str] = []
    harness.interleave({"a": lambda: calls.append("a")}, 2, warmup=1, sync=lambda: calls.append("sync"))
    assert calls == ["a", "sync", "a", "sync", "sync", "a", "sync"]
    assert harness.device_sync("cpu") is None


def test_gpu_machine_row_and_kept_section(tmp_path) -> None:
    result = harness.BenchResult("capture", 1.2, 1.0, "s", 1.2, "<= 1.3x", True)
    machine = {"date": "now", "gpu": "NVIDIA H200", "gpu_memory_gib": 139.8, "cuda_version": "13.0"}
    text = harness.markdown_report([result], machine, quick=False, command="gptviz bench --device cuda")
    assert "| GPU | NVIDIA H200, 140 GiB, CUDA 13.0 |" in text
    assert "| GPU |" not in harness.markdown_report([result], {"date": "now"}, quick=False, command="c")
    # A hand-written GPU section between the markers survives a rewrite of the report.
    report = tmp_path / "bench.md"
    kept = f"{runner.KEPT_START}\n## On a GPU\n\nfigures\n{runner.KEPT_END}"
    report.write_text("# old\n\n" + kept + "\n\n## How to read\n", encoding="utf-8")
    runner.write_markdown(report, [result], {"date": "now"}, quick=False, command="gptviz bench")
    text = report.read_text(encoding="utf-8")
    assert text.count(kept) == 1 and text.index("## capture") < text.index(kept)


# ------------------------------------------------------------------------------------------ TrainSettings.amp


def test_amp_setting_is_checked_and_off_by_default() -> None:
    from gptviz.engine.train_settings import RESUME_OVERRIDES, TrainSettings

    assert TrainSettings().amp == "off"
    assert TrainSettings(amp="bf16").amp == "bf16"
    assert "amp" in RESUME_OVERRIDES  # precision does not decide which batches a run sees
    with pytest.raises(ConfigError, match="amp must be one of off, bf16"):
        TrainSettings(amp="fp8")
    assert (
        TrainSettings.from_dict({k: v for k, v in TrainSettings().to_dict().items() if k != "amp"}).amp
        == "off"
    )


def test_amp_bf16_trains_a_tiny_model_on_cpu_like_fp32() -> None:
    """The autocast path the GPU bench uses, at a size where CPU bfloat16 is cheap: same first loss to
    bf16 rounding, weights stay float32, and the bench's training section runs with it."""
    from gptviz.engine.train_settings import TrainSettings
    from gptviz.engine.trainer import Trainer

    ids = torch.randint(0, TINY.vocab_size, (2000,), generator=torch.Generator().manual_seed(0))  # (N,)
    losses = {}
    for amp in ("off", "bf16"):
        torch.manual_seed(1)
        model = GPTModel(TINY)
        settings = TrainSettings(batch_size=2, steps=2, eval_freq=100, probe_tokens=0, device="cpu", amp=amp)
        trainer = Trainer(model, None, ids[:1800], ids[1800:], settings)
        losses[amp] = [trainer.step().train_loss for _ in range(2)]
        assert all(p.dtype == torch.float32 for p in trainer.model.parameters())
    assert losses["bf16"] == pytest.approx(losses["off"], abs=0.05)
    assert all(math.isfinite(x) for x in losses["bf16"])
    case = training.TrainCase(TINY, batch_size=2, steps_per_round=1, repeats=1, amp="bf16")
    result = training.run(training.TrainingSizes((case,)), device="cpu")
    assert "t ctx 32 batch 2, bf16" in result.details["first_losses"]
    assert result.details["device"] == "cpu" and result.details["failed"] == []


def test_a_failing_compile_case_is_reported_not_raised(monkeypatch) -> None:
    def broken(*_args, **_kwargs):
        raise RuntimeError("no compiler here\nmore")

    monkeypatch.setattr(torch, "compile", broken)
    plain = training.TrainCase(TINY, batch_size=2, steps_per_round=1, repeats=1)
    compiled = training.TrainCase(TINY, batch_size=2, steps_per_round=1, repeats=1, compile=True)
    result = training.run(training.TrainingSizes((plain, compiled)))
    assert result.details["failed"] == [
        "t ctx 32 batch 2, torch.compile failed: RuntimeError: no compiler here"
    ]
    assert result.notes[-1] == result.details["failed"][0]
    with pytest.raises(TimeoutError), training._time_limit(0.05):
        import time

        time.sleep(1)


def test_step_tiny_reaches_every_pane_and_reports_play_and_memory() -> None:
    from gptviz.bench import step

    sizes = step.StepSizes(
        GPTConfig(context_length=64, emb_dim=32, n_heads=2, n_layers=2, drop_rate=0.0, name="t"),
        context_tokens=20,
        steps=2,
        play_tokens=8,
        judged=False,
    )
    result = step.run(sizes)
    data = result.to_dict()
    assert data["unit"] == "ms" and data["ours"] > 0 and data["baseline"] > 0
    assert data["ratio"] == pytest.approx(data["ours"] / data["baseline"])
    assert data["target"] == "" and data["pass"] is None  # not judged below 124M / 1,000 tokens
    details = result.details
    assert 15 <= details["prompt_tokens"] <= 25  # random tokens decoded and encoded again: about 20
    assert details["play"]["tokens"] == 8 and details["play"]["ratio"] > 0
    # 2 layers x 2 heads, about 23 tokens (the prompt, a warm-up and 2 timed steps): a few KiB
    assert 0 < details["snapshot_mib"] <= details["panes_mib"] < 5


def test_step_scale_rows_step_each_size_with_the_live_inspection() -> None:
    from gptviz.bench import step

    rows = step.scale_rows(("tiny",), context_tokens=30, steps=2)
    (row,) = rows
    assert row["preset"] == "tiny" and 20 <= row["prompt_tokens"] <= 40
    assert row["step_ms"] > 0 and row["generator_step_ms"] > 0 and row["snapshot_mib"] > 0


def test_peers_tiny_entries_and_quick_runs_judge_nothing() -> None:
    from gptviz.bench import peers

    sizes = peers.PeerSizes(
        TINY,
        new_tokens=4,
        train_context=16,
        train_batch=2,
        train_steps=1,
        capture_tokens=16,
        repeats=1,
        judged=True,
    )
    result = peers.run(sizes)
    entries = result.details["entries"]
    assert set(entries) == {"generation_hf", "training_hf", "capture_hf", "capture_hf_memory", "decode_limit"}
    for entry in entries.values():
        assert set(entry) == {"ours", "baseline", "unit", "ratio", "target", "pass"}
        assert entry["ours"] > 0 and entry["baseline"] > 0 and entry["target"] is not None
    assert result.details["agreeing_tokens"] == 4  # the HF twin holds the same weights: same greedy ids
    result.unjudge()
    data = result.to_dict()
    assert data["target"] is None and data["pass"] is None and data["judged"] is False
    assert all(f["target"] is None and f["pass"] is None for f in data["figures"])
    assert "not judged at quick sizes" in harness.summary_table([result])
    back = harness.BenchResult.from_dict("peers", data)
    assert back.judged is False and back.passed is None


def test_read_bandwidth_is_a_plausible_rate() -> None:
    from gptviz.bench import peers

    rate = peers.read_bandwidth(0.05, repeats=2)
    assert 1e8 < rate < 1e12  # bytes/s: between 0.1 GB/s and 1 TB/s on any machine this runs on


def test_causal_tiny_times_patching_and_input_x_gradient_against_a_forward_pass() -> None:
    from gptviz.bench import causal

    result = causal.run(causal.CausalSizes(TINY, tokens=6, repeats=1, judged=False))
    data = result.to_dict()
    _check_headline(data, "s")
    assert data["ratio"] == pytest.approx(data["ours"] / data["baseline"])
    assert data["pass"] is None and data["target"] == ""  # tiny sizes: not judged
    ixg = next(f for f in result.figures if f.name == "input x gradient / forward pass")
    assert ixg.value == pytest.approx(result.details["ixg_over_forward"]) and ixg.value > 0
    assert result.details["patched_runs"] == TINY.n_layers * (6 + TINY.n_heads)
    judged = causal.run(causal.CausalSizes(TINY, tokens=6, repeats=1, judged=True))
    assert judged.target == "<= 20x" and judged.passed == (judged.ratio <= 20)
    assert "causal" in runner.BENCHMARKS and causal.FULL.cfg.emb_dim == 768 and causal.FULL.tokens == 20


def test_exact_patchings_least_work_counts_each_recomputed_block_and_position() -> None:
    """The floor the causal section reports: counted here run by run, block by block, position by position
    (what a patch changes and the last position's logit difference needs), against the closed form."""
    from gptviz.bench import causal
    from gptviz.config import GPTConfig

    cfg = GPTConfig(vocab_size=100, context_length=16, emb_dim=8, n_heads=2, n_layers=3)
    T, n, D = 5, cfg.n_layers, cfg.emb_dim
    block = causal.block_flops_per_token(cfg, T)
    total = 0.0
    for layer in range(n):
        for t in range(T):  # the residual stream entering `layer` at position t
            for b in range(layer, n):
                for p in range(t, T):
                    if b < n - 1 or p == T - 1:
                        total += block
        for _head in range(cfg.n_heads):  # the head's output at every position
            for p in range(T):
                if layer < n - 1 or p == T - 1:
                    total += 18.0 * D * D  # out_proj and the MLP of the patched block
            for b in range(layer + 1, n):
                for p in range(T):
                    if b < n - 1 or p == T - 1:
                        total += block
    assert causal.exact_patching_flops(cfg, T) == pytest.approx(total)
    assert causal.forward_flops(cfg, T) == pytest.approx(T * (n * block + 2 * D * cfg.vocab_size))
    assert 1e8 < causal.matmul_rate(0.05) < 1e14


def test_the_decode_limit_reads_every_weight_once() -> None:
    """The floor of a batch-1 step is timed on the model's own weights (every parameter's bytes, once),
    in the same rounds as the decode it judges."""
    from gptviz.bench import peers
    from gptviz.model.gpt import GPTModel

    model = GPTModel(TINY)
    read, nbytes = peers.weights_reader(model)
    assert nbytes == sum(p.numel() * 4 for p in {id(p): p for p in model.parameters()}.values())
    summed: list[int] = []
    with mock.patch.object(
        torch.Tensor, "sum", lambda t, *a, **k: summed.append(t.numel()) or t.new_zeros(())
    ):
        read()
    assert sum(summed) * 4 == nbytes  # each tensor once, a tied table once
    entry, rate, buffer_rate, weights, per_token = peers.decode_limit(
        dataclasses.replace(peers.QUICK, judged=True), model
    )
    assert weights == nbytes and rate == pytest.approx(nbytes / (entry["baseline"] / 1000))
    assert entry["ours"] == pytest.approx(per_token.median * 1000) and 0 < entry["ours"] < 1000
    assert entry["ratio"] == pytest.approx(entry["baseline"] / entry["ours"])
    assert entry["pass"] == (entry["ratio"] >= peers.DECODE_LIMIT_TARGET)
    assert 1e8 < buffer_rate < 1e12
