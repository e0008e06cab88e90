"""Activation patching against brute force on Hugging Face GPT-2 (eager): one hooked run per patch."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from hf_random import imported, random_hf_gpt2

from gptviz.engine.patching import Cancelled, patch, single_token
from gptviz.errors import ConfigError

transformers = pytest.importorskip("transformers")

D, L, H, POS, T = 64, 3, 4, 32, 6
HD = D // H


@pytest.fixture(scope="module")
def hf_model():
    return random_hf_gpt2(D, L, H, POS, seed=1)


@pytest.fixture(scope="module")
def ours(hf_model, tmp_path_factory):
    return imported(hf_model, tmp_path_factory.mktemp("hf") / "random-gpt2")


@pytest.fixture(scope="module")
def prompts():
    gen = torch.Generator().manual_seed(3)
    clean = torch.randint(0, 50257, (T,), generator=gen).tolist()
    corrupt = list(clean)
    corrupt[1] = (clean[1] + 777) % 50257  # one token differs
    return clean, corrupt


def hf_last_logits(hf, ids, hooks=()):
    handles = [register(hf) for register in hooks]
    try:
        with torch.no_grad():
            return hf(torch.tensor([ids]), output_hidden_states=True)
    finally:
        for handle in handles:
            handle.remove()


def test_both_maps_equal_brute_force_patching_on_hf(hf_model, ours, prompts):
    clean, corrupt = prompts
    clean_out = hf_last_logits(hf_model, clean)
    answer, wrong = clean_out.logits[0, -1].topk(2).indices.tolist()
    corrupt_out = hf_last_logits(hf_model, corrupt)

    def ld(out):
        return float(out.logits[0, -1, answer] - out.logits[0, -1, wrong])

    ld_clean, ld_corrupt = ld(clean_out), ld(corrupt_out)

    # The clean head outputs before c_proj, per layer: (T, D) merged heads.
    merged = {}
    handles = [
        hf_model.transformer.h[i].attn.c_proj.register_forward_pre_hook(
            lambda _m, args, i=i: merged.__setitem__(i, args[0][0].clone())
        )
        for i in range(L)
    ]
    hf_last_logits(hf_model, clean)
    for handle in handles:
        handle.remove()

    want_resid = np.zeros((L, T))
    for layer in range(L):
        for t in range(T):
            clean_in = clean_out.hidden_states[layer][0, t]  # (D,) entering block `layer`

            def register(hf, layer=layer, t=t, clean_in=clean_in):
                def pre(_module, args, kwargs):
                    if args:
                        hs = args[0].clone()
                        hs[0, t] = clean_in
                        return (hs, *args[1:]), kwargs
                    hs = kwargs["hidden_states"].clone()
                    hs[0, t] = clean_in
                    return args, {**kwargs, "hidden_states": hs}

                return hf.transformer.h[layer].register_forward_pre_hook(pre, with_kwargs=True)

            want_resid[layer, t] = (ld(hf_last_logits(hf_model, corrupt, [register])) - ld_corrupt) / (
                ld_clean - ld_corrupt
            )
    want_heads = np.zeros((L, H))
    for layer in range(L):
        for head in range(H):

            def register(hf, layer=layer, head=head):
                def pre(_module, args):
                    x = args[0].clone()  # (1, T, D)
                    x[0, :, head * HD : (head + 1) * HD] = merged[layer][:, head * HD : (head + 1) * HD]
                    return (x,)

                return hf.transformer.h[layer].attn.c_proj.register_forward_pre_hook(pre)

            want_heads[layer, head] = (ld(hf_last_logits(hf_model, corrupt, [register])) - ld_corrupt) / (
                ld_clean - ld_corrupt
            )

    steps = []
    got = patch(ours, clean, corrupt, answer, wrong, progress=lambda done, total: steps.append((done, total)))
    assert got.ld_clean == pytest.approx(ld_clean, abs=1e-3) and got.ld_corrupt == pytest.approx(
        ld_corrupt, abs=1e-3
    )
    np.testing.assert_allclose(got.resid, want_resid, atol=1e-3)
    np.testing.assert_allclose(got.heads, want_heads, atol=1e-3)
    assert steps[-1] == (2 * L, 2 * L)
    # The meaning: entering block 0, the one token that differs carries everything (the patched run is the
    # clean run), and the tokens both prompts share carry nothing.
    assert got.resid[0, 1] == pytest.approx(1.0, abs=1e-4)
    assert np.abs(got.resid[0, [0, 2, 3, 4, 5]]).max() < 1e-4


def test_bad_inputs_and_cancel(ours, prompts):
    clean, corrupt = prompts
    with pytest.raises(ConfigError, match="same number of tokens"):
        patch(ours, clean, corrupt[:-1], 1, 2)
    with pytest.raises(ConfigError, match="nothing to restore"):
        patch(ours, clean, clean, 1, 2)
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        patch(ours, clean, corrupt, 1, 2, cancel=cancel)
    from gptviz.tokenizer import default_tokenizer

    assert single_token(default_tokenizer(), " Paris", "answer") == default_tokenizer().encode(" Paris")[0]
    with pytest.raises(ConfigError, match="exactly one"):
        single_token(default_tokenizer(), " Parisian tower", "answer")
