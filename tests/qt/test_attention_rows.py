"""The Attention pane's map grown row by row equals the map decoded whole, for a head and for the average;
anything that is not a pure growth decodes the map again."""

import numpy as np
import torch

from gptviz.config import GPTConfig
from gptviz.engine.sampling_settings import SamplingSettings
from gptviz.engine.session import Session
from gptviz.model import GPTModel
from gptviz.qt.panes.attention_rows import GrowingMap
from gptviz.tokenizer import default_tokenizer

CFG = GPTConfig(context_length=64, emb_dim=32, n_heads=4, n_layers=2, drop_rate=0.0, name="t")


def make_session() -> Session:
    torch.manual_seed(0)
    sampling = SamplingSettings(temperature=1.0, top_k=0, top_p=1.0, seed=3)
    return Session(
        GPTModel(CFG).eval(), default_tokenizer(), corpus=None, prompt="One two three", sampling=sampling
    )


def test_a_growing_map_decodes_only_the_new_rows_and_equals_the_whole_map():
    session = make_session()
    head_map, mean_map = GrowingMap(), GrowingMap()
    snapshot = session.inspect()
    assert snapshot.lineage >= 0
    for _ in range(12):
        np.testing.assert_array_equal(head_map.get(snapshot, 1, 2), snapshot.attention.head(1, 2))
        np.testing.assert_allclose(
            mean_map.get(snapshot, 0, None), snapshot.attention.mean_heads(0), atol=1e-7
        )
        session.gen_step()
        snapshot = session.inspect()
    assert head_map.decoded_rows == snapshot.n_tokens - 1  # each row decoded once (the last not yet)


def test_another_head_an_undo_or_a_new_prompt_decodes_the_map_again():
    session = make_session()
    grower = GrowingMap()
    for _ in range(3):
        session.gen_step()
    snapshot = session.inspect()
    grower.get(snapshot, 0, 1)
    T = snapshot.n_tokens
    np.testing.assert_array_equal(grower.get(snapshot, 0, 3), snapshot.attention.head(0, 3))  # another head
    assert grower.decoded_rows == 2 * T
    session.undo()
    snapshot = session.inspect()
    np.testing.assert_array_equal(grower.get(snapshot, 0, 3), snapshot.attention.head(0, 3))
    session.set_prompt("A different prompt entirely")
    snapshot = session.inspect()
    np.testing.assert_array_equal(grower.get(snapshot, 0, 3), snapshot.attention.head(0, 3))


def test_rows_of_the_packed_map_are_the_dense_maps_rows():
    session = make_session()
    for _ in range(9):
        session.gen_step()
    maps = session.inspect().attention
    T = maps.n_tokens
    np.testing.assert_array_equal(maps.rows(1, 0, 3, T), maps.head(1, 0)[3:T, :T])
    np.testing.assert_allclose(maps.rows(0, None, 0, 5), maps.mean_heads(0)[:5, :5], atol=1e-7)
    assert maps.rows(0, 0, 4, 4).shape == (0, 4)
