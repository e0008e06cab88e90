"""Runs side by side (gptviz.engine.run_compare): each run's curves are its own metrics.jsonl's numbers, and
the settings table lists exactly the keys whose values differ."""

from __future__ import annotations

import numpy as np
import pytest

from gptviz.engine.run_compare import MISSING, flatten, format_value, read_run, settings_diff
from gptviz.engine.rundir import JsonlWriter, metrics_path, read_metrics, write_settings
from gptviz.errors import DataError


def _run(path, train, metrics):
    write_settings(path, {"model": {"emb_dim": 32, "n_layers": 2}, "train": train, "corpus": {"name": "c"}})
    writer = JsonlWriter(metrics_path(path))
    for record in metrics:
        writer.write(record)
    writer.close()
    return path


def _metrics(scale):
    out = [{"step": 0, "tokens_seen": 0, "val_loss": 10.0 * scale, "train_eval_loss": 10.1 * scale}]
    for step in range(1, 7):
        record = {
            "step": step,
            "tokens_seen": 64 * step,
            "train_loss": 9.0 * scale / step,
            "elapsed_s": 0.5 * step,
        }
        if step % 3 == 0:
            record.update(val_loss=8.0 * scale / step, train_eval_loss=7.5 * scale / step)
        out.append(record)
    return out


def test_a_runs_curves_are_its_metrics_files_numbers(tmp_path):
    path = _run(tmp_path / "a", {"lr": 4e-4}, _metrics(1.0))
    with open(metrics_path(path), "a", encoding="utf-8") as handle:  # an event and a half-written line
        handle.write('{"step": 6, "event": "diverged", "message": "x"}\n{"step": 7, "train_lo')
    run = read_run(path)
    records = [r for r in read_metrics(path) if "event" not in r]
    train = [(r["step"], r["train_loss"]) for r in records if "train_loss" in r]
    val = [(r["step"], r["val_loss"]) for r in records if "val_loss" in r]
    np.testing.assert_array_equal(np.c_[run.train_steps, run.train_loss], train)
    np.testing.assert_array_equal(np.c_[run.val_steps, run.val_loss], val)
    np.testing.assert_array_equal(run.eval_steps, [0, 3, 6])
    np.testing.assert_array_equal(run.x_of(run.val_steps, "tokens"), [0, 192, 384])
    np.testing.assert_array_equal(run.x_of(np.array([3.0]), "time"), [1.5])
    assert run.label == "a" and run.settings["train.lr"] == 4e-4 and "format" not in run.settings
    with pytest.raises(DataError):
        read_run(tmp_path / "not-a-run")


def test_the_settings_diff_lists_exactly_the_keys_that_differ(tmp_path):
    base = {"lr": 4e-4, "batch_size": 8, "eval_freq": 5, "cosine": False, "min_lr": None}
    a = read_run(_run(tmp_path / "a", base, []))
    b = read_run(_run(tmp_path / "b", {**base, "lr": 1e-3, "batch_size": 8.0, "cosine": True}, []))
    c = read_run(_run(tmp_path / "c", {**base, "eval_freq": 50, "new_switch": "x"}, []))
    diff = settings_diff([a, b])
    assert [d.key for d in diff] == ["train.lr", "train.cosine"]  # 8 and 8.0 are the same batch size
    assert diff[0].describe() == "lr 4e-4 vs 1e-3" and diff[1].describe() == "cosine off vs on"
    diff = settings_diff([a, b, c])
    assert [d.key for d in diff] == ["train.lr", "train.eval_freq", "train.cosine", "train.new_switch"]
    assert diff[-1].values == (MISSING, MISSING, "x")
    assert settings_diff([a]) == [] and settings_diff([a, read_run(tmp_path / "a")]) == []


def test_values_read_as_people_write_them():
    assert [format_value(v) for v in (4e-4, 1e-3, 0.1, 3e-5, 2.5e-4, 256, None, [1, 0.5])] == [
        "4e-4", "1e-3", "0.1", "3e-5", "2.5e-4", "256", "none", "[1, 0.5]",
    ]  # fmt: skip
    assert flatten({"format": "gptviz-run", "a": {"b": {"c": 1}}, "d": [1]}) == {"a.b.c": 1, "d": [1]}


def test_two_trained_runs_differ_in_the_one_setting_changed(tmp_path):
    import torch

    from gptviz.config import GPTConfig
    from gptviz.engine.train_settings import TrainSettings
    from gptviz.engine.trainer import Trainer
    from gptviz.model.gpt import GPTModel

    cfg = GPTConfig(vocab_size=512, context_length=16, emb_dim=32, n_heads=4, n_layers=2, drop_rate=0.0)
    ids = torch.randint(0, 512, (800,), generator=torch.Generator().manual_seed(0))  # (800,)
    runs = []
    for name, lr in (("slow", 1e-3), ("fast", 4e-3)):
        torch.manual_seed(0)
        settings = TrainSettings(
            steps=4, batch_size=4, context=16, lr=lr, eval_freq=2, eval_iter=1, probe_tokens=1,
            probe_prompt="a b", device="cpu",
        )  # fmt: skip
        trainer = Trainer(GPTModel(cfg), None, ids[:600], ids[600:], settings, tmp_path / name)
        trainer.start()
        while not trainer.done:
            trainer.step()
        runs.append(read_run(tmp_path / name))
    assert [d.describe() for d in settings_diff(runs)] == ["lr 1e-3 vs 4e-3"]
    for run in runs:
        records = read_metrics(run.run_dir)
        assert run.val_steps.tolist() == [r["step"] for r in records if r.get("val_loss") is not None]
        assert run.val_loss.tolist() == [r["val_loss"] for r in records if r.get("val_loss") is not None]
    assert runs[0].val_loss.tolist() != runs[1].val_loss.tolist()
