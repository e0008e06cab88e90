"""`--recipe book-ch5`: the book's chapter 5 run, checked against the book's own loop and initial weights.

The yardstick is gptviz.model.book_reference: the book's GPTModel, create_dataloader_v1 and
train_model_simple (ch. 2, 4 and 5 of "Build a Large Language Model (From Scratch)"), run in the book's
order by `book_ch5_run`.
"""

from __future__ import annotations

import hashlib
import json
import math

import pytest
import torch

from gptviz.cli import main
from gptviz.config import count_params
from gptviz.data import VERDICT, encode_corpus, load_corpus, read_split_ids, split_text
from gptviz.engine.export import book_state_dict
from gptviz.engine.rundir import read_metrics, read_settings
from gptviz.engine.train_batches import TrainBatches
from gptviz.engine.train_optimizer import build_optimizer
from gptviz.engine.train_settings import BOOK_CH5, TrainSettings, recipe
from gptviz.engine.trainer import Trainer
from gptviz.errors import ConfigError
from gptviz.model import book_reference as br
from gptviz.model.book_init import book_init_rng_state
from gptviz.model.gpt import GPTModel
from gptviz.resources import VERDICT_FILE, VERDICT_NOTE_FILE, VERDICT_SHA256_FILE
from gptviz.tokenizer import default_tokenizer

# A small GPT with the book's vocabulary: 2 layers, width 64, context 32, dropout 0.1 as in the book.
SMALL = {"context_length": 32, "emb_dim": 64, "n_heads": 4, "n_layers": 2}
SHORT_CHARS = 6000  # about 1,500 tokens: 41 training windows of 32, 20 steps an epoch


@pytest.fixture(scope="module")
def tokenizer():
    return default_tokenizer()


@pytest.fixture(scope="module")
def short_text() -> str:
    return load_corpus(VERDICT).text[:SHORT_CHARS]


def small_trainer(tokenizer, text: str, run_dir=None, **changes) -> Trainer:
    """The recipe at the small size: the book's settings with the context (and window stride) shortened."""
    cfg = BOOK_CH5.config(**SMALL)
    settings = BOOK_CH5.settings(context=32, stride=32, probe_tokens=2, **changes)
    train_text, val_text = split_text(text, settings.val_ratio)
    train, val = encode_corpus(tokenizer, train_text), encode_corpus(tokenizer, val_text)  # (N_t,), (N_v,)
    return Trainer(GPTModel(cfg), tokenizer, train, val, settings, run_dir)


def evaluations(trainer: Trainer) -> list[tuple[int, float, float]]:
    out = []
    while not trainer.done:
        result = trainer.step()
        if result.val_loss is not None:
            out.append((result.step, result.train_eval_loss, result.val_loss))
    return out


@pytest.fixture(scope="module")
def book_losses(tokenizer, short_text):
    """The book's own loop on the short text at the small size: 2 epochs, evaluation every 5 steps."""
    cfg = {"vocab_size": 50257, "drop_rate": 0.1, "qkv_bias": False, **SMALL}
    train_losses, val_losses, _ = br.book_ch5_run(short_text, tokenizer.encoding, cfg, num_epochs=2)
    return train_losses, val_losses


def test_the_verdict_is_bundled_with_its_note(tokenizer):
    raw = VERDICT_FILE.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    assert digest == VERDICT_SHA256_FILE.read_text().split()[0]
    assert digest == "b41e41a68f0398a3154ae69e2e4c0e2694e17fe0d66730536837f1b01935b31f"  # the book's copy
    note = VERDICT_NOTE_FILE.read_text()
    assert "Edith Wharton" in note and "public domain" in note and "0.569, 6.373" in note
    text = load_corpus(VERDICT).text
    assert len(text) == 20479 and len(tokenizer.encode(text)) == 5145  # as the book prints them


