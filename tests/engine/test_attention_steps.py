"""The step-by-step view of one head equals the model's own explicit attention taps."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gptviz.config import GPTConfig
from gptviz.engine.attention_steps import attention_steps
from gptviz.errors import ConfigError
from gptviz.model import GPTModel, capture

CFG = GPTConfig(context_length=16, emb_dim=32, n_heads=4, n_layers=2, drop_rate=0.0)
IDS = [464, 3290, 318, 257, 1310, 286, 262]


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return GPTModel(CFG).eval()


@pytest.mark.parametrize("query", [0, 3, -1])
def test_each_step_equals_the_taps_of_the_explicit_path(model, query):
    steps = attention_steps(model, IDS, layer=1, head=2, query_position=query)
    i = query % len(IDS)
    with torch.no_grad(), capture(model, r"blocks\.1\.attn\.hook_.*") as taps:
        model(torch.tensor([IDS]))
    np.testing.assert_allclose(
        steps.masked[: i + 1], taps["blocks.1.attn.hook_scores"][0, 2, i, : i + 1], atol=1e-5
    )
    assert np.all(np.isneginf(steps.masked[i + 1 :]))
    np.testing.assert_allclose(steps.scaled, steps.scores * steps.scale, rtol=1e-12)
    np.testing.assert_allclose(steps.weights, taps["blocks.1.attn.hook_weights"][0, 2, i], atol=1e-6)
    assert steps.weights.sum() == pytest.approx(1.0) and np.all(steps.weights[i + 1 :] == 0)
    np.testing.assert_allclose(steps.context, taps["blocks.1.attn.hook_head_out"][0, 2, i], atol=1e-5)
    np.testing.assert_allclose(steps.weighted_values.sum(axis=0), steps.context, atol=1e-12)
    # The four heads' shares plus out_proj's bias are the attention output at this position.
    shares = sum(attention_steps(model, IDS, 1, h, query).head_output for h in range(4))
    bias = model.blocks[1].attn.out_proj.bias.detach().double().numpy()
    np.testing.assert_allclose(shares + bias, taps["blocks.1.attn.hook_out"][0, i], atol=1e-5)


def test_out_of_range_choices_are_one_line_errors(model):
    for kwargs in (
        {"layer": 2, "head": 0},
        {"layer": 0, "head": 4},
        {"layer": 0, "head": 0, "query_position": 7},
    ):
        with pytest.raises(ConfigError):
            attention_steps(model, IDS, **kwargs)
