"""Embedding neighbours and the PCA map against brute force: numpy cosine over the normalised matrix, and
the eigenvectors of the covariance (a different algorithm from the SVD the module uses)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from gptviz.config import GPTConfig
from gptviz.engine.embeddings import embedding_map, nearest_neighbours, pca_2d
from gptviz.errors import ConfigError
from gptviz.model.gpt import GPTModel
from gptviz.tokenizer import default_tokenizer

CFG = GPTConfig(vocab_size=50257, context_length=16, emb_dim=24, n_heads=2, n_layers=1, drop_rate=0.0)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = GPTModel(CFG).eval()
    with torch.no_grad():  # rows of very different lengths: cosine and the dot product disagree
        m.tok_emb.weight.mul_(torch.rand(CFG.vocab_size, 1) * 5 + 0.1)
    return m


@pytest.fixture(scope="module")
def tok():
    return default_tokenizer()


def brute_force(weight: np.ndarray, token_id: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    unit = weight / np.linalg.norm(weight, axis=1, keepdims=True)  # (V, D)
    sims = unit @ unit[token_id]  # (V,)
    order = [i for i in np.argsort(-sims, kind="stable") if i != token_id][:k]
    return np.array(order), sims[order]


def test_neighbours_equal_a_brute_force_cosine(model, tok):
    weight = model.tok_emb.weight.detach().double().numpy()  # (V, D)
    for token_id in (262, 11, 50256, 0):
        got = nearest_neighbours(model, tok, token_id, k=12)
        ids, sims = brute_force(weight, token_id, 12)
        np.testing.assert_array_equal(got.ids, ids)
        np.testing.assert_allclose(got.cosine, sims, atol=1e-5)
        assert got.pieces == tuple(tok.piece(int(i)) for i in ids) and got.piece == tok.piece(token_id)
        assert token_id not in got.ids.tolist()
    dot_top = int(np.argsort(-(weight @ weight[262]))[1])
    assert dot_top != int(nearest_neighbours(model, tok, 262, k=1).ids[0])  # cosine, not the dot product


def test_pca_equals_the_covariance_eigenvectors_up_to_sign():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(30, 8)) @ np.diag([5, 3, 1, 1, 0.5, 0.5, 0.2, 0.1])  # (30, 8)
    coords, explained = pca_2d(x)
    centred = x - x.mean(axis=0)
    values, vectors = np.linalg.eigh(centred.T @ centred)  # ascending
    want = centred @ vectors[:, ::-1][:, :2]  # (30, 2)
    for a in range(2):
        sign = np.sign(coords[:, a] @ want[:, a])
        np.testing.assert_allclose(coords[:, a], sign * want[:, a], atol=1e-5)
    np.testing.assert_allclose(explained, values[::-1][:2] / values.sum(), atol=1e-6)
    np.testing.assert_allclose(pca_2d(-x + 3)[0], -coords, atol=1e-5)  # the sign convention is fixed
    assert pca_2d(np.ones((1, 4)))[0].tolist() == [[0.0, 0.0]]


def test_the_map_holds_the_text_then_each_tokens_neighbours(model, tok):
    ids = tok.encode("the cat sat on the mat")
    found = embedding_map(model, tok, ids, k=4)
    distinct = list(dict.fromkeys(ids))
    assert found.ids[: len(distinct)].tolist() == distinct and found.in_text.sum() == len(distinct)
    for i in np.flatnonzero(~found.in_text):
        parent = int(found.ids[found.of[i]])
        assert int(found.ids[i]) in nearest_neighbours(model, tok, parent, k=4).ids.tolist()
    rows = model.tok_emb.weight.detach()[torch.tensor(found.ids)].numpy()  # (n, D)
    np.testing.assert_allclose(found.coords, pca_2d(rows)[0], atol=1e-5)
    assert found.coords.shape == (len(found.ids), 2) and len(found.pieces) == len(found.ids)


def test_bad_questions_are_one_line_errors(model, tok):
    for k in (0, -1, 10_000):
        with pytest.raises(ConfigError, match="neighbours must be"):
            nearest_neighbours(model, tok, 5, k)
    with pytest.raises(ConfigError, match="not in the embedding matrix"):
        nearest_neighbours(model, tok, 60_000)
    with pytest.raises(ConfigError, match="no tokens"):
        embedding_map(model, tok, [])


def test_cli_neighbours(model, tok, tmp_path, capsys):
    from gptviz.cli import main
    from gptviz.engine.checkpoint import save_checkpoint

    folder = tmp_path / "ckpt"
    save_checkpoint(model, folder)
    assert main(["neighbours", str(folder), "--token", " the", "--k", "5", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    want = nearest_neighbours(model, tok, 262, 5)
    assert out["token_id"] == 262 and [n[0] for n in out["neighbours"]] == want.ids.tolist()
    np.testing.assert_allclose([n[2] for n in out["neighbours"]], want.cosine, atol=1e-6)
    assert main(["neighbours", str(folder), "--id", "262", "--k", "3"]) == 0
    assert capsys.readouterr().out.count("\n") == 4
    assert main(["neighbours", str(folder), "--token", " the cat"]) == 1
    assert capsys.readouterr().err.strip().count("\n") == 0