def test_char_split_tokenizes_each_part_as_the_book_does(tokenizer):
    parts = read_split_ids(VERDICT, tokenizer, 0.1, "chars")
    text = load_corpus(VERDICT).text
    cut = int(0.90 * len(text))  # the book's split_idx
    assert parts.train.tolist() == tokenizer.encode(text[:cut])
    assert parts.val.tolist() == tokenizer.encode(text[cut:])
    by_tokens = read_split_ids(VERDICT, tokenizer, 0.1, "tokens")
    assert by_tokens.train.numel() + by_tokens.val.numel() == 5145
    assert parts.train.numel() + parts.val.numel() != 5145  # the cut falls inside a word: one token more
    # The book's chapter 5 loaders over these parts: 9 training batches of 2 x 256, one validation window.
    windows = br.GPTDatasetV1(text[:cut], tokenizer.encoding, 256, 256)
    assert len(windows) == 18 and (parts.train.numel() - 257) // 256 + 1 == 18


def test_recipe_equals_the_books_own_loop(tokenizer, short_text, book_losses):
    """Every evaluation of two epochs: the same weights, batches, dropout masks and evaluation batches."""
    train_ref, val_ref = book_losses
    mine = evaluations(small_trainer(tokenizer, short_text, epochs=2))
    assert [step for step, _, _ in mine] == list(range(1, 41, 5))  # the book's Step 0, 5, ..., 35
    assert len(mine) == len(train_ref) == 8
    for (step, train, val), train_book, val_book in zip(mine, train_ref, val_ref, strict=True):
        assert abs(train - train_book) <= 1e-4, (step, train, train_book)
        assert abs(val - val_book) <= 1e-4, (step, val, val_book)
    assert train_ref[-1] < train_ref[0] - 0.3  # it learns: the comparison is not between two flat lines


def test_the_untrained_models_losses_are_the_books_before_training(tokenizer, short_text):
    """Step 0 is the book's `calc_loss_loader` over the whole of each loader before training (the chapter's
    10.988 / 10.981 at full size), on the book's own model from the same seed; it draws no random numbers,
    so the steps after it keep the book's losses (test_recipe_equals_the_books_own_loop runs with it)."""
    trainer = small_trainer(tokenizer, short_text, epochs=1)
    rng_before = trainer.rng.cpu.clone()
    first = trainer.start()
    assert torch.equal(trainer.rng.cpu, rng_before)
    assert first.step == 0 and math.isnan(first.train_loss) and trainer.start() is None
    cfg = {"vocab_size": 50257, "drop_rate": 0.1, "qkv_bias": False, **SMALL}
    train_text, val_text = split_text(short_text, 0.1)
    torch.manual_seed(123)
    model = br.GPTModel(cfg).eval()
    loaders = [
        br.create_dataloader_v1(part, tokenizer.encoding, batch_size=2, max_length=32, stride=32,
                                drop_last=drop, shuffle=False)
        for part, drop in ((train_text, True), (val_text, False))
    ]  # fmt: skip
    with torch.no_grad():
        train_book, val_book = (br.calc_loss_loader(loader, model, torch.device("cpu")) for loader in loaders)
    assert abs(first.train_eval_loss - train_book) <= 1e-5, (first.train_eval_loss, train_book)
    assert abs(first.val_loss - val_book) <= 1e-5, (first.val_loss, val_book)
    assert first.val_loss > 10.0  # untrained: about ln(50257) = 10.8


def test_one_random_draw_out_of_place_breaks_the_match(tokenizer, short_text, book_losses, monkeypatch):
    """The comparison above can fail: one extra draw before the first epoch changes the losses by ~1e-2."""
    drawn = TrainBatches.book_epoch_order

    def with_extra_draw(self):
        with self.rng.active():
            torch.empty((), dtype=torch.int64).random_()
        return drawn(self)

    monkeypatch.setattr(TrainBatches, "book_epoch_order", with_extra_draw)
    mine = evaluations(small_trainer(tokenizer, short_text, epochs=2))
    worst = max(abs(m[1] - b) for m, b in zip(mine, book_losses[0], strict=True))
    assert worst > 1e-3


