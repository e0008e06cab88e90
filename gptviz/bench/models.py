"""Models shared by the benchmarks: ours from a preset, and the book's ch. 4 model holding the same weights.

Copying our weights into the book's layout (split Q/K/V, `trf_blocks`, untied `out_head`) makes the two
sides compute the same function, so a benchmark can check they give the same tokens before timing them.
"""

from __future__ import annotations

import torch

from gptviz.config import GPTConfig
from gptviz.engine.export import book_config, book_state_dict
from gptviz.model import book_reference
from gptviz.model.gpt import GPTModel


def make_pair(cfg: GPTConfig, seed: int = 123) -> tuple[GPTModel, book_reference.GPTModel]:
    """Our model (seeded GPT-2 init) and the book's model holding the same weights, both in eval mode."""
    torch.manual_seed(seed)
    ours = GPTModel(cfg).eval()
    book = book_reference.GPTModel(book_config(cfg))
    missing, unexpected = book.load_state_dict(book_state_dict(ours), strict=False)
    # The book registers its causal mask as a buffer; it is not a weight.
    missing = [k for k in missing if not k.endswith(".att.mask")]
    if missing or unexpected:
        raise RuntimeError(
            f"weight copy to the book's model failed: missing {missing}, unexpected {unexpected}"
        )
    return ours, book.eval()
