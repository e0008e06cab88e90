"""Probes: what the model says about one fixed prompt, recorded at every evaluation of a training run.

A probe is the greedy continuation, the top next tokens with their probabilities, and the attention weights
of every layer and head for the prompt. Scrubbing through the probes of a run shows the model learning:
gibberish becoming words, attention patterns forming.

On disk: RUN_DIR/probes/probe-000100.npz (arrays) and RUN_DIR/probes/probes.jsonl (one line a probe, the
numbers a list needs without opening the arrays). Attention is stored as float16 to keep runs small and
read back as float32.
"""

from __future__ import annotations

import math
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gptviz.engine.atomic import staged_file
from gptviz.engine.rundir import PROBES_INDEX, JsonlWriter, probes_path, read_jsonl, truncate_jsonl
from gptviz.errors import ConfigError
from gptviz.model.gpt import GPTModel, generate_greedy
from gptviz.model.hooks import capture
from gptviz.tokenizer import Tokenizer

ATTENTION_HOOKS = r"blocks\.\d+\.attn\.hook_weights"
PROBE_ATTENTION = "attention.npy"  # the member of a probe's .npz holding the attention weights


@dataclass(frozen=True, eq=False)
class ProbeRecord:
    """One probe. Plain Python numbers and one numpy array, safe to hand to another thread."""

    step: int
    tokens_seen: int
    prompt: str
    prompt_ids: tuple[int, ...]
    prompt_pieces: tuple[str, ...]
    sample_ids: tuple[int, ...]  # the greedy continuation only, not the prompt
    sample_text: str
    top_ids: tuple[int, ...]
    top_pieces: tuple[str, ...]
    top_probs: tuple[float, ...]
    attention: np.ndarray | None  # (L, H, T, T) float32; None when read back without arrays

    def index_record(self, file: str) -> dict[str, Any]:
        return {
            "step": self.step,
            "tokens_seen": self.tokens_seen,
            "file": file,
            "prompt": self.prompt,
            "prompt_ids": list(self.prompt_ids),
            "prompt_pieces": list(self.prompt_pieces),
            "sample_ids": list(self.sample_ids),
            "sample_text": self.sample_text,
            "top_ids": list(self.top_ids),
            "top_pieces": list(self.top_pieces),
            "top_probs": list(self.top_probs),
        }


def probe_prompt_ids(tokenizer: Tokenizer, prompt: str, context_length: int) -> list[int]:
    ids = tokenizer.encode(prompt)
    if not ids:
        raise ConfigError("the probe prompt is empty; give it at least one token")
    return ids[-context_length:]


@torch.no_grad()
def make_probe(
    model: GPTModel,
    tokenizer: Tokenizer,
    prompt: str,
    *,
    step: int,
    tokens_seen: int,
    new_tokens: int = 20,
    top_k: int = 10,
) -> ProbeRecord:
    """Run the prompt once with the attention taps on, then continue it greedily. Uses no random numbers."""
    was_training = model.training
    model.eval()
    try:
        device = model.tok_emb.weight.device
        ids = probe_prompt_ids(tokenizer, prompt, model.cfg.context_length)
        idx = torch.tensor([ids], dtype=torch.long, device=device)  # (1, T)
        with capture(model, ATTENTION_HOOKS) as taps:
            logits = model(idx)  # (1, T, V)
        probs = torch.softmax(logits[0, -1].float(), dim=-1)  # (V,)
        k = min(top_k, probs.numel())
        top_probs, top_ids = torch.topk(probs, k)  # (k,), (k,)
        attention = torch.stack(
            [taps[f"blocks.{layer}.attn.hook_weights"][0] for layer in range(model.cfg.n_layers)]
        )  # (L, H, T, T)
        generated = generate_greedy(model, idx, new_tokens) if new_tokens > 0 else idx  # (1, T + new)
        sample_ids = [int(i) for i in generated[0, len(ids) :].tolist()]
    finally:
        model.train(was_training)
    top_id_list = [int(i) for i in top_ids.tolist()]
    return ProbeRecord(
        step=step,
        tokens_seen=tokens_seen,
        prompt=prompt,
        prompt_ids=tuple(ids),
        prompt_pieces=tuple(tokenizer.piece(i) for i in ids),
        sample_ids=tuple(sample_ids),
        sample_text=tokenizer.decode(sample_ids),
        top_ids=tuple(top_id_list),
        top_pieces=tuple(tokenizer.piece(i) for i in top_id_list),
        top_probs=tuple(float(p) for p in top_probs.tolist()),
        attention=attention.detach().float().cpu().numpy().copy(),
    )