def test_a_resumed_book_run_continues_with_the_same_losses(tokenizer, short_text, tmp_path):
    """Resumed in the middle of epoch 0 (its order comes from the checkpoint), then into epoch 1 (drawn from
    the restored generator)."""
    straight = evaluations(small_trainer(tokenizer, short_text, steps=25))
    run = tmp_path / "run"
    first = small_trainer(tokenizer, short_text, run, steps=25)
    assert first.batches_per_epoch == 20
    while first.step_count < 10:  # a checkpoint at step 10
        first.step()
    first.close()
    train, val = first.batches.train_ids, first.batches.val_ids
    del first
    resumed = Trainer.resume(run, tokenizer=tokenizer, train_ids=train, val_ids=val)
    assert resumed.step_count == 10
    later = evaluations(resumed)
    assert later == [e for e in straight if e[0] > 10]
    records = [r for r in read_metrics(run) if "val_loss" in r]
    assert records[0]["step"] == 0 and "train_loss" not in records[0]  # the untrained model, before step 1
    records = records[1:]
    assert [r["step"] for r in records] == [e[0] for e in straight]


def test_124m_initial_weights_are_the_books_bit_for_bit(tokenizer):
    cfg = BOOK_CH5.config()
    assert (cfg.context_length, cfg.tie_weights, cfg.qkv_bias, cfg.drop_rate) == (256, False, False, 0.1)
    # 163,009,536 is the book's ch. 4 count at context 1024; its ch. 5 model at context 256 has 589,824
    # fewer position-embedding weights.
    assert count_params(cfg.replace(context_length=1024)) == 163_009_536
    assert count_params(cfg) == 162_419_712
    model = GPTModel(cfg)
    assert model.num_parameters() == 162_419_712
    rng_after = book_init_rng_state(model, 123)
    mine = book_state_dict(model)
    del model
    torch.manual_seed(123)
    book = br.GPTModel({"vocab_size": 50257, "context_length": 256, "emb_dim": 768, "n_heads": 12,
                        "n_layers": 12, "drop_rate": 0.1, "qkv_bias": False})  # fmt: skip
    assert sum(p.numel() for p in book.parameters()) == 162_419_712
    assert torch.equal(torch.get_rng_state(), rng_after)  # the generator stands where the book leaves it
    theirs = book.state_dict()
    for name in ("tok_emb.weight", "pos_emb.weight", "trf_blocks.0.att.W_query.weight",
                 "trf_blocks.0.att.W_value.weight", "trf_blocks.5.att.out_proj.bias",
                 "trf_blocks.11.ff.layers.2.weight", "trf_blocks.11.norm2.scale", "out_head.weight"):  # fmt: skip
        assert torch.equal(mine[name], theirs[name]), name


def test_the_trainer_draws_the_book_init_only_for_a_fresh_run(tokenizer, short_text):
    trainer = small_trainer(tokenizer, short_text, steps=1)
    torch.manual_seed(123)
    book = br.GPTModel({"vocab_size": 50257, "drop_rate": 0.1, "qkv_bias": False, **SMALL})
    assert torch.equal(book_state_dict(trainer.model)["trf_blocks.1.ff.layers.0.weight"],
                       book.state_dict()["trf_blocks.1.ff.layers.0.weight"])  # fmt: skip
    gpt2 = small_trainer(tokenizer, short_text, steps=1, init="gpt2")
    assert float(gpt2.model.tok_emb.weight.detach().std()) == pytest.approx(
        0.02, rel=0.05
    )  # GPT-2's N(0, 0.02)


def test_decay_all_is_one_group_and_matrices_two():
    model = GPTModel(BOOK_CH5.config(**SMALL))
    every = build_optimizer(model, 4e-4, 0.1, decay="all")
    assert len(every.param_groups) == 1 and every.param_groups[0]["weight_decay"] == 0.1
    assert len(every.param_groups[0]["params"]) == len(list(model.parameters()))
    split = build_optimizer(model, 4e-4, 0.1)
    assert [g["weight_decay"] for g in split.param_groups] == [0.1, 0.0]
    assert all(p.dim() < 2 for p in split.param_groups[1]["params"])


