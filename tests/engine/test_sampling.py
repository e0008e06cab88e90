"""Temperature, top-k and top-p do what they say, on hand-made logits with known probabilities."""

from __future__ import annotations

import math

import pytest
import torch

from gptviz.engine.sampling import (
    apply_temperature,
    kept_distribution,
    nucleus_size,
    sampling_distribution,
    top_k_filter,
    top_p_filter,
)
from gptviz.engine.sampling_settings import SamplingSettings
from gptviz.errors import ConfigError

PROBS = [0.05, 0.4, 0.1, 0.3, 0.15]  # ranked: id 1 (0.4), 3 (0.3), 4 (0.15), 2 (0.1), 0 (0.05)


def known_logits() -> torch.Tensor:
    return torch.log(torch.tensor(PROBS)) + 2.0  # (5,) a shift does not change the softmax


def entropy(probs: torch.Tensor) -> float:
    p = probs[probs > 0]  # (m,)
    return float(-(p * p.log()).sum())


def kept(probs: torch.Tensor) -> set[int]:
    return set(torch.nonzero(probs > 0).flatten().tolist())


def test_known_logits_softmax_back_to_the_probabilities():
    probs = sampling_distribution(known_logits(), 1.0)  # (5,)
    assert torch.allclose(probs, torch.tensor(PROBS), atol=1e-6)


def test_top_k_one_is_greedy():
    torch.manual_seed(0)
    logits = torch.randn(1000)  # (V,)
    probs = sampling_distribution(logits, 1.3, top_k=1)  # (V,)
    assert probs.argmax() == logits.argmax()
    assert probs.max() == 1.0 and kept(probs) == {int(logits.argmax())}
    assert SamplingSettings(temperature=1.3, top_k=1).greedy


def test_temperature_zero_puts_all_mass_on_the_argmax():
    probs = sampling_distribution(known_logits(), 0.0, top_k=3, top_p=0.5)  # (5,)
    assert probs.tolist() == [0.0, 1.0, 0.0, 0.0, 0.0]


def test_top_k_keeps_exactly_the_k_largest():
    filtered = top_k_filter(known_logits(), 3)  # (5,)
    assert torch.isfinite(filtered).nonzero().flatten().tolist() == [1, 3, 4]
    probs = sampling_distribution(known_logits(), 1.0, top_k=3)  # (5,)
    assert kept(probs) == {1, 3, 4}
    assert probs[1] == pytest.approx(0.4 / 0.85, abs=1e-6)
    assert torch.equal(top_k_filter(known_logits(), 0), known_logits())
    assert torch.equal(top_k_filter(known_logits(), None), known_logits())
    assert torch.equal(top_k_filter(known_logits(), 99), known_logits())


@pytest.mark.parametrize(
    ("p", "expected"),
    [
        (0.1, {1}),  # the top token alone already reaches 0.1
        (0.4, {1}),  # exactly 0.4: one token reaches it
        (0.41, {1, 3}),
        (0.7, {1, 3}),  # 0.4 + 0.3 reaches 0.7 exactly: no third token
        (0.71, {1, 3, 4}),
        (0.85, {1, 3, 4}),
        (0.9, {1, 3, 4, 2}),
        (0.96, {0, 1, 2, 3, 4}),
        (1.0, {0, 1, 2, 3, 4}),
    ],
)
def test_top_p_keeps_the_smallest_set_whose_mass_reaches_p(p, expected):
    probs = sampling_distribution(known_logits(), 1.0, top_p=p)  # (5,)
    assert kept(probs) == expected
    assert torch.isfinite(top_p_filter(known_logits(), p)).nonzero().flatten().tolist() == sorted(expected)
    mass = sum(PROBS[i] for i in expected)
    assert mass >= p - 1e-6
    # Smallest: dropping the least probable kept token falls below p.
    assert mass - min(PROBS[i] for i in expected) < p or len(expected) == 1
    # Renormalised over the kept set.
    for i in expected:
        assert float(probs[i]) == pytest.approx(PROBS[i] / mass, abs=1e-6)


def test_top_p_always_keeps_the_top_token():
    logits = torch.tensor([5.0, 0.0, 0.0])  # (3,)
    assert kept(sampling_distribution(logits, 1.0, top_p=1e-9)) == {0}
    assert nucleus_size(torch.tensor([0.0, 0.0]), 1e-12) == 1


