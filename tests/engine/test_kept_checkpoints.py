"""Checkpoints over time (gptviz.engine.kept_checkpoints): each kept step is that step's weights, the
newest N are kept, and the attention comparison's A − B is the difference of the two steps' attention."""

from __future__ import annotations

import pytest
import torch

from gptviz.config import GPTConfig
from gptviz.engine.checkpoint import load_checkpoint
from gptviz.engine.kept_checkpoints import (
    KEEP_ALL,
    compare_attention,
    compare_on_prompt,
    drop_after,
    keep_checkpoint,
    list_kept,
    parse_keep,
    step_path,
)
from gptviz.errors import ConfigError
from gptviz.model.gpt import GPTModel
from gptviz.model.hooks import capture

CFG = GPTConfig(vocab_size=50257, context_length=16, emb_dim=32, n_heads=4, n_layers=2, drop_rate=0.0)


def _nudged(model, seed):
    with torch.no_grad():
        gen = torch.Generator().manual_seed(seed)
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.05)  # (same shape) as a training step would
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_keep_n_prunes_the_oldest_and_each_kept_step_is_its_weights(tmp_path):
    torch.manual_seed(0)
    model = GPTModel(CFG)
    states = {}
    for step in (0, 5, 10, 15, 20):
        states[step] = _nudged(model, step)
        keep_checkpoint(model, tmp_path, step, 3, meta={"name": "t"})
    assert [k.step for k in list_kept(tmp_path)] == [10, 15, 20]
    assert not step_path(tmp_path, 5).exists()
    for kept in list_kept(tmp_path):
        loaded, meta = load_checkpoint(kept.path)
        assert meta["step"] == kept.step
        for key, tensor in loaded.state_dict().items():
            assert torch.equal(tensor, states[kept.step][key]), (kept.step, key)
    keep_checkpoint(model, tmp_path, 25, KEEP_ALL)
    assert [k.step for k in list_kept(tmp_path)] == [10, 15, 20, 25]
    assert keep_checkpoint(model, tmp_path, 30, 0) is None and len(list_kept(tmp_path)) == 4
    assert drop_after(tmp_path, 15) == [20, 25]  # a resume from step 15 trains them again
    assert [k.step for k in list_kept(tmp_path)] == [10, 15]
    (tmp_path / "checkpoints" / ".step-000040.tmp").mkdir()  # a folder being written is not listed
    (tmp_path / "checkpoints" / "step-000045").mkdir()  # nor one without its weights
    assert [k.step for k in list_kept(tmp_path)] == [10, 15]


def test_fp16_kept_weights_are_the_weights_rounded_once(tmp_path):
    model = GPTModel(CFG)
    keep_checkpoint(model, tmp_path, 1, 1, dtype=torch.float16)
    loaded, _ = load_checkpoint(list_kept(tmp_path)[0].path)
    for key, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], tensor.half().float()), key


def test_keep_parses_a_count_or_all():
    assert (
        parse_keep("all") == KEEP_ALL
        and parse_keep("3") == 3
        and parse_keep(0) == 0
        and parse_keep(None) == 0
    )
    assert parse_keep(KEEP_ALL) == KEEP_ALL  # as a settings.json holds it
    for bad in ("-2", "some", True, 2.5j):
        with pytest.raises(ConfigError):
            parse_keep(bad)


def test_a_minus_b_is_the_difference_of_each_steps_own_attention(tmp_path):
    torch.manual_seed(1)
    model = GPTModel(CFG).eval()
    ids = [464, 3290, 318, 257, 1332, 13]
    maps = {}
    for step in (3, 9):
        _nudged(model, step)
        keep_checkpoint(model, tmp_path, step, KEEP_ALL)
        with torch.no_grad(), capture(model, ["blocks.1.attn.hook_weights"]) as store:
            model(torch.tensor([ids]))  # (1, T, V)
        maps[step] = store["blocks.1.attn.hook_weights"][0, 2].numpy()  # (T, T) layer 1, head 2
    a, b = list_kept(tmp_path)
    result = compare_attention(a.path, b.path, ids, layer=1, head=2, steps=(3, 9))
    assert result.a.shape == (6, 6)
    torch.testing.assert_close(torch.from_numpy(result.a), torch.from_numpy(maps[3]), rtol=0, atol=1e-6)
    torch.testing.assert_close(torch.from_numpy(result.b), torch.from_numpy(maps[9]), rtol=0, atol=1e-6)
    assert (result.diff == result.a - result.b).all() and abs(result.diff).max() > 1e-4
    on_prompt = compare_on_prompt(a, b, "Every effort moves you", 0, 0)
    assert on_prompt.tokens == ("Every", " effort", " moves", " you") and on_prompt.steps == (3, 9)
    with pytest.raises(ConfigError):
        compare_attention(a.path, b.path, ids, layer=2, head=0)


def test_train_keeps_the_newest_evaluations_weights_and_resume_drops_the_future(tmp_path, capsys):
    """gptviz train --keep-checkpoints 2: the newest two evaluations' weights, the last equal to the run's
    own checkpoint; a resume keeps going; cutting a run back to a step drops the kept steps after it."""
    from gptviz.cli import main
    from gptviz.data import builtin_text
    from gptviz.engine.rundir import read_metrics, read_settings

    corpus = tmp_path / "corpus.txt"
    corpus.write_text(builtin_text()[:20000], encoding="utf-8")
    run = tmp_path / "run"
    argv = ["train", "--corpus", str(corpus), "--preset", "tiny", "--context", "16", "--batch-size", "2",
            "--eval-iter", "1", "--eval-freq", "2", "--out", str(run), "--quiet"]  # fmt: skip
    assert main([*argv, "--steps", "6", "--keep-checkpoints", "2"]) == 0
    evaluated = [r["step"] for r in read_metrics(run) if "val_loss" in r]
    assert evaluated == [0, 1, 2, 4, 6]
    assert [k.step for k in list_kept(run)] == [4, 6]
    assert read_settings(run)["train"]["keep_checkpoints"] == 2
    last, meta = load_checkpoint(list_kept(run)[-1].path)
    final, _ = load_checkpoint(run / "checkpoint")
    assert meta["step"] == 6 and meta["name"] == "run step 6"
    for key, tensor in final.state_dict().items():
        assert torch.equal(last.state_dict()[key], tensor), key
    # A resume goes on keeping (here every one); the steps already kept stay, they are the same run's.
    assert (
        main(["train", "--resume", "--out", str(run), "--steps", "8", "--keep-checkpoints", "all", "--quiet"])
        == 0
    )
    assert [k.step for k in list_kept(run)] == [4, 6, 8]
    # A resume from an earlier checkpoint drops the kept steps after it (they are trained again).
    from gptviz.engine.train_rundir import RunWriter

    RunWriter(run, 1).cut_back_to(6)
    assert [k.step for k in list_kept(run)] == [4, 6]
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--steps", "1", "--keep-checkpoints", "some"])
    assert exit_info.value.code == 2 and "--keep-checkpoints takes" in capsys.readouterr().err