def test_recipe_settings_and_refusals():
    settings = BOOK_CH5.settings()
    assert (settings.lr, settings.weight_decay, settings.batch_size, settings.epochs) == (4e-4, 0.1, 2, 10)
    assert (settings.grad_clip, settings.warmup_steps, settings.split, settings.init) == (
        0.0,
        0,
        "chars",
        "book",
    )
    assert (settings.decay, settings.eval_protocol, settings.seed) == ("all", "book", 123)
    assert BOOK_CH5.settings(steps=3).epochs is None  # steps replace the recipe's epochs
    with pytest.raises(ConfigError, match="unknown recipe"):
        recipe("book-ch6")
    for field, value in (("split", "words"), ("init", "xavier"), ("decay", "some"), ("eval_protocol", "x")):
        with pytest.raises(ConfigError, match=field):
            TrainSettings(**{field: value})


def test_book_protocol_refuses_asking_ahead_for_an_undrawn_epoch(tokenizer, short_text):
    trainer = small_trainer(tokenizer, short_text, epochs=2)
    trainer.step()
    trainer.batches.for_step(3)  # this epoch's order exists
    with pytest.raises(ConfigError, match="drawn when training reaches it"):
        trainer.batches.for_step(trainer.batches_per_epoch)


def test_cli_recipe_is_the_sum_of_its_switches(tmp_path, capsys):
    """`--recipe book-ch5` and the same run spelled with the switches write the same metrics."""
    small = ["--preset", "tiny", "--context", "32", "--stride", "32", "--steps", "2", "--quiet"]
    assert main(["train", "--recipe", "book-ch5", *small, "--out", str(tmp_path / "a")]) == 0
    switches = ["--corpus", "the-verdict", "--untied-head", "--split", "chars", "--init", "book", "--decay",
                "all", "--grad-clip", "0", "--eval-protocol", "book", "--batch-size", "2", "--lr", "4e-4",
                "--weight-decay", "0.1", "--eval-freq", "5", "--eval-iter", "5", "--seed", "123"]  # fmt: skip
    assert main(["train", *switches, *small, "--out", str(tmp_path / "b")]) == 0
    capsys.readouterr()
    a, b = read_metrics(tmp_path / "a"), read_metrics(tmp_path / "b")
    assert [r.get("train_loss") for r in a] == [r.get("train_loss") for r in b]
    assert [r["step"] for r in a] == [0, 1, 2]  # 0: the untrained model, evaluated before training
    assert a[1]["val_loss"] == b[1]["val_loss"] and "val_loss" not in a[2]  # evaluated after step 1 only
    settings = read_settings(tmp_path / "a")
    assert settings["model"]["tie_weights"] is False and settings["corpus"]["source"] == "the-verdict"
    assert {k: settings["train"][k] for k in ("split", "init", "decay", "eval_protocol", "grad_clip")} == {
        "split": "chars", "init": "book", "decay": "all", "eval_protocol": "book", "grad_clip": 0.0,
    }  # fmt: skip
    assert json.loads(json.dumps(settings))["train"]["eval_protocol"] == "book"
    assert math.isfinite(a[0]["val_loss"]) and math.isfinite(a[1]["val_loss"])


def test_cli_prints_the_books_lines_and_refuses_an_unknown_recipe(tmp_path, capsys):
    argv = ["train", "--recipe", "book-ch5", "--preset", "tiny", "--context", "32", "--stride", "32"]
    assert main([*argv, "--steps", "1", "--out", str(tmp_path / "a")]) == 0
    err = capsys.readouterr().err
    assert "Ep 1 (Step 000000): Train loss " in err and ", Val loss " in err
    assert main(["train", "--recipe", "nope", "--out", str(tmp_path / "b")]) != 0
    assert "unknown recipe 'nope'" in capsys.readouterr().err