def test_top_p_after_top_k_measures_the_k_renormalised_tokens():
    # top-k 3 leaves 0.4, 0.3, 0.15 -> renormalised 0.47, 0.35, 0.18 (without top-k: 0.4, 0.3, 0.15, ...).
    def kept_after_top3(p: float) -> set[int]:
        return kept(sampling_distribution(known_logits(), 1.0, top_k=3, top_p=p))

    assert kept_after_top3(0.45) == {1}  # 0.47 reaches 0.45 (0.4 alone would not)
    assert kept_after_top3(0.8) == {1, 3}  # 0.82 reaches 0.8 (0.7 alone would not)
    assert kept_after_top3(0.85) == {1, 3, 4}


def test_temperature_scales_logits_and_spreads_or_sharpens():
    logits = known_logits()  # (5,)
    assert torch.allclose(apply_temperature(logits, 2.0), logits / 2.0)
    h1 = entropy(sampling_distribution(logits, 1.0))
    h2 = entropy(sampling_distribution(logits, 2.0))
    h_half = entropy(sampling_distribution(logits, 0.5))
    assert h_half < h1 < h2 < math.log(5)
    cold = sampling_distribution(logits, 0.01)  # (5,)
    assert float(cold[1]) > 0.999999  # T -> 0 approaches the argmax
    hot = sampling_distribution(logits, 1000.0)  # (5,)
    assert torch.allclose(hot, torch.full((5,), 0.2), atol=1e-3)  # T -> inf approaches uniform
    with pytest.raises(ConfigError):
        apply_temperature(logits, 0.0)


@pytest.mark.parametrize(
    ("temperature", "top_k", "top_p"),
    [(1.0, None, 1.0), (0.7, 50, 1.0), (1.5, 0, 0.9), (0.8, 40, 0.95), (0.0, 50, 0.9), (2.0, 1, 0.3)],
)
def test_filtered_probabilities_sum_to_one_and_are_zero_outside_the_kept_set(temperature, top_k, top_p):
    gen = torch.Generator().manual_seed(7)
    logits = torch.randn(5000, generator=gen) * 3  # (V,)
    probs = sampling_distribution(logits, temperature, top_k, top_p)  # (V,)
    assert float(probs.sum()) == pytest.approx(1.0, abs=1e-5)
    ids, kept_probs = kept_distribution(logits, temperature, top_k, top_p)  # (m,), (m,)
    assert kept(probs) <= set(ids.tolist())  # a kept token may underflow to 0, never the other way
    outside = torch.ones_like(probs, dtype=torch.bool)  # (V,)
    outside[ids] = False
    assert float(probs[outside].abs().sum()) == 0.0
    if temperature > 0:
        # The compact form and the composed filters agree.
        composed = top_p_filter(top_k_filter(apply_temperature(logits, temperature), top_k), top_p)  # (V,)
        assert set(torch.isfinite(composed).nonzero().flatten().tolist()) == set(ids.tolist())
        assert torch.allclose(torch.softmax(composed, dim=0), probs, atol=1e-7)
    if top_k:
        assert len(ids) <= top_k


def test_seeded_sampling_is_reproducible():
    probs = sampling_distribution(torch.randn(300, generator=torch.Generator().manual_seed(1)), 1.0)  # (V,)

    def draw(seed: int) -> list[int]:
        gen = torch.Generator().manual_seed(seed)
        return torch.multinomial(probs, 20, replacement=True, generator=gen).tolist()

    assert draw(3) == draw(3)
    assert draw(3) != draw(4)


def test_settings_defaults_and_validation():
    s = SamplingSettings()
    assert (s.temperature, s.top_k, s.top_p, s.seed, s.stop_at_eot, s.n_candidates) == (
        0.8,
        50,
        1.0,
        None,
        True,
        10,
    )
    assert not s.greedy and SamplingSettings(temperature=0).greedy
    SamplingSettings(top_k=0)
    SamplingSettings(top_k=None, top_p=1.0, temperature=0)
    for bad in (
        {"temperature": -0.1},
        {"temperature": float("nan")},
        {"temperature": float("inf")},
        {"top_k": -1},
        {"top_k": 2.5},
        {"top_p": 0.0},
        {"top_p": 1.01},
        {"top_p": -0.5},
        {"n_candidates": 0},
        {"seed": "x"},
    ):
        with pytest.raises(ConfigError):
            SamplingSettings(**bad)
