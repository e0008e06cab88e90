"""The trainer's parts on their own: its private generator, which windows it reads, how an evaluation turns
batches into a loss, and what it writes into and reads back from a run directory."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from gptviz.config import GPTConfig
from gptviz.engine.distributed import SINGLE, DistInfo
from gptviz.engine.train_batches import TrainBatches, eval_indices
from gptviz.engine.train_eval import batch_mean_loss, eval_mode, token_mean_loss, written_out_attention
from gptviz.engine.train_results import StepResult
from gptviz.engine.train_rng import PrivateRng
from gptviz.engine.train_rundir import MemorySnapshot, metrics_record, resume_settings
from gptviz.engine.train_settings import TrainSettings
from gptviz.errors import ConfigError, DataError
from gptviz.model.gpt import GPTModel

CPU = torch.device("cpu")
TINY = GPTConfig(vocab_size=64, context_length=8, emb_dim=16, n_heads=2, n_layers=2, drop_rate=0.1, name="t")


def batches_of(ids: torch.Tensor, **settings) -> TrainBatches:
    s = TrainSettings(**{"batch_size": 2, "eval_iter": 2, "seed": 5, **settings})
    return TrainBatches(ids, ids[:40], 8, 8, s, SINGLE, CPU, PrivateRng(CPU, 5))


# ---------------------------------------------------------------------------------------------- generator


def test_the_private_generator_leaves_the_global_one_alone_and_continues_where_it_stopped():
    rng = PrivateRng(CPU, 11)
    torch.manual_seed(0)
    global_before = torch.get_rng_state()
    with rng.active():
        first = torch.rand(3)  # (3,)
    assert torch.equal(torch.get_rng_state(), global_before)
    with rng.active():
        second = torch.rand(3)  # (3,)
    torch.manual_seed(11)
    assert torch.equal(torch.cat([first, second]), torch.rand(6))  # one stream, as if never interrupted
    rng.reseed(11)
    with rng.active():
        assert torch.equal(torch.rand(3), first)


# ---------------------------------------------------------------------------------------------- batches


def test_evaluation_windows_are_spread_evenly_and_never_repeat():
    assert eval_indices(10, 2, 2).tolist() == [0, 3, 6, 9]
    assert eval_indices(3, 5, 2).tolist() == [0, 1, 2]  # fewer windows than asked for: each once


def test_a_step_reads_the_windows_of_its_place_in_the_epochs_order():
    ids = torch.arange(200) % 64  # (200,)
    batches = batches_of(ids)
    assert batches.per_epoch == len(batches.train_windows) // 2
    inputs, targets = batches.for_step(1)  # (2, 8), (2, 8)
    window = int(batches.epoch_order(0)[2])
    assert torch.equal(inputs[0], ids[window * 8 : window * 8 + 8])
    assert torch.equal(targets[0], ids[window * 8 + 1 : window * 8 + 9])
    assert torch.equal(batches.for_step(1)[0], inputs)  # the step alone decides


def test_under_the_book_protocol_only_the_current_epochs_batches_exist():
    batches = batches_of(torch.arange(200) % 64, eval_protocol="book")
    batches.for_training_step(0)  # draws epoch 0's order
    with pytest.raises(ConfigError, match="drawn when training reaches it"):
        batches.for_step(batches.per_epoch)


def test_reading_every_batch_in_order_drops_only_a_short_last_one_when_asked():
    batches = batches_of(torch.arange(60) % 64)  # 7 training windows of 8
    assert [b[0].shape[0] for b in batches.in_order(batches.train_windows, drop_last=True)] == [2, 2, 2]
    assert [b[0].shape[0] for b in batches.in_order(batches.train_windows, drop_last=False)] == [2, 2, 2, 1]


def test_too_short_a_validation_split_is_a_data_error():
    s = TrainSettings(batch_size=2)
    with pytest.raises(DataError, match="the validation split has 5 tokens"):
        TrainBatches(torch.arange(100), torch.arange(5), 8, 8, s, SINGLE, CPU, PrivateRng(CPU, 1))


def test_one_batch_per_process_is_the_least_a_distributed_run_needs():
    s = TrainSettings(batch_size=4)
    two = DistInfo(rank=0, world_size=2, local_rank=0)
    with pytest.raises(DataError, match=r"fewer than one batch of 4 per process \(2 processes\)"):
        TrainBatches(torch.arange(60), None, 8, 8, s, two, CPU, PrivateRng(CPU, 1))


# ---------------------------------------------------------------------------------------------- evaluation


def test_the_two_means_differ_exactly_by_how_a_short_batch_weighs():
    torch.manual_seed(3)
    model = GPTModel(TINY).eval()
    ids = torch.randint(0, 64, (3, 9))  # (3, 9)
    full, short = (ids[:2, :-1], ids[:2, 1:]), (ids[2:, :-1], ids[2:, 1:])  # (2, 8) and (1, 8) pairs

    def loss(batch):
        return F.cross_entropy(model(batch[0]).flatten(0, 1), batch[1].flatten()).item()

    no_autocast = lambda: torch.autocast("cpu", enabled=False)  # noqa: E731
    by_batch = batch_mean_loss(model, [full, short], no_autocast)
    by_token = token_mean_loss(model, [full, short], no_autocast, SINGLE, CPU)
    assert by_batch == pytest.approx((loss(full) + loss(short)) / 2, abs=1e-6)
    assert by_token == pytest.approx((2 * loss(full) + loss(short)) / 3, abs=1e-6)
    assert token_mean_loss(model, [], no_autocast, SINGLE, CPU) is None


def test_evaluation_puts_the_models_mode_and_attention_path_back():
    model = GPTModel(TINY).train()
    model.set_fused_attention(True)
    with eval_mode(model), written_out_attention(model, True):
        assert not model.training
        assert not any(block.attn.use_fused for block in model.blocks)
    assert model.training and all(block.attn.use_fused for block in model.blocks)
    with written_out_attention(model, False):
        assert all(block.attn.use_fused for block in model.blocks)


# ---------------------------------------------------------------------------------------------- run directory


def _result(step: int, evaluated: bool) -> StepResult:
    return StepResult(
        step=step, epoch=0, tokens_seen=16 * step, train_loss=math.nan if step == 0 else 2.5,
        val_loss=3.0 if evaluated else None, train_eval_loss=2.9 if evaluated else None,
        perplexity=math.exp(3.0) if evaluated else None, lr=1e-3, grad_norm=math.nan if step == 0 else 0.7,
        tokens_per_s=0.0 if step == 0 else 900.0, elapsed_s=1.0, total_steps=4, eta_s=math.nan, done=False,
    )  # fmt: skip


def test_a_metrics_line_has_an_evaluations_losses_and_step_0_has_no_batch_numbers():
    line = metrics_record(_result(2, evaluated=False), world_size=1)
    assert line["train_loss"] == 2.5 and line["grad_norm"] == 0.7 and "val_loss" not in line
    start = metrics_record(_result(0, evaluated=True), world_size=1)
    assert not {"train_loss", "grad_norm", "tokens_per_s"} & set(start)
    assert (start["val_loss"], start["train_eval_loss"]) == (3.0, 2.9)


def test_a_resume_may_change_only_what_does_not_decide_the_data():
    recorded = {"train": TrainSettings(epochs=3, lr=1e-3).to_dict()}
    more = resume_settings(recorded, {"steps": 50, "lr": 5e-4, "amp": None})
    assert (more.steps, more.epochs, more.lr) == (50, None, 5e-4)  # a None override keeps the recorded value
    with pytest.raises(ConfigError, match="cannot change batch_size, seed"):
        resume_settings(recorded, {"seed": 1, "batch_size": 4, "lr": 1e-4})


def test_the_memory_snapshot_is_unchanged_by_training_on():
    model = GPTModel(TINY)
    snapshot = MemorySnapshot.take(model, {"step": 3, "nested": {"lr": [1e-3]}})
    kept = model.out_head.weight.detach().clone()  # (V, D)
    with torch.no_grad():
        model.out_head.weight.add_(1.0)
    state = snapshot.restore(model)
    state["nested"]["lr"].append(0.0)  # the copy handed out is the caller's to change
    assert torch.equal(model.out_head.weight, kept)
    assert snapshot.restore(model) == {"step": 3, "nested": {"lr": [1e-3]}}
