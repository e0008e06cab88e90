"""Session: the synchronous facade the GUI drives, tested without Qt."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from gptviz.data import SlidingWindows, builtin_text
from gptviz.engine.sampling_settings import SamplingSettings
from gptviz.engine.session import Session
from gptviz.engine.train_settings import TrainSettings
from gptviz.errors import ConfigError, DataError
from gptviz.model.gpt import GPTModel


@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("c") / "c.txt"
    path.write_text(builtin_text()[:40_000], encoding="utf-8")
    return str(path)


@pytest.fixture
def session(tiny_cfg, corpus_file):
    torch.manual_seed(0)
    return Session(model=GPTModel(tiny_cfg), corpus=corpus_file)


def test_injected_model_and_info(session, tiny_cfg):
    info = session.info()
    assert info.source == "injected" and info.n_layers == 2 and info.context_length == 32
    assert info.params == session.model.num_parameters()
    assert info.bytes == info.params * 4


def test_missing_demo_falls_back_to_a_fresh_tiny_model(tmp_path):
    s = Session(demo_dir=tmp_path / "nothing", corpus=None)
    info = s.info()
    assert info.source == "preset" and info.n_layers == 6 and "demo model not found" in info.note


def test_tokenize_and_windows(session):
    view = session.tokenize("Every effort moves you")
    assert view.ids.tolist() == [6109, 3626, 6100, 345]
    assert view.starts.tolist() == [0, 5, 12, 18] and view.ends.tolist() == [5, 12, 18, 22]
    page = session.windows(4, 2, first=5, count=3)
    ds = SlidingWindows(session.corpus_ids, 4, 2)
    assert page.total == len(ds)
    for i in range(3):
        np.testing.assert_array_equal(page.inputs[i], ds[5 + i][0].numpy())
        np.testing.assert_array_equal(page.targets[i], ds[5 + i][1].numpy())
    assert page.input_pieces[0][0] == session.tokenizer.piece(int(page.inputs[0, 0]))


def test_windows_need_a_corpus(tiny_model):
    s = Session(model=tiny_model, corpus=None)
    with pytest.raises(DataError):
        s.windows(4, 1)


def test_generation_step_force_undo_reset(session):
    session.set_sampling(SamplingSettings(temperature=0.0, top_k=None, top_p=1.0, seed=1))
    first = session.gen_step()
    assert first.prompt_ids.tolist() == [6109, 3626, 6100, 345] and len(first.new_ids) == 1
    greedy = max(first.candidates, key=lambda c: c.prob_raw)
    assert first.new_ids[0] == greedy.id and first.new_probs[0] == pytest.approx(1.0)
    other = first.candidates[2].id
    forced = session.force(other)
    assert forced.new_ids.tolist() == [other] and forced.new_forced.tolist() == [True]
    assert session.gen_step().new_ids.shape == (2,)
    assert session.undo().new_ids.tolist() == [other]
    assert session.reset_generation().new_ids.size == 0
    assert session.set_prompt("Hello").prompt_ids.tolist() == [15496]


def test_inspection_follows_the_generation(session):
    session.gen_step()
    snap = session.inspect(mlp_layer=7, lens_position=99)  # out of range: clamped, not an error
    assert snap.token_ids.tolist() == session.current_ids()
    assert snap.mlp_layer == 1 and snap.lens_position == snap.n_tokens - 1


def test_training_steps_share_the_model_with_generation(session):
    before = session.gen_step().candidates[0].prob_raw
    session.undo()
    session.start_training(
        TrainSettings(steps=3, batch_size=2, context=16, eval_freq=2, eval_iter=1, probe_tokens=2, lr=1e-2)
    )
    updates = [session.train_step() for _ in range(3)]
    assert [u.step for u in updates] == [1, 2, 3] and updates[-1].done
    assert [u.evaluated for u in updates] == [True, True, True]
    assert [p.step for u in updates for p in u.new_probes] == [0, 1, 2, 3]
    assert updates[0].batch_tokens == 2 * 16
    after = session.gen_step().candidates[0].prob_raw  # the cache was rebuilt for the new weights
    assert after != before
    session.stop_training()
    assert session.trainer is None and not session.model.training
    with pytest.raises(ConfigError):
        session.train_step()


def test_save_and_load_checkpoint_round_trip(session, tmp_path):
    path = session.save_checkpoint(tmp_path / "ckpt")
    ids = session.tokenize("Every effort").ids.tolist()
    with torch.no_grad():
        expected = session.model(torch.tensor([ids]))  # (1, T, V)
    info = session.load_checkpoint(path)
    assert info.source == "checkpoint"
    with torch.no_grad():
        torch.testing.assert_close(session.model(torch.tensor([ids])), expected)


def test_bad_device_is_a_config_error(tiny_model):
    with pytest.raises(ConfigError):
        Session(model=tiny_model, device="tpu", corpus=None)


# ------------------------------------------------------------------------------ a loaded model's history


def _train_run(session, run_dir, steps: int = 3, eval_freq: int = 2):
    """A real run directory (settings.json, metrics.jsonl, checkpoint/, probes/) from the Trainer."""
    from gptviz.data import split_ids
    from gptviz.engine.trainer import Trainer

    train_ids, val_ids = split_ids(session.corpus_ids, 0.1)  # (N_train,), (N_val,)
    settings = TrainSettings(
        steps=steps, batch_size=2, context=16, eval_freq=eval_freq, eval_iter=1, probe_tokens=2
    )
    corpus = {"name": "c.txt", "source": session.corpus.path}
    trainer = Trainer(session.model, session.tokenizer, train_ids, val_ids, settings, run_dir, corpus=corpus)
    for _ in range(steps):
        trainer.step()
    trainer.close()
    return run_dir


def _pack_like_the_demo(run_dir, out):
    """What `make demo-model` keeps: weights and config, plus the run's metrics, settings and probes."""
    import shutil

    out.mkdir()
    for name in ("model.safetensors", "config.json"):
        shutil.copy(run_dir / "checkpoint" / name, out / name)
    for name in ("metrics.jsonl", "settings.json"):
        shutil.copy(run_dir / name, out / name)
    shutil.copytree(run_dir / "probes", out / "probes")
    return out


