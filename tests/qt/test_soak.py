"""The soak benchmark's machinery: a few seconds of the real window training with a tiny model, and the
report's checks on made-up samples (the 10-minute run itself is not a test; its numbers are in
docs/reliability.md)."""

from __future__ import annotations

import dataclasses

from gptviz.bench.soak import Sample, SoakResult, proc_status, replace_section, report_markdown, run_soak
from gptviz.config import GPTConfig

CFG = GPTConfig(
    vocab_size=50257, context_length=32, emb_dim=32, n_heads=4, n_layers=2, drop_rate=0.0, name="soak"
)


def _sample(t_s: float, rss_mib: float, threads: int = 6, timers: int = 3, points: int = 10) -> Sample:
    return Sample(
        t_s=t_s, step=int(t_s), rss_bytes=int(rss_mib * 2**20), os_threads=threads, py_threads=1,
        timers=timers, active_timers=1, train_points=points, drawn_points=points, val_points=1,
        buffer_capacity=points, probes=1, gc_objects=1000,
    )  # fmt: skip


def _result(samples: list[Sample]) -> SoakResult:
    return SoakResult(
        minutes=3, preset="tiny", batch_size=4, context=64, max_points=100, samples=samples, app_bound=100
    )


def test_checks_compare_minute_medians_after_the_first_minute():
    rss = [400, 900, 1000, 1050, 980, 1000, 1020, 1030, 990, 1060]  # a sample every 20 s, 0..180 s
    steady = _result([_sample(20.0 * i, m) for i, m in enumerate(rss)])
    assert steady.baseline.t_s == 60
    assert steady.rss_windows() == (1000 * 2**20, 1025 * 2**20)  # medians of 60-100 s and of 120-180 s
    assert abs(steady.rss_growth() - 0.025) < 1e-9 and abs(steady.rss_peak_growth() - 0.06) < 1e-9
    assert [ok for _, ok, _ in steady.checks()] == [True, True, True, True] and steady.passed()

    grows = [400, 900, 1000, 1000, 1000, 1100, 1100, 1100]
    leaky = _result(
        [_sample(20.0 * i, m, threads=6 + (i > 5), timers=3 + (i > 6)) for i, m in enumerate(grows)]
    )
    leaky.samples[-1] = dataclasses.replace(leaky.samples[-1], train_points=101)
    assert [ok for _, ok, _ in leaky.checks()] == [False, False, False, False]
    text = report_markdown(leaky, "python -m gptviz.bench.soak --minutes 3")
    assert (
        "| resident memory grows <= 5% after the first minute | FAIL | median 1,000.0 MiB in the minute"
        in text
    )
    assert "1,100.0 MiB in the last minute: +10.00%" in text
    assert text.count("\n| 0.0 min |") == 1 and "| 2.3 min | 140 | 1,100.0 | 7 |" in text


def test_replace_section_replaces_only_the_soak_section():
    doc = "# Title\n\n## Faults\n\nrows\n\n## Soak\n\nold numbers\n\n## Not covered here\n\n- x\n"
    new = replace_section(doc, "## Soak\n\nnew numbers\n")
    assert new == "# Title\n\n## Faults\n\nrows\n\n## Soak\n\nnew numbers\n\n## Not covered here\n\n- x\n"
    assert replace_section("# Title\n", "## Soak\n\nn\n") == "# Title\n\n## Soak\n\nn\n"
    assert replace_section(new, "## Soak\n\nnew numbers\n") == new


def test_a_short_soak_through_the_real_window(small_corpus):
    result = run_soak(
        0.25, sample_s=0.5, poke_s=1.0, model=CFG, batch_size=2, context=16, eval_freq=1000, max_points=4,
        corpus=small_corpus, progress=False,
    )  # fmt: skip
    assert result.worker_stopped and result.errors == []
    assert len(result.samples) >= 20 and result.end.t_s >= 15.0
    assert result.end.step >= 1 and result.end.train_points >= 1  # it trained, and the curve was drawn
    assert all(s.train_points <= 4 and s.drawn_points <= 4 and s.buffer_capacity <= 4 for s in result.samples)
    assert result.end.timers >= 2 and result.end.rss_bytes > 0 and result.end.os_threads >= 2
    assert [ok for _, ok, _ in result.checks()][1:] == [True, True, True]  # bounded; no new threads, timers
    from gptviz.qt.panes import training

    assert training.MAX_CURVE_POINTS == 10_000  # the app's own bound is back
    assert proc_status()["rss_bytes"] > 0