def probe_file_name(step: int) -> str:
    return f"probe-{step:06d}.npz"


def write_probe(run_dir: str | os.PathLike, record: ProbeRecord) -> Path:
    """Arrays first (atomically), then the index line, so an index line always has its file."""
    folder = probes_path(run_dir)
    folder.mkdir(parents=True, exist_ok=True)
    name = probe_file_name(record.step)
    attention = record.attention if record.attention is not None else np.zeros((0, 0, 0, 0), np.float32)
    with staged_file(folder / name) as staging, open(staging, "wb") as handle:
        np.savez(
            handle,
            attention=attention.astype(np.float16),
            prompt_ids=np.asarray(record.prompt_ids, dtype=np.int64),
            sample_ids=np.asarray(record.sample_ids, dtype=np.int64),
            top_ids=np.asarray(record.top_ids, dtype=np.int64),
            top_probs=np.asarray(record.top_probs, dtype=np.float32),
        )
    writer = JsonlWriter(folder / PROBES_INDEX)
    try:
        writer.write(record.index_record(name))
    finally:
        writer.close()
    return folder / name


def truncate_probes(run_dir: str | os.PathLike, max_step: int) -> int:
    return truncate_jsonl(probes_path(run_dir) / PROBES_INDEX, max_step)


def read_probes(run_dir: str | os.PathLike, attention: bool = True) -> list[ProbeRecord]:
    """The probes of a run in step order (for the GUI's time-lapse); arrays loaded only when asked."""
    folder = probes_path(run_dir)
    records = []
    for entry in read_jsonl(folder / PROBES_INDEX):
        weights = None
        if attention:
            file = entry.get("file")
            if not isinstance(file, str) or Path(file).name != file or file in ("", ".", ".."):
                continue  # not a file name inside probes/ (a damaged index, or a path elsewhere)
            weights = load_probe_attention(folder / file)
            if weights is None:
                continue  # arrays lost or damaged: skip this probe rather than fail the whole run
        try:
            records.append(
                ProbeRecord(
                    step=int(entry["step"]),
                    tokens_seen=int(entry["tokens_seen"]),
                    prompt=str(entry["prompt"]),
                    prompt_ids=tuple(int(i) for i in entry["prompt_ids"]),
                    prompt_pieces=tuple(str(p) for p in entry["prompt_pieces"]),
                    sample_ids=tuple(int(i) for i in entry["sample_ids"]),
                    sample_text=str(entry["sample_text"]),
                    top_ids=tuple(int(i) for i in entry["top_ids"]),
                    top_pieces=tuple(str(p) for p in entry["top_pieces"]),
                    top_probs=tuple(float(p) for p in entry["top_probs"]),
                    attention=weights,
                )
            )
        except (KeyError, TypeError, ValueError, OverflowError):  # OverflowError: int(1e400)
            continue
    return records


def load_probe_attention(file: str | os.PathLike) -> np.ndarray | None:
    """A probe file's attention as float32 (L, H, T, T), or None when the file is missing or damaged.

    The .npy header inside the archive is checked before numpy allocates: an array claiming more bytes than
    its member holds (a header saying a terabyte) is refused, not allocated.
    """
    try:
        with zipfile.ZipFile(file) as archive:
            member = archive.getinfo(PROBE_ATTENTION)
            with archive.open(member) as handle:
                version = np.lib.format.read_magic(handle)
                if version == (1, 0):
                    shape, _fortran, dtype = np.lib.format.read_array_header_1_0(handle)
                else:
                    shape, _fortran, dtype = np.lib.format.read_array_header_2_0(handle)
            if dtype.kind != "f" or math.prod(shape) * dtype.itemsize > member.file_size:
                return None
        with np.load(file) as arrays:
            return arrays["attention"].astype(np.float32)  # (L, H, T, T)
    except MemoryError:
        raise
    except Exception:  # noqa: BLE001 - numpy's header parser alone raises SyntaxError, TokenError, ValueError...
        return None