def test_a_run_directory_opened_as_a_checkpoint_brings_its_history(session, tmp_path):
    from gptviz.engine.run_follow import run_is_finished

    run = _train_run(session, tmp_path / "run")
    assert run_is_finished(run)
    assert session.model_history() is None  # an injected model has no record
    session.load_checkpoint(run)
    history = session.model_history()
    assert [r["step"] for r in history.records] == [0, 1, 2, 3]  # 0: the untrained model's evaluation
    assert [r["val_loss"] is not None for r in history.records] == [True, True, True, True]
    assert [p.step for p in history.probes] == [0, 1, 2, 3]
    assert history.probes[-1].attention.shape == (2, 4, 4, 4)  # (L, H, T, T) of "Every effort moves you"
    assert history.total_steps == 3 and not history.restart
    assert history.label == "history of run: 3 steps on c.txt"
    assert session.model_history().records == history.records  # read again, the same (nothing followed)
    session.new_model(session.model.cfg)
    assert session.model_history() is None


def test_the_demo_layout_brings_its_history_up_to_the_checkpoints_step(session, tmp_path, corpus_file):
    run = _train_run(session, tmp_path / "run", steps=4, eval_freq=2)
    demo = _pack_like_the_demo(run, tmp_path / "demo")
    # Lines a run wrote after the checkpoint describe other weights: they are not this model's history.
    config = json.loads((demo / "config.json").read_text())
    config["meta"]["step"] = 2
    (demo / "config.json").write_text(json.dumps(config))
    s = Session(demo_dir=demo, corpus=None)
    history = s.model_history()
    assert s.info().source == "demo"
    assert [r["step"] for r in history.records] == [0, 1, 2]
    assert [p.step for p in history.probes] == [0, 1, 2]
    assert history.label == "history of demo: 2 of 4 steps on c.txt" and history.total_steps == 4


def test_a_checkpoint_without_run_files_or_a_followed_run_has_no_history(session, tmp_path):
    from gptviz.engine.run_follow import run_is_finished

    session.load_checkpoint(session.save_checkpoint(tmp_path / "alone"))
    assert session.model_history() is None
    run = _train_run(session, tmp_path / "run")
    follower = session.follow_run(run)
    assert session.model_history() is None  # following shows the run live instead
    assert [r["step"] for r in session.poll_run(follower).records] == [0, 1, 2, 3]
    assert not run_is_finished(tmp_path / "alone") and not run_is_finished(tmp_path / "missing")
