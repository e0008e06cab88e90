"""A random Hugging Face GPT-2 (eager attention) with every parameter drawn, and the same weights imported
into gptviz: the oracle pair the intervention tests (ablation, patching, attribution) compare."""

from __future__ import annotations

from pathlib import Path

import torch


def random_hf_gpt2(n_embd: int, n_layer: int, n_head: int, n_positions: int, seed: int):
    """Norm scales near 1, everything else N(0, 0.3^2): far from the defaults, so no term hides."""
    import transformers

    config = transformers.GPT2Config(
        n_embd=n_embd,
        n_layer=n_layer,
        n_head=n_head,
        n_positions=n_positions,
        vocab_size=50257,
        attn_implementation="eager",
    )
    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel(config)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen)  # same shape as p
            scale = ".ln_" in name or name.startswith("transformer.ln_f")
            p.copy_(1.0 + 0.2 * noise if scale and name.endswith("weight") else 0.3 * noise)
    return model.eval()


def imported(hf_model, folder: Path):
    """The same weights as a gptviz model, through save_pretrained and gptviz's importer."""
    from gptviz.engine.importers import import_weights

    hf_model.save_pretrained(folder)
    return import_weights(folder).eval()
