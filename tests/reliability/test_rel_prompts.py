"""Prompts: empty, whitespace only, longer than the context (cropped, and the crop reported), special tokens,
and Unicode that must survive tokenize -> decode exactly, through the API and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from gptviz.config import GPTConfig
from gptviz.engine.checkpoint import save_checkpoint
from gptviz.engine.generator import Generator
from gptviz.engine.sampling_settings import SamplingSettings
from gptviz.engine.session import Session
from gptviz.errors import ConfigError
from gptviz.model.gpt import GPTModel
from gptviz.tokenizer import END_OF_TEXT, END_OF_TEXT_ID, default_tokenizer

CFG = GPTConfig(context_length=16, emb_dim=8, n_heads=2, n_layers=1, drop_rate=0.0, name="prompts")
GREEDY = SamplingSettings(temperature=0.0, stop_at_eot=False)
UNICODE = [
    "\U0001f469\u200d\U0001f4bb codes \U0001f44d\U0001f3fd",  # ZWJ sequence, skin-tone modifier
    "Zo\u00eb, e\u0301 and \u1e9b\u0323",  # precomposed and combining marks
    "\u05e9\u05dc\u05d5\u05dd \u05e2\u05d5\u05dc\u05dd and \u0645\u0631\u062d\u0628\u0627",  # right-to-left
    "\u4f60\u597d\uff0c\u4e16\u754c \u3053\u3093\u306b\u3061\u306f",
    "tab\tnbsp\u00a0line\u2028sep\r\n",
]


@pytest.fixture(scope="module")
def model() -> GPTModel:
    torch.manual_seed(0)
    return GPTModel(CFG).eval()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, model) -> Path:
    path = tmp_path_factory.mktemp("prompts") / "ckpt"
    save_checkpoint(model, path)
    return path


def test_empty_prompt_is_refused_by_the_generator_and_the_cli(model, checkpoint, cli) -> None:
    with pytest.raises(ConfigError, match="empty"):
        Generator(model, default_tokenizer(), [], GREEDY)
    result = cli("generate", checkpoint, "--prompt", "", "--max-new-tokens", "3")
    assert result.code == 1 and len(result.err_lines) == 1, result.err
    assert "Traceback" not in result.err


def test_empty_prompt_in_the_session_means_end_of_text(model) -> None:
    session = Session(model=model, corpus=None, sampling=GREEDY)
    view = session.set_prompt("")
    assert view.prompt_ids.tolist() == [END_OF_TEXT_ID]
    assert session.gen_step().new_ids.size == 1


@pytest.mark.parametrize("prompt", [" ", "   ", "\n", "\n\n\t ", "\u3000"])
def test_whitespace_only_prompt_generates(model, checkpoint, cli, prompt: str) -> None:
    tok = default_tokenizer()
    ids = tok.encode(prompt)
    assert ids and tok.decode(ids) == prompt
    gen = Generator(model, tok, ids, GREEDY)
    gen.generate(3)
    assert len(gen.new_ids) == 3
    result = cli("generate", checkpoint, "--prompt", prompt, "--max-new-tokens", "3", "--json")
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert data["prompt_ids"] == ids and len(data["new_ids"]) == 3
    assert data["text"].startswith(prompt)


def test_prompt_longer_than_the_context_is_cropped_and_the_crop_reported(model, checkpoint, cli) -> None:
    tok = default_tokenizer()
    prompt = " ".join(f"word{i}" for i in range(30))
    ids = tok.encode(prompt)
    assert len(ids) > CFG.context_length
    gen = Generator(model, tok, ids, GREEDY)
    first = gen.step()
    assert first.cropped == len(ids) - CFG.context_length
    second = gen.step()
    assert second.cropped == len(ids) + 1 - CFG.context_length
    # The cropped run predicts from the last context_length tokens, like the book's idx[:, -context:].
    with torch.no_grad():
        logits = model(torch.tensor([ids[-CFG.context_length :]]))[0, -1]  # (V,)
    assert first.chosen_id == int(torch.argmax(logits))
    # The prompt itself is kept whole: nothing the user typed is lost.
    assert gen.prompt_ids == ids
    result = cli("generate", checkpoint, "--prompt", prompt, "--max-new-tokens", "2", "--json")
    assert result.code == 0 and json.loads(result.out)["prompt_ids"] == ids
    npz = checkpoint.parent / "long.npz"
    result = cli("inspect", checkpoint, "--prompt", prompt, "--out", npz)
    assert result.code == 0, result.err
    assert "cropped" in result.out + result.err


def test_special_token_in_a_prompt(model, checkpoint, cli) -> None:
    tok = default_tokenizer()
    text = f"first{END_OF_TEXT}second"
    pieces = tok.tokenize(text)
    assert [p.id for p in pieces if p.special] == [END_OF_TEXT_ID]
    assert tok.decode([p.id for p in pieces]) == text
    plain = tok.encode(text, allow_special=False)  # typed as text, not as the control token
    assert END_OF_TEXT_ID not in plain and tok.decode(plain) == text
    result = cli("tokenize", "--json", text)
    assert result.code == 0 and END_OF_TEXT_ID in json.loads(result.out)["ids"]
    result = cli("generate", checkpoint, "--prompt", END_OF_TEXT, "--max-new-tokens", "2", "--json")
    assert result.code == 0 and json.loads(result.out)["prompt_ids"] == [END_OF_TEXT_ID]


@pytest.mark.parametrize("text", UNICODE)
def test_unicode_round_trips_through_the_api_and_the_cli(text: str, cli) -> None:
    tok = default_tokenizer()
    pieces = tok.tokenize(text)
    assert tok.decode([p.id for p in pieces]) == text
    assert b"".join(p.data for p in pieces) == text.encode("utf-8")
    result = cli("tokenize", "--json", text)
    assert result.code == 0
    data = json.loads(result.out)
    assert tok.decode(data["ids"]) == text
    assert data["ids"] == [p.id for p in pieces]
