"""What a training run refuses before it allocates anything: settings this model, process layout or device
cannot train (with the device it will train on), and a probe prompt or a text with tokens outside the
model's vocabulary.

Apart from the Trainer (engine/trainer.py) because they are questions about the inputs, not steps of a run:
each reads settings, a config and ids, and answers with a one-line error a user can act on.
"""

from __future__ import annotations

import torch

from gptviz.config import GPTConfig
from gptviz.engine.devices import process_device
from gptviz.engine.distributed import DistInfo
from gptviz.engine.memory import check_fits
from gptviz.engine.probe import probe_prompt_ids
from gptviz.engine.train_settings import TrainSettings
from gptviz.errors import ConfigError, DataError
from gptviz.tokenizer import Tokenizer


def check_trainable(settings: TrainSettings, cfg: GPTConfig, dist: DistInfo, context: int) -> torch.device:
    """Refuse settings this model, process layout or device cannot train, before anything is allocated;
    the device to train on."""
    settings.check_model(cfg)
    if settings.eval_protocol == "book" and dist.enabled:
        raise ConfigError(
            "the book's evaluation protocol runs in one process (its loaders are not sharded); "
            "use --eval-protocol fixed under torchrun"
        )
    device = process_device(settings.device, dist)
    check_fits(
        cfg,
        training=True,
        batch_size=settings.batch_size,
        context=context,
        device=device,
        weights_allocated=True,
    )
    return device


def check_vocabulary(
    cfg: GPTConfig,
    tokenizer: Tokenizer,
    probe_prompt: str,
    train_ids: torch.Tensor,
    val_ids: torch.Tensor | None,
) -> None:
    """The probe prompt and the text must be tokens of this model's vocabulary."""
    if max(probe_prompt_ids(tokenizer, probe_prompt, cfg.context_length)) >= cfg.vocab_size:
        raise ConfigError(
            f"the probe prompt {probe_prompt!r} has tokens outside this model's vocabulary of {cfg.vocab_size}"
        )
    for name, ids in (("training", train_ids), ("validation", val_ids)):
        if ids is not None and ids.numel() and int(ids.max()) >= cfg.vocab_size:
            raise DataError(
                f"the {name} text has token id {int(ids.max())}, outside this model's vocabulary of "
                f"{cfg.vocab_size}"
            )
