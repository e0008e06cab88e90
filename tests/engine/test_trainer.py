"""The step-wise trainer: loss at init, learning, resume equality, NaN guard, probes, schedule, state files."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from gptviz.config import GPTConfig
from gptviz.data import builtin_text, encode_corpus, split_ids
from gptviz.engine.checkpoint import load_checkpoint, load_trainer_state, read_checkpoint_meta
from gptviz.engine.probe import read_probes
from gptviz.engine.rundir import read_metrics, read_settings
from gptviz.engine.train_optimizer import build_optimizer
from gptviz.engine.train_results import TrainingDiverged
from gptviz.engine.train_settings import TrainSettings
from gptviz.engine.trainer import Trainer
from gptviz.errors import ConfigError, DataError
from gptviz.model.gpt import GPTModel
from gptviz.tokenizer import default_tokenizer

# A 1024-token vocabulary keeps the output layer cheap; the corpus ids are folded into it (ids % 1024).
SMALL = GPTConfig(
    vocab_size=1024, context_length=16, emb_dim=32, n_heads=4, n_layers=2, drop_rate=0.0, name="small"
)
PROMPT = "a,b."  # single-byte tokens, inside the small vocabulary


@pytest.fixture(scope="module")
def tokenizer():
    return default_tokenizer()


@pytest.fixture(scope="module")
def corpus_ids(tokenizer):
    """The built-in corpus, tokenized once for the module: (train ids, validation ids)."""
    return split_ids(encode_corpus(tokenizer, builtin_text()), 0.1)


@pytest.fixture(scope="module")
def short_ids(corpus_ids):
    """A slice of the built-in corpus folded into the small vocabulary: a few hundred windows of 16 tokens."""
    train, val = corpus_ids
    return train[:6000] % SMALL.vocab_size, val[:1000] % SMALL.vocab_size


def make_trainer(tokenizer, ids, run_dir=None, cfg=SMALL, seed=7, **settings) -> Trainer:
    torch.manual_seed(seed)
    model = GPTModel(cfg)
    defaults = dict(
        lr=3e-3, batch_size=2, steps=20, eval_freq=5, eval_iter=1, probe_tokens=4, probe_prompt=PROMPT
    )
    defaults.update(settings)
    return Trainer(
        model, tokenizer, ids[0], ids[1], TrainSettings(**defaults), run_dir, corpus={"name": "slice"}
    )


# ---------------------------------------------------------------------------------------------- settings


@pytest.mark.parametrize(
    "changes",
    [
        {"batch_size": 0},
        {"steps": 5, "epochs": 2},
        {"lr": -1.0},
        {"eval_freq": 0},
        {"context": 0},
        {"val_ratio": 1.0},
        {"device": "tpu"},
        {"save_dtype": "int8"},
        {"probe_prompt": ""},
        {"grad_clip": -1.0},
    ],
)
def test_settings_refuse_impossible_values(changes):
    with pytest.raises(ConfigError):
        TrainSettings(**changes)


def test_context_longer_than_model_is_a_clear_error(tokenizer, short_ids):
    with pytest.raises(ConfigError, match="longer than the model's context length 16"):
        make_trainer(tokenizer, short_ids, context=32)


def test_too_little_text_for_one_batch_is_a_data_error(tokenizer, short_ids):
    with pytest.raises(DataError, match="fewer than one batch"):
        make_trainer(tokenizer, (short_ids[0][:40], short_ids[1]), batch_size=8)


def test_warmup_and_cosine_schedule():
    s = TrainSettings(lr=1e-3, warmup_steps=4, cosine=True, min_lr=1e-4)
    assert [s.lr_at(i, 14) for i in range(4)] == pytest.approx([2.5e-4, 5e-4, 7.5e-4, 1e-3])
    assert s.lr_at(4, 14) == pytest.approx(1e-3)
    assert s.lr_at(9, 14) == pytest.approx(1e-4 + 0.9e-3 * 0.5)  # half way through the decay
    assert s.lr_at(14, 14) == pytest.approx(1e-4)
    assert TrainSettings(lr=1e-3).lr_at(50, 100) == 1e-3  # flat without cosine
    assert TrainSettings(lr=1e-3, cosine=True).floor_lr == pytest.approx(1e-4)


def test_weight_decay_only_on_matrices_and_fused_on_cpu():
    model = GPTModel(SMALL)
    opt = build_optimizer(model, 1e-3, 0.1)
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.dim() >= 2 for p in decay["params"]) and all(p.dim() < 2 for p in no_decay["params"])
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))
    assert opt.defaults["fused"] is True  # torch 2.13 has a fused AdamW kernel on CPU


# ---------------------------------------------------------------------------------------------- learning


def test_untrained_loss_is_close_to_ln_vocab(tokenizer, corpus_ids):
    cfg = SMALL.replace(vocab_size=50257)
    trainer = make_trainer(
        tokenizer, corpus_ids, cfg=cfg, eval_iter=2, batch_size=4, probe_prompt="Every effort"
    )
    train_loss, val_loss = trainer.evaluate()
    assert abs(train_loss - math.log(50257)) < 0.3
    assert abs(val_loss - math.log(50257)) < 0.3


def test_short_run_on_builtin_corpus_lowers_loss_by_two(tokenizer, corpus_ids):
    cfg = GPTConfig(context_length=32, emb_dim=32, n_heads=4, n_layers=2, drop_rate=0.0)
    trainer = make_trainer(
        tokenizer,
        corpus_ids,
        cfg=cfg,
        lr=5e-3,
        batch_size=8,
        steps=15,
        eval_freq=15,
        eval_iter=2,
        probe_tokens=0,
        probe_prompt="Every effort moves you",
    )
    _, start_val = trainer.evaluate()
    results = [trainer.step() for _ in range(15)]
    assert results[-1].done
    assert start_val - results[-1].val_loss > 2.0
    assert results[-1].perplexity == pytest.approx(math.exp(results[-1].val_loss))


def test_step_results_count_tokens_and_evaluate_on_schedule(tokenizer, short_ids):
    trainer = make_trainer(tokenizer, short_ids, steps=6, eval_freq=3)
    results = [trainer.step() for _ in range(6)]
    assert [r.step for r in results] == [1, 2, 3, 4, 5, 6]
    assert [r.tokens_seen for r in results] == [32 * i for i in range(1, 7)]  # batch 2 x 16 tokens
    assert [r.val_loss is not None for r in results] == [True, False, True, False, False, True]
    assert [r.probe is not None for r in results] == [True, False, True, False, False, True]
    assert [r.done for r in results] == [False] * 5 + [True]
    assert all(r.total_steps == 6 and r.lr == 3e-3 for r in results)
    with pytest.raises(ConfigError, match="finished"):
        trainer.step()


def test_epochs_set_the_length_of_the_run(tokenizer, short_ids):
    trainer = make_trainer(tokenizer, short_ids, steps=None, epochs=2, batch_size=64)
    windows = len(trainer.batches.train_windows)
    assert trainer.batches_per_epoch == windows // 64
    assert trainer.total_steps == 2 * (windows // 64)


def test_one_epoch_visits_every_window_once_in_shuffled_order(tokenizer, short_ids):
    trainer = make_trainer(tokenizer, short_ids, batch_size=4)
    order = trainer.batches.epoch_order(0)
    assert torch.equal(order.sort().values, torch.arange(len(trainer.batches.train_windows)))
    assert not torch.equal(order, torch.arange(len(trainer.batches.train_windows)))
    assert not torch.equal(order, trainer.batches.epoch_order(1))  # a new order every epoch
    for step in (0, 5):
        inputs, targets = trainer.batches.for_step(step)  # (4, 16), (4, 16)
        for row in range(4):
            x, y = trainer.batches.train_windows[int(order[step * 4 + row])]
            assert torch.equal(inputs[row], x) and torch.equal(targets[row], y)
    first_of_epoch_1 = trainer.batches.for_step(trainer.batches_per_epoch)[0]  # (4, 16)
    assert torch.equal(
        first_of_epoch_1[0], trainer.batches.train_windows[int(trainer.batches.epoch_order(1)[0])][0]
    )


# ---------------------------------------------------------------------------------------------- resume


def test_twenty_steps_equal_ten_plus_resume_plus_ten(tmp_path, tokenizer, short_ids):
    """Dropout, shuffling, warm-up and cosine all on: resume must restore RNG, optimizer and schedule."""
    cfg = SMALL.replace(drop_rate=0.2)
    opts = dict(cfg=cfg, steps=20, eval_freq=7, warmup_steps=3, cosine=True)
    straight = make_trainer(tokenizer, short_ids, tmp_path / "a", **opts)
    losses = []
    for _ in range(20):
        losses.append(straight.step().train_loss)
        torch.rand(3)  # someone else using the global RNG between steps must not change training

    first = make_trainer(tokenizer, short_ids, tmp_path / "b", **opts)
    resumed_losses = [first.step().train_loss for _ in range(10)]
    first.save()
    first.close()
    del first
    second = Trainer.resume(tmp_path / "b", tokenizer=tokenizer, train_ids=short_ids[0], val_ids=short_ids[1])
    assert second.step_count == 10 and second.tokens_seen == 10 * 32
    resumed_losses += [second.step().train_loss for _ in range(10)]
    assert np.allclose(resumed_losses, losses, atol=1e-5, rtol=0)
    assert losses[10] != losses[9]  # the numbers compared are not trivially equal
    steps = [m["step"] for m in read_metrics(tmp_path / "b")]
    assert steps == list(range(0, 21))  # step 0: the untrained model's evaluation
    for a, b in zip(straight.model.parameters(), second.model.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-6)


def test_float16_checkpoint_resumes_from_exact_fp32_weights(tmp_path, tokenizer, short_ids):
    opts = dict(steps=8, eval_freq=4, save_dtype="float16")
    straight = make_trainer(tokenizer, short_ids, **opts)
    losses = [straight.step().train_loss for _ in range(8)]
    first = make_trainer(tokenizer, short_ids, tmp_path, **opts)
    for _ in range(4):
        first.step()  # step 4 is an evaluation: checkpoint written
    first.close()
    assert json.loads((tmp_path / "checkpoint" / "config.json").read_text())["dtype"] == "float16"
    second = Trainer.resume(tmp_path, tokenizer=tokenizer, train_ids=short_ids[0], val_ids=short_ids[1])
    rest = [second.step().train_loss for _ in range(4)]
    assert np.allclose(rest, losses[4:], atol=1e-5, rtol=0)


def test_resume_refuses_a_changed_corpus_and_data_settings(tmp_path, tokenizer, short_ids):
    trainer = make_trainer(tokenizer, short_ids, tmp_path, steps=2, eval_freq=1)
    trainer.step()
    trainer.close()
    with pytest.raises(DataError, match="changed"):
        Trainer.resume(tmp_path, tokenizer=tokenizer, train_ids=short_ids[0][1:], val_ids=short_ids[1])
    with pytest.raises(ConfigError, match="batch_size"):
        Trainer.resume(tmp_path, train_ids=short_ids[0], val_ids=short_ids[1], batch_size=4)
    more = Trainer.resume(tmp_path, train_ids=short_ids[0], val_ids=short_ids[1], steps=5, lr=1e-3)
    assert (more.total_steps, more.step_count, more.settings.lr) == (5, 1, 1e-3)


def test_run_directory_contents(tmp_path, tokenizer, short_ids):
    trainer = make_trainer(tokenizer, short_ids, tmp_path, steps=5, eval_freq=2)
    results = [trainer.step() for _ in range(5)]
    metrics = read_metrics(tmp_path)
    assert [m["step"] for m in metrics] == [0, 1, 2, 3, 4, 5]
    untrained = metrics.pop(0)  # evaluated before the first step: losses, no batch or gradient yet
    assert untrained["tokens_seen"] == 0 and "train_loss" not in untrained and "grad_norm" not in untrained
    assert math.isfinite(untrained["val_loss"]) and untrained["val_loss"] > metrics[-1]["val_loss"]
    for m in metrics:
        assert {"step", "tokens_seen", "train_loss", "lr", "tokens_per_s", "elapsed_s", "world_size"} <= set(
            m
        )
        assert m["world_size"] == 1
    assert [("val_loss" in m) for m in metrics] == [True, True, False, True, True]
    assert [r.checkpoint_saved for r in results] == [
        False,
        True,
        False,
        True,
        True,
    ]  # evaluated at 1, saved not
    assert metrics[-1]["val_loss"] == pytest.approx(results[-1].val_loss)
    settings = read_settings(tmp_path)
    assert settings["train"]["steps"] == 5 and settings["model"]["emb_dim"] == 32
    model, meta = load_checkpoint(tmp_path / "checkpoint")
    assert meta["step"] == 5 and model.cfg == SMALL
    for a, b in zip(model.parameters(), trainer.model.parameters(), strict=True):
        assert torch.equal(a, b)
    state = load_trainer_state(tmp_path / "checkpoint")  # torch.load(weights_only=True) inside
    assert state["step"] == 5 and state["rng_cpu"].dtype == torch.uint8
    assert "state" in state["optimizer"] and state["optimizer"]["param_groups"][0]["weight_decay"] == 0.1


def test_refuses_to_start_over_an_existing_run(tmp_path, tokenizer, short_ids):
    make_trainer(tokenizer, short_ids, tmp_path, steps=1).step()
    with pytest.raises(ConfigError, match="already holds a run"):
        make_trainer(tokenizer, short_ids, tmp_path)


# ---------------------------------------------------------------------------------------------- divergence


def test_nan_loss_stops_training_and_keeps_the_last_good_weights(tmp_path, tokenizer, short_ids):
    trainer = make_trainer(tokenizer, short_ids, tmp_path, steps=20, eval_freq=4)
    for _ in range(6):
        trainer.step()
    good = {k: v.clone() for k, v in load_checkpoint(tmp_path / "checkpoint")[0].state_dict().items()}
    with torch.no_grad():
        trainer.model.blocks[0].ff.fc1.weight[0, 0] = float("nan")  # what a too-large update leaves behind
    with pytest.raises(TrainingDiverged, match="became nan at step 7.*weights of step 4"):
        trainer.step()
    assert trainer.step_count == 4 and trainer.tokens_seen == 4 * 32
    for key, value in trainer.model.state_dict().items():
        assert torch.equal(value, good[key]), key
    assert read_checkpoint_meta(tmp_path / "checkpoint")["step"] == 4
    assert read_metrics(tmp_path)[-1]["event"] == "diverged"
    with pytest.raises(TrainingDiverged):
        trainer.step()  # stays stopped


def test_huge_learning_rate_diverges_in_memory_and_rolls_back(tokenizer, short_ids):
    """lr 10 does not overflow here (Adam bounds each update, LayerNorm rescales); lr 1e30 does."""
    trainer = make_trainer(tokenizer, short_ids, lr=1e30, grad_clip=0.0, steps=30, eval_freq=1)
    with pytest.raises(TrainingDiverged, match="learning rate 1e\\+30") as caught:
        for _ in range(30):
            trainer.step()
    assert "weights of step 0 were kept" in str(caught.value)
    assert trainer.step_count == 0
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())
    train_loss, _ = trainer.evaluate()
    assert abs(train_loss - math.log(SMALL.vocab_size)) < 0.3  # back to the untrained weights


def test_ids_outside_the_vocabulary_are_refused(tokenizer, short_ids):
    with pytest.raises(DataError, match="outside this model's vocabulary"):
        make_trainer(tokenizer, (short_ids[0] + 1024, short_ids[1]))
    with pytest.raises(ConfigError, match="probe prompt"):
        make_trainer(tokenizer, short_ids, probe_prompt="Every effort moves you")


# ---------------------------------------------------------------------------------------------- probes


def test_probes_are_recorded_at_each_evaluation_and_read_back(tmp_path, tokenizer, short_ids):
    trainer = make_trainer(tokenizer, short_ids, tmp_path, steps=4, eval_freq=2, probe_tokens=5)
    results = [trainer.step() for _ in range(4)]
    probes = read_probes(tmp_path)
    assert [p.step for p in probes] == [0, 1, 2, 4]  # the untrained model, then every evaluation
    last = results[-1].probe
    stored = probes[-1]
    assert stored.prompt_ids == last.prompt_ids == tuple(tokenizer.encode(PROMPT))
    assert len(last.sample_ids) == 5 and last.sample_text == tokenizer.decode(list(last.sample_ids))
    assert stored.sample_text == last.sample_text and stored.top_ids == last.top_ids
    assert len(last.top_ids) == 10 and list(last.top_probs) == sorted(last.top_probs, reverse=True)
    assert last.top_pieces[0] == tokenizer.piece(last.top_ids[0])
    assert 0 < sum(last.top_probs) <= 1.0 + 1e-6
    T = len(last.prompt_ids)
    assert last.attention.shape == (2, 4, T, T) and last.attention.dtype == np.float32
    assert np.allclose(last.attention.sum(-1), 1.0, atol=1e-5)
    assert np.allclose(np.triu(last.attention, k=1), 0.0)  # causal
    assert np.allclose(stored.attention, last.attention, atol=1e-3)  # float16 on disk
    assert read_probes(tmp_path, attention=False)[0].attention is None
