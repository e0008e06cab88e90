"""The token-embedding matrix as a map: which tokens sit near a token, and where a text's tokens lie.

A token's row of `tok_emb` is where the model starts from when it reads it. Rows that point the same way
(cosine similarity near 1) are tokens the model treats alike at the input: " cat" near " dog", "3" near
"4", " The" near " the". `nearest_neighbours` ranks every row by cosine with one token's row; `embedding_map`
takes the current text's tokens, adds each one's nearest neighbours, and projects their rows onto the two
directions of largest variance among them (PCA), so a user sees the text's tokens among their look-alikes.

Cosine, not the dot product: GPT-2's rows differ in length (frequent tokens are shorter), and a long row
would be everyone's "neighbour" by the dot product. Pure torch / numpy, no Qt.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from gptviz.errors import ConfigError
from gptviz.model.gpt import GPTModel
from gptviz.tokenizer import Tokenizer

MAX_K = 200  # neighbours one question may ask for: a table, not the vocabulary


@dataclass(frozen=True)
class Neighbours:
    """One token's nearest rows of the embedding matrix, most similar first (the token itself left out)."""

    token_id: int
    piece: str
    ids: np.ndarray  # (k,) int64
    pieces: tuple[str, ...]
    cosine: np.ndarray  # (k,) float32, in [-1, 1]


@dataclass(frozen=True)
class EmbeddingMap:
    """A text's tokens (each once, in order of first appearance) and their neighbours, projected by PCA.

    `of[i]` is, for a neighbour, the index in `ids` of the text token it was found for (the first one, if
    several), and -1 for a text token. `explained` is the share of the points' variance along each axis."""

    ids: np.ndarray  # (n,) int64
    pieces: tuple[str, ...]
    coords: np.ndarray  # (n, 2) float32
    in_text: np.ndarray  # (n,) bool
    of: np.ndarray  # (n,) int64
    explained: np.ndarray  # (2,) float32


def _check_k(k: int) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
        raise ConfigError(f"the number of neighbours must be 1..{MAX_K}, got {k!r}")
    return k


def cosine_neighbours(weight: torch.Tensor, token_id: int, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The k rows of `weight` (V, D) most cosine-similar to row `token_id`, itself excluded: (ids, cosine)."""
    ids, sims = cosine_neighbours_of([token_id], weight, k)  # (1, k), (1, k)
    return ids[0], sims[0]


def cosine_neighbours_of(
    token_ids: Sequence[int], weight: torch.Tensor, k: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """For each of n tokens, the k rows most cosine-similar to its row, itself excluded: (n, k) ids and
    cosines, most similar first.

    One pass over the matrix for all n tokens (a map asks for dozens), and the rows' lengths divided out of
    the dot products instead of normalising the matrix, which for GPT-2 124M would copy 150 MB."""
    vocab = weight.shape[0]
    for token_id in token_ids:
        if isinstance(token_id, bool) or not isinstance(token_id, int) or not 0 <= token_id < vocab:
            raise ConfigError(f"token id {token_id!r} is not in the embedding matrix (0..{vocab - 1})")
    k = min(_check_k(k), vocab - 1)
    index = torch.tensor(list(token_ids), dtype=torch.long, device=weight.device)  # (n,)
    with torch.no_grad():
        w = weight.detach().float()  # (V, D): a no-op for a float32 model
        norms = w.norm(dim=1).clamp_min(1e-12)  # (V,)
        sims = (w[index] @ w.T) / (norms[index, None] * norms[None, :])  # (n, V)
        sims[torch.arange(len(index)), index] = -float("inf")  # not its own neighbour
        top, ids = torch.topk(sims, k, dim=1)  # (n, k), (n, k)
    return ids.cpu(), top.cpu()


def nearest_neighbours(model: GPTModel, tokenizer: Tokenizer, token_id: int, k: int = 10) -> Neighbours:
    """Token `token_id`'s k nearest neighbours in the model's token-embedding matrix (cosine)."""
    ids, sims = cosine_neighbours(model.tok_emb.weight, token_id, k)
    return Neighbours(
        token_id=int(token_id),
        piece=tokenizer.piece_or_id(token_id),
        ids=ids.numpy().astype(np.int64),
        pieces=tuple(tokenizer.piece_or_id(i) for i in ids.tolist()),
        cosine=sims.numpy().astype(np.float32),
    )


def pca_2d(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows (n, D) -> their coordinates (n, 2) on the two principal axes of the centred rows, and the share
    of the variance each axis holds (2,). An axis's sign is fixed so its largest loading is positive (an SVD
    may return either sign; this makes the map the same from one run to the next). Fewer than two distinct
    points give zeros on the missing axes."""
    x = np.asarray(points, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ConfigError("PCA needs at least one point")
    centred = x - x.mean(axis=0)  # (n, D)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)  # s (r,), vt (r, D)
    axes = np.zeros((2, x.shape[1]))  # (2, D)
    m = min(2, vt.shape[0])
    axes[:m] = vt[:m]
    for a in range(m):
        if axes[a, np.argmax(np.abs(axes[a]))] < 0:
            axes[a] = -axes[a]
    coords = centred @ axes.T  # (n, 2)
    total = float((s**2).sum())
    explained = np.zeros(2)
    if total > 0:
        explained[:m] = s[:m] ** 2 / total
    return coords.astype(np.float32), explained.astype(np.float32)


def embedding_map(
    model: GPTModel, tokenizer: Tokenizer, ids: Sequence[int], k: int = 5, max_tokens: int = 40
) -> EmbeddingMap:
    """The text's distinct tokens (the first `max_tokens`: a map of hundreds of labels is unreadable) and
    each one's k nearest neighbours, on the 2-D PCA of their embedding rows."""
    _check_k(k)
    text: list[int] = []
    for token_id in ids:
        if int(token_id) not in text:
            text.append(int(token_id))
        if len(text) == max_tokens:
            break
    if not text:
        raise ConfigError("the text has no tokens to map")
    weight = model.tok_emb.weight
    near, _ = cosine_neighbours_of(text, weight, k)  # (n_text, k)
    points = list(text)
    seen = set(points)
    of = [-1] * len(text)
    for index, row in enumerate(near.tolist()):
        for other in row:
            if other not in seen:
                seen.add(other)
                points.append(other)
                of.append(index)
    with torch.no_grad():
        rows = weight.detach()[torch.tensor(points, device=weight.device)].float().cpu().numpy()  # (n, D)
    coords, explained = pca_2d(rows)
    return EmbeddingMap(
        ids=np.array(points, dtype=np.int64),
        pieces=tuple(tokenizer.piece_or_id(i) for i in points),
        coords=coords,
        in_text=np.array([o < 0 for o in of], dtype=bool),
        of=np.array(of, dtype=np.int64),
        explained=explained,
    )


__all__ = [
    "MAX_K",
    "EmbeddingMap",
    "Neighbours",
    "cosine_neighbours",
    "cosine_neighbours_of",
    "embedding_map",
    "nearest_neighbours",
    "pca_2d",
]
