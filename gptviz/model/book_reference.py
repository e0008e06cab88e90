"""The book's own ch. 4 GPTModel, written the book's way, kept as a reference and a baseline.

"Build a Large Language Model (From Scratch)" builds its GPT with a dict config, separate W_query / W_key /
W_value projections, a registered causal-mask buffer, a hand-written LayerNorm and GELU, and
`generate_text_simple` that re-runs the whole context for every new token. gptviz.model.gpt is the same
network with a fused Q/K/V projection, taps, a fast attention path and a KV cache.

Source, followed closely: Sebastian Raschka, "Build a Large Language Model (From Scratch)", Manning, 2024,
chapters 2-5, and the book's code at https://github.com/rasbt/LLMs-from-scratch (Apache License 2.0).

The ch. 2 data loader (`GPTDatasetV1`, `create_dataloader_v1`) and the ch. 5 training loop
(`calc_loss_batch`, `calc_loss_loader`, `evaluate_model`, `train_model_simple`) are here too, as the book
writes them (its repository, rasbt/LLMs-from-scratch, ch. 2 and ch. 5 main-chapter code; Apache-2.0), with
two changes that do not touch the numbers: the tokenizer is passed in (the book calls
`tiktoken.get_encoding("gpt2")`, which downloads; gptviz's tokenizer has the same ranks) and the loop does
not print samples (the book's `generate_and_print_sample` is greedy and draws no random numbers).

This module is not used by the app. It exists so that:
- tests can write `.pth` files with exactly the book's state_dict keys (`trf_blocks.0.att.W_query.weight`,
  `trf_blocks.0.ff.layers.0.weight`, `trf_blocks.0.norm1.scale`, `final_norm.shift`, `out_head.weight`) and
  check that `gptviz.engine.importers.import_weights` reads them;
- benchmarks can compare gptviz against "the book's way";
- `gptviz train --recipe book-ch5` can be tested against the book's own loop (`book_ch5_run`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

# The book's ch. 4 configuration dictionary for the 124M model.
GPT_CONFIG_124M: dict[str, Any] = {
    "vocab_size": 50257,
    "context_length": 1024,
    "emb_dim": 768,
    "n_heads": 12,
    "n_layers": 12,
    "drop_rate": 0.1,
    "qkv_bias": False,
}


class MultiHeadAttention(nn.Module):
    """Causal multi-head attention with separate query/key/value projections (book ch. 3.6)."""

    mask: torch.Tensor  # the buffer registered below; declared so a type checker reads it as a tensor

    def __init__(
        self,
        d_in: int,
        d_out: int,
        context_length: int,
        dropout: float,
        num_heads: int,
        qkv_bias: bool = False,
    ) -> None:
        super().__init__()
        assert d_out % num_heads == 0, "d_out must be divisible by num_heads"
        self.d_out = d_out
        self.num_heads = num_heads
        self.head_dim = d_out // num_heads
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.out_proj = nn.Linear(d_out, d_out)
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("mask", torch.triu(torch.ones(context_length, context_length), diagonal=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, num_tokens, d_in = x.shape
        keys = self.W_key(x)  # (b, T, d_out)
        queries = self.W_query(x)  # (b, T, d_out)
        values = self.W_value(x)  # (b, T, d_out)

        keys = keys.view(b, num_tokens, self.num_heads, self.head_dim).transpose(1, 2)  # (b, H, T, hd)
        queries = queries.view(b, num_tokens, self.num_heads, self.head_dim).transpose(1, 2)  # (b, H, T, hd)
        values = values.view(b, num_tokens, self.num_heads, self.head_dim).transpose(1, 2)  # (b, H, T, hd)

        attn_scores = queries @ keys.transpose(2, 3)  # (b, H, T, T)
        mask_bool = self.mask.bool()[:num_tokens, :num_tokens]  # (T, T)
        attn_scores.masked_fill_(mask_bool, -torch.inf)  # (b, H, T, T)
        attn_weights = torch.softmax(attn_scores / keys.shape[-1] ** 0.5, dim=-1)  # (b, H, T, T)
        attn_weights = self.dropout(attn_weights)  # (b, H, T, T)

        context_vec = (attn_weights @ values).transpose(1, 2)  # (b, T, H, hd)
        context_vec = context_vec.contiguous().view(b, num_tokens, self.d_out)  # (b, T, d_out)
        return self.out_proj(context_vec)  # (b, T, d_out)


class LayerNorm(nn.Module):
    """Normalise over the last dimension with the biased variance, then scale and shift (book ch. 4.2)."""

    def __init__(self, emb_dim: int) -> None:
        super().__init__()
        self.eps = 1e-5
        self.scale = nn.Parameter(torch.ones(emb_dim))
        self.shift = nn.Parameter(torch.zeros(emb_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=-1, keepdim=True)  # (b, T, 1)
        var = x.var(dim=-1, keepdim=True, unbiased=False)  # (b, T, 1)
        norm_x = (x - mean) / torch.sqrt(var + self.eps)  # (b, T, D)
        return self.scale * norm_x + self.shift  # (b, T, D)


class GELU(nn.Module):
    """The tanh approximation of GELU, written out as in the book (ch. 4.3)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (
            0.5
            * x
            * (1 + torch.tanh(torch.sqrt(torch.tensor(2.0 / torch.pi)) * (x + 0.044715 * torch.pow(x, 3))))
        )  # same shape as x


