"""Generator: cache equality across the context limit, greedy oracle, forcing, undo, stop, reported crop."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from gptviz.config import GPTConfig
from gptviz.engine.generator import Candidate, Generator, GenStep
from gptviz.engine.sampling_settings import SamplingSettings
from gptviz.errors import ConfigError, GptvizError
from gptviz.model.gpt import GPTModel, generate_greedy
from gptviz.tokenizer import END_OF_TEXT_ID, default_tokenizer

GREEDY = SamplingSettings(temperature=0.0)
SAMPLED = SamplingSettings(temperature=1.0, top_k=None, top_p=1.0, seed=1234)


def make_model(context_length: int = 16, seed: int = 0) -> GPTModel:
    torch.manual_seed(seed)
    cfg = GPTConfig(context_length=context_length, emb_dim=32, n_heads=4, n_layers=2, drop_rate=0.0, name="t")
    model = GPTModel(cfg)
    # Random GPT-2 init gives near-uniform logits; sharpen them so greedy choices are far from ties.
    with torch.no_grad():
        model.out_head.weight.mul_(20.0)
    return model.eval()


@pytest.fixture(scope="module")
def model() -> GPTModel:
    return make_model()


@pytest.fixture(scope="module")
def tok():
    return default_tokenizer()


@pytest.fixture(scope="module")
def prompt(tok) -> list[int]:
    return tok.encode("Every effort moves you")


def run(model, tok, prompt, settings, n, use_cache=True) -> Generator:
    gen = Generator(model, tok, prompt, settings, use_cache=use_cache)
    for _ in range(n):
        gen.step()
    return gen


@pytest.mark.parametrize(
    "settings", [GREEDY, SAMPLED, SamplingSettings(temperature=0.9, top_k=20, top_p=0.9, seed=5)]
)
def test_cache_and_no_cache_give_identical_ids_across_the_context_length(model, tok, prompt, settings):
    cached = run(model, tok, prompt, settings, 30, use_cache=True)
    uncached = run(model, tok, prompt, settings, 30, use_cache=False)
    assert len(cached.new_ids) == 30
    assert cached.ids == uncached.ids
    # Context 16, prompt 4: step i sees 4 + i tokens, so from step 12 on the front is cropped.
    crops = [s.cropped for s in cached.history]
    assert crops == [max(0, len(prompt) + i - 16) for i in range(30)]
    assert crops == [s.cropped for s in uncached.history]
    assert crops[-1] == len(prompt) + 29 - 16
    for a, b in zip(cached.history, uncached.history, strict=True):
        assert a.chosen_prob_final == pytest.approx(b.chosen_prob_final, rel=1e-4, abs=1e-7)


def test_greedy_matches_the_models_generate_greedy(model, tok, prompt):
    gen = run(model, tok, prompt, GREEDY, 30)
    oracle = generate_greedy(model, torch.tensor([prompt]), 30, use_cache=False)[0].tolist()
    assert gen.ids == oracle
    assert all(s.greedy and not s.forced for s in gen.history)
    assert all(s.chosen_prob_final == 1.0 and s.kept_count == 1 and s.chosen_rank == 0 for s in gen.history)


def test_seeded_sampling_is_reproducible_and_depends_on_the_seed(model, tok, prompt):
    a = run(model, tok, prompt, SAMPLED, 20)
    b = run(model, tok, prompt, SAMPLED, 20)
    c = run(model, tok, prompt, dataclasses.replace(SAMPLED, seed=99), 20)
    assert a.ids == b.ids
    assert a.ids != c.ids
    assert a.seed == 1234
    a.reset()
    for _ in range(20):
        a.step()
    assert a.ids == b.ids  # reset replays the same random stream


def test_step_reports_candidates_and_probabilities(model, tok, prompt):
    settings = SamplingSettings(temperature=0.7, top_k=5, top_p=1.0, seed=3, n_candidates=8)
    gen = Generator(model, tok, prompt, settings)
    step = gen.step()
    assert isinstance(step, GenStep)
    assert (step.index, step.position, step.cropped, step.forced, step.greedy) == (
        0,
        len(prompt),
        0,
        False,
        False,
    )
    assert step.kept_count == 5
    assert len(step.candidates) == 8
    assert all(isinstance(c, Candidate) and isinstance(c.prob_raw, float) for c in step.candidates)
    raw = [c.prob_raw for c in step.candidates]
    assert raw == sorted(raw, reverse=True)
    # Top-5 at T=0.7: the five best keep all the mass, renormalised and sharpened; the rest get 0.
    final = [c.prob_final for c in step.candidates]
    assert sum(final[:5]) == pytest.approx(1.0, abs=1e-5) and final[5:] == [0.0, 0.0, 0.0]
    logits = torch.tensor([c.logit for c in step.candidates[:5]])  # (5,)
    assert final[:5] == pytest.approx(torch.softmax(logits / 0.7, dim=0).tolist(), abs=1e-5)
    # Oracle for the raw probabilities: a plain forward pass.
    with torch.no_grad():
        probs = torch.softmax(model(torch.tensor([prompt]))[0, -1], dim=-1)  # (V,)
    assert [c.id for c in step.candidates] == torch.topk(probs, 8).indices.tolist()
    assert raw == pytest.approx(torch.topk(probs, 8).values.tolist(), rel=1e-4)
    assert step.chosen_id in [c.id for c in step.candidates[:5]]
    assert step.chosen_piece == tok.piece(step.chosen_id)
    assert step.candidates[0].piece == tok.piece(step.candidates[0].id)
    assert gen.new_ids == [step.chosen_id] and gen.text == tok.decode([step.chosen_id])
    assert gen.full_text == tok.decode(prompt + [step.chosen_id])


def test_a_forced_token_outside_the_top_candidates_is_added_to_them(model, tok, prompt):
    gen = Generator(model, tok, prompt, SamplingSettings(temperature=1.0, top_k=3, n_candidates=4))
    with torch.no_grad():
        probs = torch.softmax(model(torch.tensor([prompt]))[0, -1], dim=-1)  # (V,)
    unlikely = int(torch.argmin(probs))
    step = gen.step(force_id=unlikely)
    assert step.forced and not step.greedy
    assert step.chosen_id == unlikely and gen.new_ids == [unlikely]
    assert len(step.candidates) == 5 and step.candidates[-1].id == unlikely
    assert step.chosen_prob_final == 0.0  # filtered out by top-k, chosen anyway
    assert step.chosen_prob_raw == pytest.approx(float(probs[unlikely]), rel=1e-4)
    assert step.chosen_rank == probs.shape[0] - 1


def test_force_then_undo_restores_ids_and_the_next_greedy_choice(model, tok, prompt):
    gen = run(model, tok, prompt, GREEDY, 5)
    before = gen.ids
    natural = gen.step()
    gen.undo()
    assert gen.ids == before
    other = natural.candidates[3].id
    forced = gen.step(force_id=other)
    assert forced.forced and gen.ids == before + [other]
    undone = gen.undo()
    assert undone == forced
    assert gen.ids == before and len(gen.history) == 5
    again = gen.step()
    assert again.chosen_id == natural.chosen_id
    assert again == natural  # same logits: the cache was truncated, not left holding the forced token
    # After the branch, the rest of the run equals a run that never branched.
    for _ in range(10):
        gen.step()
    assert gen.ids == run(model, tok, prompt, GREEDY, 16).ids


def test_undo_replays_the_same_random_draw(model, tok, prompt):
    gen = run(model, tok, prompt, SAMPLED, 3)
    first = gen.step()
    gen.undo()
    assert gen.step().chosen_id == first.chosen_id


def test_undo_across_the_context_boundary_keeps_cache_equal_to_recompute(model, tok, prompt):
    gen = run(model, tok, prompt, GREEDY, 20)  # 24 tokens in a context of 16
    for _ in range(12):  # back below the context length: the window must move back
        gen.undo()
    assert len(gen.ids) == len(prompt) + 8
    for _ in range(22):
        gen.step()
    assert gen.ids == run(model, tok, prompt, GREEDY, 30, use_cache=False).ids
    while gen.undo() is not None:
        pass
    assert gen.ids == prompt and gen.new_ids == [] and gen.history == []
    assert gen.undo() is None


def test_stop_at_end_of_text(model, tok, prompt):
    gen = Generator(model, tok, prompt, GREEDY)
    gen.step()
    step = gen.step(force_id=END_OF_TEXT_ID)
    assert step.stopped and gen.stopped and step.chosen_piece == "<|endoftext|>"
    nostop = Generator(model, tok, prompt, dataclasses.replace(GREEDY, stop_at_eot=False))
    assert not nostop.step(force_id=END_OF_TEXT_ID).stopped and not nostop.stopped


def test_generate_ends_early_at_end_of_text(tok, prompt):
    model = make_model()
    with torch.no_grad():
        model.out_head.weight[END_OF_TEXT_ID] = model.out_head.weight[END_OF_TEXT_ID] * 0 + 1.0
        model.final_norm.shift.fill_(1.0)  # every hidden state now scores highest on <|endoftext|>
        model.final_norm.scale.fill_(0.0)
    gen = Generator(model, tok, prompt, GREEDY)
    steps = gen.generate(10)
    assert [s.chosen_id for s in steps] == [END_OF_TEXT_ID] and gen.stopped
    gen2 = Generator(model, tok, prompt, dataclasses.replace(GREEDY, stop_at_eot=False))
    assert gen2.generate(4)[-1].chosen_id == END_OF_TEXT_ID and len(gen2.new_ids) == 4


def test_reset_with_a_new_prompt(model, tok, prompt):
    gen = run(model, tok, prompt, GREEDY, 5)
    gen.reset(tok.encode("Hello"))
    assert gen.prompt_ids == tok.encode("Hello") and gen.new_ids == [] and gen.history == []
    gen.step()
    assert gen.ids == generate_greedy(model, torch.tensor([tok.encode("Hello")]), 1)[0].tolist()


def test_settings_can_change_between_steps(model, tok, prompt):
    gen = Generator(model, tok, prompt, SAMPLED)
    gen.step()
    gen.settings = GREEDY
    assert gen.step().greedy
    with pytest.raises(ConfigError):
        gen.settings = {"temperature": 0}


def test_bad_input_is_a_clear_error(model, tok, prompt):
    with pytest.raises(ConfigError, match="empty"):
        Generator(model, tok, [], GREEDY)
    with pytest.raises(ConfigError, match="not a token id"):
        Generator(model, tok, [50257], GREEDY)
    gen = Generator(model, tok, prompt, GREEDY)
    for bad in (-1, 50257, 3.0, True):
        with pytest.raises(GptvizError, match="forced token"):
            gen.step(force_id=bad)
    assert gen.ids == prompt
    with pytest.raises(ConfigError):
        gen.generate(-1)


def test_generation_puts_a_training_model_in_eval_mode(tok, prompt):
    torch.manual_seed(0)
    cfg = GPTConfig(context_length=16, emb_dim=32, n_heads=4, n_layers=2, drop_rate=0.5)
    model = GPTModel(cfg).train()
    a = run(model, tok, prompt, GREEDY, 5)
    assert not model.training
    assert a.ids == run(model, tok, prompt, GREEDY, 5, use_cache=False).ids


def test_steps_are_plain_values():
    model = make_model(context_length=8)
    gen = Generator(model, default_tokenizer(), [1, 2, 3], SAMPLED)
    step = gen.step()
    for value in dataclasses.asdict(step).values():
        assert not isinstance(value, torch.Tensor)
    assert all(type(c.id) is int and type(c.logit) is float for c in step.candidates)
    with pytest.raises(dataclasses.FrozenInstanceError):
        step.chosen_id = 0  # type: ignore[misc]


def test_a_model_moved_to_another_dtype_gets_a_fresh_cache(tok, prompt):
    model = make_model()
    gen = run(model, tok, prompt, GREEDY, 3)
    model.double()
    for _ in range(3):
        gen.step()
    assert gen._cache is not None and gen._cache.keys[0].dtype == torch.float64
    assert gen.ids == run(model, tok, prompt, GREEDY, 6, use_cache=False).ids


def test_invalidate_cache_after_the_weights_change_in_place(tok, prompt):
    model = make_model()
    gen = run(model, tok, prompt, GREEDY, 4)
    with torch.no_grad():
        for block in model.blocks:
            block.attn.W_qkv.weight.mul_(-3.0)  # different keys and values for the same tokens
    gen.invalidate_cache()
    step = gen.step()
    with torch.no_grad():
        logits = model(torch.tensor([gen.ids[:-1]]))[0, -1]  # (V,)
    assert step.chosen_id == int(logits.argmax())
    assert step.candidates[0].logit == pytest.approx(float(logits.max()), rel=1e-4)
