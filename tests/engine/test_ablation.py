"""Ablations against Hugging Face GPT-2 (eager) with forward hooks doing the same intervention by brute force."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hf_random import imported, random_hf_gpt2

from gptviz.engine import ablation
from gptviz.engine.ablation_spec import Ablation, parse_ablations
from gptviz.errors import ConfigError

transformers = pytest.importorskip("transformers")

D, L, H, POS = 64, 3, 4, 32
HD = D // H


@pytest.fixture(scope="module")
def hf_model():
    return random_hf_gpt2(D, L, H, POS, seed=0)


@pytest.fixture(scope="module")
def ours(hf_model, tmp_path_factory):
    return imported(hf_model, tmp_path_factory.mktemp("hf") / "random-gpt2")


@pytest.fixture(scope="module")
def ids():
    return torch.randint(0, 50257, (1, 12), generator=torch.Generator().manual_seed(2))  # (1, 12)


def hf_logits(hf_model, ids, hooks):
    handles = [register(hf_model) for register in hooks]
    try:
        with torch.no_grad():
            return hf_model(ids).logits  # (1, T, V)
    finally:
        for handle in handles:
            handle.remove()


def ours_logits(model, ids, ablations, means=None):
    ablation.install(model, ablations, means)
    try:
        with torch.no_grad():
            return model(ids)  # (1, T, V)
    finally:
        ablation.remove(model)


def zero_head(layer, head):
    def register(hf):
        def pre(_module, args):
            x = args[0].clone()  # (B, T, D): the heads merged, before c_proj
            x[..., head * HD : (head + 1) * HD] = 0.0
            return (x,)

        return hf.transformer.h[layer].attn.c_proj.register_forward_pre_hook(pre)

    return register


def test_zero_ablating_heads_equals_hf_with_c_proj_inputs_zeroed(hf_model, ours, ids):
    got = ours_logits(ours, ids, parse_ablations("1.2,2.0"))
    want = hf_logits(hf_model, ids, [zero_head(1, 2), zero_head(2, 0)])
    assert torch.allclose(got, want, atol=1e-4)
    plain = hf_logits(hf_model, ids, [])
    assert (got - plain).abs().max() > 1e-2  # the ablation changed something


def test_neuron_and_whole_layer_ablations_equal_hf_hooks(hf_model, ours, ids):
    def zero_neuron(hf):
        def pre(_module, args):
            x = args[0].clone()  # (B, T, 4D) after GELU
            x[..., 17] = 0.0
            return (x,)

        return hf.transformer.h[0].mlp.c_proj.register_forward_pre_hook(pre)

    def zero_attn(hf):
        return hf.transformer.h[1].attn.register_forward_hook(
            lambda _m, _inp, out: (torch.zeros_like(out[0]), *out[1:])
        )

    def zero_mlp(hf):
        return hf.transformer.h[2].mlp.register_forward_hook(lambda _m, _inp, out: torch.zeros_like(out))

    got = ours_logits(ours, ids, parse_ablations("0.mlp.17,1.attn,2.mlp"))
    want = hf_logits(hf_model, ids, [zero_neuron, zero_attn, zero_mlp])
    assert torch.allclose(got, want, atol=1e-4)


def test_mean_ablation_of_a_head_equals_hf_with_its_mean_output(hf_model, ours, ids):
    seen = {}
    handle = hf_model.transformer.h[1].attn.c_proj.register_forward_pre_hook(
        lambda _m, args: seen.__setitem__("x", args[0][0, :, 3 * HD : 4 * HD].mean(dim=0))  # (hd,)
    )
    with torch.no_grad():
        hf_model(ids)
    handle.remove()

    def mean_head(hf):
        def pre(_module, args):
            x = args[0].clone()
            x[..., 3 * HD : 4 * HD] = seen["x"]
            return (x,)

        return hf.transformer.h[1].attn.c_proj.register_forward_pre_hook(pre)

    abl = [Ablation("head", 1, 3, "mean")]
    means = ablation.reference_means(ours, ids[0].tolist(), abl)
    assert torch.allclose(means[abl[0]], seen["x"], atol=1e-5)
    got = ours_logits(ours, ids, abl, means)
    want = hf_logits(hf_model, ids, [mean_head])
    assert torch.allclose(got, want, atol=1e-4)


def test_an_ablated_model_generates_the_same_with_and_without_the_kv_cache(ours, ids):
    from gptviz.engine.generator import Generator
    from gptviz.engine.sampling_settings import SamplingSettings
    from gptviz.tokenizer import default_tokenizer

    ablation.install(ours, parse_ablations("0.1,2.attn"))
    try:
        tok = default_tokenizer()
        greedy = SamplingSettings(temperature=0.0, seed=0)
        cached = Generator(ours, tok, ids[0, :5].tolist(), greedy)
        plain = Generator(ours, tok, ids[0, :5].tolist(), greedy, use_cache=False)
        assert [s.chosen_id for s in cached.generate(10)] == [s.chosen_id for s in plain.generate(10)]
    finally:
        ablation.remove(ours)


def test_bad_ablations_are_one_line_errors(ours):
    for text in ("3", "1.x", "a.b", "1.2.3", ""):
        with pytest.raises(ConfigError):
            parse_ablations(text)
    with pytest.raises(ConfigError, match="layers 0..2"):
        ablation.check(ours, parse_ablations("7.0"))
    with pytest.raises(ConfigError, match="heads 0..3"):
        ablation.check(ours, parse_ablations("0.9"))
    with pytest.raises(ConfigError, match="neurons 0..255"):
        ablation.check(ours, parse_ablations("0.mlp.999"))
    assert [a.label for a in parse_ablations("3.7, 2.mlp.5,1.attn", mode="mean")] == [
        "3.7 (mean)",
        "2.mlp.5 (mean)",
        "1.attn (mean)",
    ]
    assert np.all([a.mode == "zero" for a in parse_ablations("1.1")])


def test_cli_generate_and_inspect_take_ablations(ours, tmp_path, capsys):
    import json

    from gptviz.cli import main
    from gptviz.engine.checkpoint import save_checkpoint
    from gptviz.model.gpt import generate_greedy
    from gptviz.tokenizer import default_tokenizer

    folder = tmp_path / "ckpt"
    save_checkpoint(ours, folder)
    prompt = "Every effort moves you"
    prompt_ids = default_tokenizer().encode(prompt)
    assert (
        main(
            [
                "generate",
                str(folder),
                "--prompt",
                prompt,
                "--max-new-tokens",
                "6",
                "--temperature",
                "0",
                "--ablate",
                "0.1,2.mlp",
                "--no-stop",
                "--json",
            ]
        )
        == 0
    )
    got = json.loads(capsys.readouterr().out)["new_ids"]
    ablation.install(ours, parse_ablations("0.1,2.mlp"))
    try:
        want = generate_greedy(ours, torch.tensor([prompt_ids]), 6)[0, len(prompt_ids) :].tolist()
        out = tmp_path / "a.npz"
        assert (
            main(["inspect", str(folder), "--prompt", prompt, "--out", str(out), "--ablate", "0.1,2.mlp"])
            == 0
        )
        with torch.no_grad():
            logits = ours(torch.tensor([prompt_ids]))[0]  # (T, V)
    finally:
        ablation.remove(ours)
    assert got == want
    np.testing.assert_allclose(np.load(out)["logits"], logits.numpy(), atol=1e-5)
    assert main(["inspect", str(folder), "--prompt", prompt, "--out", str(out), "--ablate", "9.9"]) == 1
    assert capsys.readouterr().err.strip().count("\n") == 0


def test_session_ablations_reach_the_live_panes_and_generation(ours):
    from gptviz.engine.inspection import inspect_tokens
    from gptviz.engine.sampling_settings import SamplingSettings
    from gptviz.engine.session import Session

    session = Session(ours, corpus=None, sampling=SamplingSettings(temperature=0.0, seed=0))
    for _ in range(3):
        session.gen_step()
    before = session.inspect()
    session.set_ablations(parse_ablations("1.2,0.mlp", mode="mean"))
    after = session.inspect()
    oracle = inspect_tokens(ours, session.tokenizer, session.current_ids())  # the ablations are installed
    np.testing.assert_allclose(after.residual_norms, oracle.residual_norms, rtol=1e-5, atol=1e-5)
    assert not np.allclose(after.residual_norms, before.residual_norms)
    session.gen_step()
    assert session.inspect().n_tokens == after.n_tokens + 1
    session.set_ablations(())
    restored = session.inspect()
    np.testing.assert_allclose(restored.residual_norms[:, :-1], before.residual_norms, rtol=1e-5, atol=1e-5)


def test_mean_ablation_of_a_neuron_and_whole_layers_equals_hf_with_their_mean_outputs(hf_model, ours, ids):
    """Means from one pass of the whole model, put in at every position of the three parts at once."""
    seen = {}
    handles = [
        hf_model.transformer.h[0].mlp.c_proj.register_forward_pre_hook(
            lambda _m, args: seen.__setitem__("neuron", args[0][0, :, 40].mean())  # () after GELU
        ),
        hf_model.transformer.h[1].attn.register_forward_hook(
            lambda _m, _inp, out: seen.__setitem__("attn", out[0][0].mean(dim=0))  # (D,)
        ),
        hf_model.transformer.h[2].mlp.register_forward_hook(
            lambda _m, _inp, out: seen.__setitem__("mlp", out[0].mean(dim=0))  # (D,)
        ),
    ]
    with torch.no_grad():
        hf_model(ids)
    for handle in handles:
        handle.remove()

    def mean_neuron(hf):
        def pre(_module, args):
            x = args[0].clone()  # (B, T, 4D)
            x[..., 40] = seen["neuron"]
            return (x,)

        return hf.transformer.h[0].mlp.c_proj.register_forward_pre_hook(pre)

    def mean_attn(hf):
        return hf.transformer.h[1].attn.register_forward_hook(
            lambda _m, _inp, out: (seen["attn"].expand_as(out[0]).clone(), *out[1:])
        )

    def mean_mlp(hf):
        return hf.transformer.h[2].mlp.register_forward_hook(
            lambda _m, _inp, out: seen["mlp"].expand_as(out).clone()
        )

    abl = parse_ablations("0.mlp.40,1.attn,2.mlp", mode="mean")
    means = ablation.reference_means(ours, ids[0].tolist(), abl)
    assert torch.allclose(means[abl[0]], seen["neuron"], atol=1e-5)
    assert torch.allclose(means[abl[1]], seen["attn"], atol=1e-5)
    assert torch.allclose(means[abl[2]], seen["mlp"], atol=1e-5)
    got = ours_logits(ours, ids, abl, means)
    want = hf_logits(hf_model, ids, [mean_neuron, mean_attn, mean_mlp])
    assert torch.allclose(got, want, atol=1e-4)
    zero = ours_logits(ours, ids, parse_ablations("0.mlp.40,1.attn,2.mlp"))
    assert (got - zero).abs().max() > 1e-2  # the means are not zero: the two modes differ