class FeedForward(nn.Module):
    """Linear to 4x the width, GELU, Linear back (book ch. 4.3)."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(cfg["emb_dim"], 4 * cfg["emb_dim"]),
            GELU(),
            nn.Linear(4 * cfg["emb_dim"], cfg["emb_dim"]),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)  # (b, T, D)


class TransformerBlock(nn.Module):
    """Pre-norm block with shortcut connections (book ch. 4.5)."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        super().__init__()
        self.att = MultiHeadAttention(
            d_in=cfg["emb_dim"],
            d_out=cfg["emb_dim"],
            context_length=cfg["context_length"],
            num_heads=cfg["n_heads"],
            dropout=cfg["drop_rate"],
            qkv_bias=cfg["qkv_bias"],
        )
        self.ff = FeedForward(cfg)
        self.norm1 = LayerNorm(cfg["emb_dim"])
        self.norm2 = LayerNorm(cfg["emb_dim"])
        self.drop_shortcut = nn.Dropout(cfg["drop_rate"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x  # (b, T, D)
        x = self.norm1(x)  # (b, T, D)
        x = self.att(x)  # (b, T, D)
        x = self.drop_shortcut(x)  # (b, T, D)
        x = x + shortcut  # (b, T, D)

        shortcut = x  # (b, T, D)
        x = self.norm2(x)  # (b, T, D)
        x = self.ff(x)  # (b, T, D)
        x = self.drop_shortcut(x)  # (b, T, D)
        return x + shortcut  # (b, T, D)


class GPTModel(nn.Module):
    """Embeddings, a stack of transformer blocks, a final norm and an untied output head (book ch. 4.6)."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        super().__init__()
        self.tok_emb = nn.Embedding(cfg["vocab_size"], cfg["emb_dim"])
        self.pos_emb = nn.Embedding(cfg["context_length"], cfg["emb_dim"])
        self.drop_emb = nn.Dropout(cfg["drop_rate"])
        self.trf_blocks = nn.Sequential(*[TransformerBlock(cfg) for _ in range(cfg["n_layers"])])
        self.final_norm = LayerNorm(cfg["emb_dim"])
        self.out_head = nn.Linear(cfg["emb_dim"], cfg["vocab_size"], bias=False)

    def forward(self, in_idx: torch.Tensor) -> torch.Tensor:
        batch_size, seq_len = in_idx.shape
        tok_embeds = self.tok_emb(in_idx)  # (b, T, D)
        pos_embeds = self.pos_emb(torch.arange(seq_len, device=in_idx.device))  # (T, D)
        x = tok_embeds + pos_embeds  # (b, T, D)
        x = self.drop_emb(x)  # (b, T, D)
        x = self.trf_blocks(x)  # (b, T, D)
        x = self.final_norm(x)  # (b, T, D)
        return self.out_head(x)  # (b, T, V)


def generate_text_simple(
    model: nn.Module, idx: torch.Tensor, max_new_tokens: int, context_size: int
) -> torch.Tensor:
    """Greedy decoding that re-runs the whole (cropped) context for every new token (book ch. 4.7)."""
    for _ in range(max_new_tokens):
        idx_cond = idx[:, -context_size:]  # (b, <=context_size)
        with torch.no_grad():
            logits = model(idx_cond)  # (b, T, V)
        logits = logits[:, -1, :]  # (b, V)
        probas = torch.softmax(logits, dim=-1)  # (b, V)
        idx_next = torch.argmax(probas, dim=-1, keepdim=True)  # (b, 1)
        idx = torch.cat((idx, idx_next), dim=1)  # (b, T+1)
    return idx


# ------------------------------------------------------------------------------------------ ch. 2 data


class GPTDatasetV1(Dataset):
    """Windows of max_length tokens every `stride` tokens, targets shifted by one (book ch. 2.6)."""

    def __init__(self, txt: str, tokenizer: Any, max_length: int, stride: int) -> None:
        self.input_ids: list[torch.Tensor] = []
        self.target_ids: list[torch.Tensor] = []
        token_ids = tokenizer.encode(txt, allowed_special={"<|endoftext|>"})
        for i in range(0, len(token_ids) - max_length, stride):
            input_chunk = token_ids[i : i + max_length]
            target_chunk = token_ids[i + 1 : i + max_length + 1]
            self.input_ids.append(torch.tensor(input_chunk))  # (max_length,)
            self.target_ids.append(torch.tensor(target_chunk))  # (max_length,)

    def __len__(self) -> int:
        return len(self.input_ids)

    def __getitem__(self, idx: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.input_ids[idx], self.target_ids[idx]


def create_dataloader_v1(
    txt: str,
    tokenizer: Any,
    batch_size: int = 4,
    max_length: int = 256,
    stride: int = 128,
    shuffle: bool = True,
    drop_last: bool = True,
    num_workers: int = 0,
) -> DataLoader:
    """The book's loader (ch. 2.6): no generator of its own, so shuffling draws from the global RNG."""
    dataset = GPTDatasetV1(txt, tokenizer, max_length, stride)
    return DataLoader(
        dataset, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last, num_workers=num_workers
    )


# ------------------------------------------------------------------------------------------ ch. 5 loop


def calc_loss_batch(
    input_batch: torch.Tensor, target_batch: torch.Tensor, model: nn.Module, device: torch.device
) -> torch.Tensor:
    """Mean cross-entropy of one batch (book ch. 5.1)."""
    input_batch, target_batch = input_batch.to(device), target_batch.to(device)  # (b, T), (b, T)
    logits = model(input_batch)  # (b, T, V)
    return torch.nn.functional.cross_entropy(logits.flatten(0, 1), target_batch.flatten())  # ()


def calc_loss_loader(
    data_loader: DataLoader, model: nn.Module, device: torch.device, num_batches: int | None = None
) -> float:
    """Mean of the first num_batches batch losses; iterating a shuffled loader draws a new order (ch. 5.1)."""
    total_loss = 0.0
    if len(data_loader) == 0:
        return float("nan")
    elif num_batches is None:
        num_batches = len(data_loader)
    else:
        num_batches = min(num_batches, len(data_loader))
    for i, (input_batch, target_batch) in enumerate(data_loader):
        if i < num_batches:
            loss = calc_loss_batch(input_batch, target_batch, model, device)
            total_loss += loss.item()
        else:
            break
    return total_loss / num_batches


def evaluate_model(
    model: nn.Module, train_loader: DataLoader, val_loader: DataLoader, device: torch.device, eval_iter: int
) -> tuple[float, float]:
    """Train and validation loss over eval_iter batches each, in eval mode (book ch. 5.2)."""
    model.eval()
    with torch.no_grad():
        train_loss = calc_loss_loader(train_loader, model, device, num_batches=eval_iter)
        val_loss = calc_loss_loader(val_loader, model, device, num_batches=eval_iter)
    model.train()
    return train_loss, val_loss


def train_model_simple(
    model: nn.Module,
    train_loader: DataLoader,
    val_loader: DataLoader,
    optimizer: torch.optim.Optimizer,
    device: torch.device,
    num_epochs: int,
    eval_freq: int,
    eval_iter: int,
) -> tuple[list[float], list[float], list[int]]:
    """The book's training loop (ch. 5.2), less the sample it prints after each epoch.

    Its "Step N" evaluation comes after N + 1 optimizer steps (global_step starts at -1).
    """
    train_losses: list[float] = []
    val_losses: list[float] = []
    track_tokens_seen: list[int] = []
    tokens_seen, global_step = 0, -1
    for _epoch in range(num_epochs):
        model.train()
        for input_batch, target_batch in train_loader:
            optimizer.zero_grad()
            loss = calc_loss_batch(input_batch, target_batch, model, device)
            loss.backward()
            optimizer.step()
            tokens_seen += input_batch.numel()
            global_step += 1
            if global_step % eval_freq == 0:
                train_loss, val_loss = evaluate_model(model, train_loader, val_loader, device, eval_iter)
                train_losses.append(train_loss)
                val_losses.append(val_loss)
                track_tokens_seen.append(tokens_seen)
    return train_losses, val_losses, track_tokens_seen


def book_ch5_run(
    text: str,
    tokenizer: Any,
    cfg: dict[str, Any],
    *,
    num_epochs: int = 10,
    batch_size: int = 2,
    lr: float = 0.0004,
    weight_decay: float = 0.1,
    eval_freq: int = 5,
    eval_iter: int = 5,
    seed: int = 123,
) -> tuple[list[float], list[float], list[int]]:
    """The book's ch. 5 run in its order: split the characters 90/10, build both loaders, seed, build the
    model, AdamW over every parameter, train_model_simple (ch. 5.1-5.2, and gpt_train.py's `main`)."""
    train_ratio = 0.90
    split_idx = int(train_ratio * len(text))
    train_data, val_data = text[:split_idx], text[split_idx:]
    ctx = cfg["context_length"]
    train_loader = create_dataloader_v1(
        train_data, tokenizer, batch_size=batch_size, max_length=ctx, stride=ctx, drop_last=True, shuffle=True
    )
    val_loader = create_dataloader_v1(
        val_data, tokenizer, batch_size=batch_size, max_length=ctx, stride=ctx, drop_last=False, shuffle=False
    )
    device = torch.device("cpu")
    torch.manual_seed(seed)
    model = GPTModel(cfg)
    model.to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    return train_model_simple(
        model, train_loader, val_loader, optimizer, device, num_epochs, eval_freq, eval_iter
    )
