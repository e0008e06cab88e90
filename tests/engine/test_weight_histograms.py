"""Weight histograms per part on the fixed log-spaced scale: the trainer's bit-counting against numpy's
histogram of the same weights, the scale's edges, and the counts a metrics line carries."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gptviz.config import GPTConfig
from gptviz.engine import weight_histograms as wh
from gptviz.engine.training_diagnostics import PartNorms, part_of, weight_histograms
from gptviz.model.gpt import GPTModel

CFG = GPTConfig(vocab_size=512, context_length=16, emb_dim=32, n_heads=4, n_layers=3, drop_rate=0.0)


def _weights_by_part(model):
    parts: dict[str, list[np.ndarray]] = {}
    for name, p in model.named_parameters():
        parts.setdefault(part_of(name), []).append(p.detach().numpy().ravel())
    return {part: np.concatenate(arrays) for part, arrays in parts.items()}


@pytest.mark.parametrize("tie", [True, False])
def test_counts_equal_numpys_histogram_of_each_parts_weights(tie):
    torch.manual_seed(1)
    model = GPTModel(CFG.replace(tie_weights=tie))
    with torch.no_grad():  # spread the weights over many octaves, both overflows and the centre included
        for p in model.parameters():
            p.mul_(torch.exp(torch.randn_like(p) * 3.0))  # (same shape)
        model.blocks[1].ff.fc1.weight[0, :4] = torch.tensor([300.0, -300.0, 0.0, 1e-9])
    histograms = weight_histograms(model)
    assert list(histograms) == PartNorms(model).parts  # embeddings, block.0..2, final_norm (, out_head)
    weights = _weights_by_part(model)
    negative_edges = wh.EDGES[wh.EDGES < 0]
    for part, counts in histograms.items():
        w = weights[part]
        assert not np.isin(w, negative_edges).any()  # where the two conventions could differ
        numpy_counts, _ = np.histogram(w, bins=wh.EDGES)  # (N_BINS,)
        assert counts == numpy_counts.tolist(), part
        assert (
            sum(counts) == w.size == sum(p.numel() for n, p in model.named_parameters() if part_of(n) == part)
        )
    assert histograms["block.1"][0] >= 1 and histograms["block.1"][-1] >= 1  # ±300 in the overflows
    assert sum(sum(c) for c in histograms.values()) == model.num_parameters()


def test_edges_ends_and_the_mirrored_convention():
    edges = wh.EDGES
    assert edges.shape == (wh.N_BINS + 1,) and np.all(np.diff(edges) > 0)
    assert np.array_equal(edges.astype(np.float32).astype(np.float64), edges)  # float32 exactly: no rounding
    assert wh.MAGNITUDES[0] == 2.0**-14 and wh.MAGNITUDES[-1] == 128.0
    values = np.array(
        [0.0, -0.0, 1.0, -1.0, 2**-14, -(2**-14), 5e-5, 128.0, -128.0, np.inf, -np.inf, np.nan, 1e-45, 0.02],
        dtype=np.float32,
    )
    model = torch.nn.Module()
    model.w = torch.nn.Parameter(torch.from_numpy(values.copy()))
    counts = np.array(weight_histograms(model)["w"])  # (N_BINS,)
    np.testing.assert_array_equal(counts, wh.reference_histogram(values))
    assert counts.sum() == values.size  # NaN and infinities counted (in the overflows)
    one = wh.LABELS.index("[1, 1.25)")
    assert counts[one] == 1 and counts[wh.N_BINS - 1 - one] == 1  # -1.0 in (−1.25, −1]
    assert wh.LABELS[wh.N_BINS - 1 - one] == "(−1.25, −1]"
    assert counts[wh.CENTRE] == 4  # 0, −0, 5e-5 and a denormal
    assert counts[0] == 2 and counts[-1] == 3  # −128, −inf | 128, inf, NaN
    # On a negative edge numpy's [a, b) puts −1.0 one bin further from zero than the mirrored (−b, −a].
    numpy_counts, _ = np.histogram(np.array([-1.0]), bins=edges)
    assert np.flatnonzero(numpy_counts)[0] == wh.N_BINS - 1 - one + 1


def test_a_metrics_lines_counts_are_checked_before_use():
    good = [0] * wh.N_BINS
    good[wh.CENTRE] = 7
    assert wh.valid_counts(good).sum() == 7
    assert wh.valid_counts(good[:-1]) is None
    assert wh.valid_counts([None] * wh.N_BINS) is None
    assert wh.valid_counts([-1] * wh.N_BINS) is None
    assert wh.valid_counts({"a": 1}) is None
    ticks = dict(wh.tick_bins())
    assert ticks[wh.CENTRE] == "0" and "1" in ticks.values() and "−1" in ticks.values()
    labelled = sorted(ticks)
    gaps = np.diff(labelled)  # bins between neighbouring labels
    assert gaps.min() >= wh.PER_OCTAVE * 2  # no two labels crowd


def test_each_evaluations_histograms_are_the_weights_it_kept(tmp_path):
    """A run's metrics line at every evaluation carries weight_histograms equal to numpy's histogram of that
    step's weights (as --keep-checkpoints kept them); lines between evaluations carry none."""
    from gptviz.engine.checkpoint import load_checkpoint
    from gptviz.engine.kept_checkpoints import KEEP_ALL, list_kept
    from gptviz.engine.rundir import read_metrics
    from gptviz.engine.train_settings import TrainSettings
    from gptviz.engine.trainer import Trainer

    torch.manual_seed(0)
    ids = torch.randint(0, 512, (800,), generator=torch.Generator().manual_seed(0))  # (800,)
    settings = TrainSettings(
        steps=5, batch_size=4, context=16, lr=3e-2, eval_freq=2, eval_iter=1, probe_tokens=1,
        probe_prompt="a b", device="cpu", keep_checkpoints=KEEP_ALL,
    )  # fmt: skip
    trainer = Trainer(GPTModel(CFG), None, ids[:600], ids[600:], settings, tmp_path / "run")
    results = [trainer.start()] + [trainer.step() for _ in range(5)]
    records = read_metrics(tmp_path / "run")
    with_histograms = [r["step"] for r in records if "weight_histograms" in r]
    assert with_histograms == [r["step"] for r in records if "val_loss" in r] == [0, 1, 2, 4, 5]
    assert [r.step for r in results if r.weight_histograms is not None] == with_histograms
    kept = {k.step: k.path for k in list_kept(tmp_path / "run")}
    assert sorted(kept) == with_histograms
    histograms_by_step = {r["step"]: r["weight_histograms"] for r in records if "weight_histograms" in r}
    for step, histograms in histograms_by_step.items():
        model, _ = load_checkpoint(kept[step])
        for part, w in _weights_by_part(model).items():
            numpy_counts, _ = np.histogram(w, bins=wh.EDGES)  # (N_BINS,)
            assert histograms[part] == numpy_counts.tolist(), (step, part)
    assert histograms_by_step[0] != histograms_by_step[5]  # the weights moved
