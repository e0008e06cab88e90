"""The Generation pane's before/after while parts are switched off: the whole model's logits for the same
step (a KV cache of the un-ablated model beside the generator's) against Hugging Face GPT-2 run twice, with
and without a forward hook doing the ablation by brute force."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hf_random import imported, random_hf_gpt2

from gptviz.engine import ablation
from gptviz.engine.ablation import PlainLogits
from gptviz.engine.ablation_spec import parse_ablations
from gptviz.engine.sampling_settings import SamplingSettings
from gptviz.engine.session import Session

pytest.importorskip("transformers")

D, L, H, POS = 64, 3, 4, 16
HD = D // H


@pytest.fixture(scope="module")
def hf_model():
    return random_hf_gpt2(D, L, H, POS, seed=3)


@pytest.fixture(scope="module")
def ours(hf_model, tmp_path_factory):
    return imported(hf_model, tmp_path_factory.mktemp("hf") / "random-gpt2")


def hf_last_logits(hf_model, ids, head=None):
    """HF's logits (V,) at the last position; with `head` = (layer, h), that head's input to c_proj zeroed."""
    handle = None
    if head is not None:
        layer, h = head

        def pre(_module, args):
            x = args[0].clone()  # (B, T, D): the heads merged, before c_proj
            x[..., h * HD : (h + 1) * HD] = 0.0
            return (x,)

        handle = hf_model.transformer.h[layer].attn.c_proj.register_forward_pre_hook(pre)
    try:
        with torch.no_grad():
            return hf_model(torch.tensor([ids])).logits[0, -1]  # (V,)
    finally:
        if handle is not None:
            handle.remove()


def test_the_effect_of_an_ablation_equals_two_hf_runs(hf_model, ours):
    session = Session(ours, corpus=None, sampling=SamplingSettings(temperature=0.0, seed=0))
    session.set_prompt("Every effort moves you")
    assert session.gen_step().ablation_effect is None  # nothing switched off: nothing to compare
    session.set_ablations(parse_ablations("1.2"))
    try:
        _check_three_steps(hf_model, session)
    finally:
        session.set_ablations(())  # the module's model is shared by the other tests


def _check_three_steps(hf_model, session):
    for _ in range(3):
        view = session.gen_step()
        effect = view.ablation_effect
        context = view.ids[:-1].tolist()
        plain = hf_last_logits(hf_model, context)  # (V,)
        ablated = hf_last_logits(hf_model, context, head=(1, 2))  # (V,)
        chosen = int(view.last.chosen_id)
        assert effect.chosen_id == chosen and not effect.recomputed
        assert effect.delta_logit == pytest.approx(float(ablated[chosen] - plain[chosen]), abs=1e-4)
        ids = [c.id for c in view.candidates]
        np.testing.assert_array_equal(effect.ids, ids)
        np.testing.assert_allclose(effect.logits_plain, plain[ids].numpy(), atol=1e-4)
        np.testing.assert_allclose(effect.logits_ablated, ablated[ids].numpy(), atol=1e-4)
        np.testing.assert_allclose(effect.probs_plain, torch.softmax(plain, -1)[ids].numpy(), atol=1e-5)
        assert effect.plain_top[0][0] == int(plain.argmax())
        assert abs(effect.delta_logit) > 1e-3  # the head mattered
    assert effect.labels == ("1.2",)


def test_a_step_chosen_before_the_ablation_is_computed_again(hf_model, ours):
    session = Session(ours, corpus=None, sampling=SamplingSettings(temperature=0.0, seed=0))
    session.set_prompt("Every effort moves you")
    view = session.gen_step()
    plain_row = [c.prob_raw for c in view.candidates]
    session.set_ablations(parse_ablations("0.1"))
    effect = session.generation_view().ablation_effect
    assert effect.recomputed
    context = view.ids[:-1].tolist()
    ablated = hf_last_logits(hf_model, context, head=(0, 1))  # (V,)
    ids = [c.id for c in view.candidates]
    np.testing.assert_allclose(effect.logits_ablated, ablated[ids].numpy(), atol=1e-4)
    np.testing.assert_allclose(effect.probs_plain, plain_row, atol=1e-5)  # the step's own, unablated
    session.set_ablations(())
    assert session.generation_view().ablation_effect is None


def test_plain_logits_follow_undo_force_and_a_sliding_window(ours):
    """The un-ablated cache feeds only what it lacks and still equals a full pass of the whole model, after
    an undo (a shorter sequence), a different token at the same place, and past the context length."""
    ablation.install(ours, parse_ablations("0.attn,2.mlp.7"))
    try:
        plain = PlainLogits(ours)
        rng = np.random.default_rng(0)
        seq = rng.integers(0, 50257, size=POS + 5).tolist()
        cases = [seq[:5], seq[:6], seq[:4], seq[:3] + [11], seq[: POS - 1], seq[:POS], seq[: POS + 3], seq]
        for ids in cases:
            got = plain(ids)  # (V,)
            with torch.no_grad(), ablation.suspended(ours):
                want = ours(torch.tensor([ids[-POS:]]))[0, -1]  # (V,)
            torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
        with torch.no_grad():
            ablated = ours(torch.tensor([seq[-POS:]]))[0, -1]  # (V,): the edits are back after suspended()
        assert (ablated - want).abs().max() > 1e-3
    finally:
        ablation.remove(ours)
