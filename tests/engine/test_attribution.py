"""Direct logit attribution adds up to the logit; input x gradient equals HF GPT-2's inputs_embeds gradient;
integrated gradients are complete; the CLI commands (attribute, patch) keep their JSON / npz contracts."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hf_random import random_hf_gpt2

from gptviz.engine.attribution import direct_logit_attribution, input_attribution
from gptviz.engine.importers import import_weights
from gptviz.errors import ConfigError

transformers = pytest.importorskip("transformers")

D, L, H, POS = 64, 3, 4, 32


@pytest.fixture(scope="module")
def hf_model():
    return random_hf_gpt2(D, L, H, POS, seed=4)


@pytest.fixture(scope="module")
def folder(hf_model, tmp_path_factory):
    path = tmp_path_factory.mktemp("hf") / "random-gpt2"
    hf_model.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def ours(folder):
    return import_weights(folder).eval()


IDS = [464, 3290, 318, 257, 1310, 286, 262, 1266]


def test_dla_parts_add_up_to_the_logit_and_to_a_logit_difference(ours):
    with torch.no_grad():
        logits = ours(torch.tensor([IDS]))[0]  # (T, V)
    for position in (-1, 3):
        target = int(logits[position].argmax())
        result = direct_logit_attribution(ours, IDS, target, position=position)
        names = [name for name, _ in result.components]
        assert names[0] == "embed" and names[-1] == "final_norm_shift"
        assert "L2.H3" in names and "L0.attn_bias" in names and "L1.mlp" in names
        assert len(names) == 1 + L * (H + 2) + 1
        assert result.logit == pytest.approx(float(logits[position, target]), abs=1e-4)
        assert sum(v for _, v in result.components) == pytest.approx(result.logit, abs=1e-3)
    diff = direct_logit_attribution(ours, IDS, 11, against_id=13)
    assert diff.logit == pytest.approx(float(logits[-1, 11] - logits[-1, 13]), abs=1e-4)
    assert sum(v for _, v in diff.components) == pytest.approx(diff.logit, abs=1e-3)


def test_dla_of_a_head_is_what_removing_it_takes_away_before_the_norm(ours):
    """With the norm's scale frozen, a head's part is exactly what its output adds to the residual stream,
    read out: compare the stream right after the last block's attention with and without head 2.1."""
    from gptviz.engine import ablation
    from gptviz.engine.ablation_spec import parse_ablations

    target = 500
    full = direct_logit_attribution(ours, IDS, target)
    parts = dict(full.components)
    with torch.no_grad():
        final = {}
        ablation.install(ours, parse_ablations("2.1"))
        try:
            from gptviz.model import capture

            with capture(ours, {"blocks.2.hook_resid_mid"}) as taps:
                ours(torch.tensor([IDS]))
            final["ablated"] = taps["blocks.2.hook_resid_mid"][0, -1].double()
        finally:
            ablation.remove(ours)
        with capture(ours, {"blocks.2.hook_resid_mid", "blocks.2.hook_resid_post"}) as taps:
            ours(torch.tensor([IDS]))
        final["full"] = taps["blocks.2.hook_resid_mid"][0, -1].double()
        last = taps["blocks.2.hook_resid_post"][0, -1].double()
        norm, head = ours.final_norm, ours.out_head
        std = torch.sqrt(last.var(unbiased=False) + norm.eps)  # frozen at the final stream's value
        readout = norm.scale.double() * head.weight[target].double() / std

        def centred(x):
            return (x - x.mean()) @ readout

        change = float(centred(final["full"]) - centred(final["ablated"]))
    # Removing head 2.1 changes the stream after block 2's attention by exactly its own output.
    assert parts["L2.H1"] == pytest.approx(change, abs=1e-4)


def test_input_x_gradient_equals_hf_inputs_embeds_gradient(ours, hf_model):
    target = 777
    got = input_attribution(ours, IDS, target, method="ixg")
    embeds = hf_model.transformer.wte(torch.tensor([IDS])).detach().requires_grad_(True)  # (1, T, D)
    logit = hf_model(inputs_embeds=embeds).logits[0, -1, target]
    logit.backward()
    want = (embeds.grad * embeds).sum(dim=-1)[0]  # (T,)
    np.testing.assert_allclose(got.scores, want.detach().numpy(), atol=1e-4)
    assert got.target_logit == pytest.approx(float(logit.detach()), abs=1e-4)


def test_integrated_gradients_add_up_to_the_logit_change_from_the_baseline(ours):
    got = input_attribution(ours, IDS, 321, method="ig", steps=64)
    gap = got.target_logit - got.baseline_logit
    assert abs(sum(got.scores) - gap) <= 0.01 * abs(gap)
    with pytest.raises(ConfigError, match="at least 32"):
        input_attribution(ours, IDS, 321, method="ig", steps=8)
    with pytest.raises(ConfigError, match="position"):
        input_attribution(ours, IDS, 321, position=40)


def test_cli_attribute_and_patch(folder, ours, tmp_path, capsys):
    from gptviz.cli import main

    assert (
        main(["attribute", str(folder), "--prompt", "The cat sat on the", "--target", " mat", "--json"]) == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"method", "target_id", "against_id", "position", "logit", "components"}
    assert out["method"] == "dla" and out["components"][0][0] == "embed"
    assert sum(v for _, v in out["components"]) == pytest.approx(out["logit"], abs=1e-3)
    assert (
        main(
            [
                "attribute",
                str(folder),
                "--prompt",
                "The cat sat on the",
                "--target",
                " mat",
                "--method",
                "ig",
                "--json",
            ]
        )
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert len(out["tokens"]) == len(out["scores"]) == 5
    assert sum(out["scores"]) == pytest.approx(out["target_logit"] - out["baseline_logit"], rel=0.01)
    assert main(["attribute", str(folder), "--prompt", "x", "--target", " two words"]) == 1
    assert "exactly one" in capsys.readouterr().err

    npz = tmp_path / "p.npz"
    args = [
        "patch",
        str(folder),
        "--clean",
        "The cat sat on the",
        "--corrupt",
        "The dog sat on the",
        "--answer",
        " mat",
        "--wrong",
        " floor",
        "--out",
        str(npz),
    ]
    assert main(args) == 0
    with np.load(npz) as arrays:
        assert arrays["resid"].shape == (L, 5) and arrays["heads"].shape == (L, H)
        assert set(arrays.files) == {"resid", "heads", "clean_ids", "corrupt_ids", "ld_clean", "ld_corrupt"}
        assert arrays["resid"][0, 1] == pytest.approx(
            1.0, abs=1e-3
        )  # " cat" vs " dog": the one token that differs
    assert main(args[:5] + ["The dog sat on the big"] + args[6:]) == 1
    assert "same number of tokens" in capsys.readouterr().err
