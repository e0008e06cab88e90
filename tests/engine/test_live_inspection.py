"""The live inspection (one token a step) against a from-scratch inspection of the same ids.

After any sequence of steps, forced tokens, undos, resets, new prompts, crops, weight changes and changed
pane choices, every array of `Session.inspect()` must equal `inspect_tokens` over the same ids: 1e-5 for
the float32 arrays; attention (stored at float16 precision) within one float16 step of the oracle's own
float16 value, since the two passes differ in the last float32 bits and a value can round either way.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gptviz.config import GPTConfig
from gptviz.engine.inspection import inspect_tokens, thumbnail_side
from gptviz.engine.sampling_settings import SamplingSettings
from gptviz.engine.session import Session
from gptviz.model import GPTModel
from gptviz.tokenizer import default_tokenizer

# Context 150: crops happen, and the thumbnails pass their 64- and 128-token block changes.
CFG = GPTConfig(context_length=150, emb_dim=32, n_heads=2, n_layers=3, drop_rate=0.0)
F32 = {"rtol": 1e-5, "atol": 1e-5}
FP16_STEP = {"rtol": 2**-10, "atol": 1e-7}  # one float16 step (11 significant bits), subnormals absolute


def sharp_model(seed: int = 0) -> GPTModel:
    """A random model with sharp distributions, so top-k lists have no near-ties to reorder."""
    torch.manual_seed(seed)
    model = GPTModel(CFG).eval()
    with torch.no_grad():
        model.tok_emb.weight.normal_(0.0, 1.0)
        for block in model.blocks:
            block.attn.W_qkv.weight.normal_(0.0, 0.3)
    return model


@pytest.fixture(scope="module")
def tokenizer():
    return default_tokenizer()


def make_session(tokenizer, seed: int = 0) -> Session:
    # Sampling, not greedy: random ids. An <|endoftext|> drawn must not end the sequence (a step after it
    # would refuse), whatever the draws: they change with the last bits of the logits.
    sampling = SamplingSettings(temperature=1.0, top_k=0, top_p=1.0, seed=seed, stop_at_eot=False)
    return Session(
        sharp_model(seed), tokenizer, corpus=None, prompt="Every effort moves you", sampling=sampling
    )


def assert_top_lists_equal(ids_a, probs_a, ids_b, probs_b) -> None:
    np.testing.assert_allclose(probs_a, probs_b, **F32)
    # Ids must agree except where two probabilities are too close to order (none with these weights).
    gaps = np.abs(np.diff(probs_b, axis=-1)) > 1e-5
    same = ids_a == ids_b
    assert np.all(same[..., :-1] | ~gaps) and np.all(same[..., 1:] | ~gaps)


def assert_same_snapshot(live, oracle) -> None:
    np.testing.assert_array_equal(live.token_ids, oracle.token_ids)
    assert live.pieces == oracle.pieces
    assert live.cropped == oracle.cropped
    assert live.mlp_layer == oracle.mlp_layer and live.lens_position == oracle.lens_position
    np.testing.assert_allclose(np.asarray(live.attention), np.asarray(oracle.attention), **FP16_STEP)
    side = thumbnail_side(oracle.n_tokens)
    assert live.attention.thumbnails.shape == oracle.attention.thumbnails.shape == (3, 2, side, side)
    for a, b in (
        (live.attention.thumbnails, oracle.attention.thumbnails),
        (live.attention.thumbnails_skip_first, oracle.attention.thumbnails_skip_first),
    ):
        np.testing.assert_allclose(a.astype(np.float32), b.astype(np.float32), rtol=2**-9, atol=1e-6)
    np.testing.assert_allclose(live.residual_norms, oracle.residual_norms, **F32)
    np.testing.assert_allclose(live.ln_stats, oracle.ln_stats, **F32)
    np.testing.assert_allclose(live.mlp_post, oracle.mlp_post, **F32)
    assert_top_lists_equal(live.lens_ids, live.lens_probs, oracle.lens_ids, oracle.lens_probs)
    assert_top_lists_equal(live.next_ids, live.next_probs, oracle.next_ids, oracle.next_probs)


def oracle_for(session: Session, mlp_layer: int, lens_position: int):
    return inspect_tokens(
        session.model,
        session.tokenizer,
        session.current_ids(),
        mlp_layer=mlp_layer,
        lens_position=lens_position,
    )


def check(session: Session, mlp_layer: int = 0, lens_position: int = -1) -> None:
    live = session.inspect(mlp_layer=mlp_layer, lens_position=lens_position)
    assert_same_snapshot(live, oracle_for(session, mlp_layer, live.lens_position))


def test_steps_grow_the_snapshot_one_token_at_a_time_and_equal_a_full_pass(tokenizer):
    session = make_session(tokenizer)
    check(session)
    for _ in range(70):  # past 64 tokens: the thumbnails' cells double
        session.gen_step()
        check(session)


def test_a_step_feeds_one_token_and_keeps_earlier_rows(tokenizer):
    session = make_session(tokenizer)
    first = session.inspect()
    fed = []
    original = session.generator.feed

    def spy(names, extra_rows=None):
        result = original(names, extra_rows)
        fed.append(None if result is None else (result.first, len(result.window_ids)))
        return result

    session.generator.feed = spy
    session.gen_step()
    second = session.inspect()
    assert fed == [(first.n_tokens, first.n_tokens + 1)]  # one new position, nothing before it again
    assert second.lineage == first.lineage
    np.testing.assert_array_equal(np.asarray(second.attention)[:, :, :-1, :-1], np.asarray(first.attention))
    np.testing.assert_array_equal(second.residual_norms[:, :-1], first.residual_norms)
    session.inspect()
    assert fed[-1] is None  # asked again with nothing new: nothing runs


def test_an_old_snapshot_is_unchanged_by_later_steps_and_undos(tokenizer):
    session = make_session(tokenizer)
    for _ in range(3):
        session.gen_step()
    old = session.inspect()
    kept = {
        "attention": np.asarray(old.attention).copy(),
        "thumbs": old.attention.thumbnails.copy(),
        "norms": old.residual_norms.copy(),
        "mlp": old.mlp_post.copy(),
    }
    session.undo()
    session.undo()
    session.inspect()
    for _ in range(4):
        session.gen_step()
        session.inspect(mlp_layer=2)
    np.testing.assert_array_equal(np.asarray(old.attention), kept["attention"])
    np.testing.assert_array_equal(old.attention.thumbnails, kept["thumbs"])
    np.testing.assert_array_equal(old.residual_norms, kept["norms"])
    np.testing.assert_array_equal(old.mlp_post, kept["mlp"])
    assert not old.residual_norms.flags.writeable


def test_generation_is_the_same_whether_or_not_the_panes_watch(tokenizer):
    watched, alone = make_session(tokenizer, seed=3), make_session(tokenizer, seed=3)
    for _ in range(40):
        watched.gen_step()
        watched.inspect()
        alone.gen_step()
    assert watched.current_ids() == alone.current_ids()
    a, b = watched.generation_view(), alone.generation_view()
    # Watched, the step's output head also carries the logit lens rows (one matrix product of L+1 rows
    # instead of 1), so the probabilities may differ in the last float32 bit, never the choices.
    np.testing.assert_allclose(a.new_probs, b.new_probs, rtol=1e-6, atol=1e-7)


def test_past_the_context_each_step_is_a_crop_and_still_equal(tokenizer):
    session = make_session(tokenizer)
    session.set_prompt(" ".join(["token"] * 146))
    for _ in range(6):
        session.gen_step()
        check(session, lens_position=-1)
    assert session.inspect().cropped > 0


OPS = st.one_of(
    st.tuples(st.just("step"), st.integers(1, 12)),
    st.tuples(st.just("force"), st.integers(0, 50256)),
    st.tuples(st.just("follow"), st.integers(1, 5)),  # Play between redraws: steps with no snapshot made
    st.tuples(st.just("undo"), st.integers(1, 5)),
    st.tuples(st.just("reset"), st.just(0)),
    st.tuples(st.just("prompt"), st.integers(1, 140)),
    st.tuples(st.just("weights"), st.integers(0, 1000)),
    st.tuples(st.just("mlp"), st.integers(0, 2)),
    st.tuples(st.just("lens"), st.integers(-1, 200)),
)


@settings(
    max_examples=int(os.environ.get("LIVE_EXAMPLES", "25")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(ops=st.lists(OPS, min_size=1, max_size=8), check_each=st.booleans())
def test_any_sequence_of_operations_keeps_the_live_snapshot_equal_to_a_full_pass(tokenizer, ops, check_each):
    session = make_session(tokenizer)
    mlp_layer, lens = 0, -1
    session.inspect()
    for op, arg in ops:
        if op == "step":
            for _ in range(arg):
                session.gen_step()
        elif op == "follow":
            for _ in range(arg):
                session.gen_step()
                session.follow_generation(mlp_layer=mlp_layer, lens_position=lens)
        elif op == "force":
            session.force(arg)
        elif op == "undo":
            for _ in range(arg):
                session.undo()
        elif op == "reset":
            session.reset_generation()
        elif op == "prompt":
            session.set_prompt(" x" * arg)
        elif op == "weights":  # a training step changes the weights in place
            with torch.no_grad():
                session.model.blocks[arg % 3].ff.fc1.weight.mul_(1.01)
            session._weights_changed()
        elif op == "mlp":
            mlp_layer = arg
        elif op == "lens":
            lens = arg
        if check_each:
            check(session, mlp_layer, lens)
    check(session, mlp_layer, lens)


def test_new_weights_then_a_step_recompute_every_row(tokenizer):
    """Found by the sequence test: rows of the old weights must not stay under a row of the new ones."""
    session = make_session(tokenizer)
    session.inspect()
    with torch.no_grad():
        session.model.blocks[0].attn.W_qkv.weight.mul_(1.5)
    session._weights_changed()
    session.gen_step()
    check(session)


def test_tokens_followed_without_a_snapshot_defer_the_lens_and_still_equal_a_full_pass(tokenizer):
    """Play between redraws: `follow_generation` keeps every row live but puts no lens rows through the
    output head (the feed's head product is one row); the snapshot made later computes the lens of the
    token it shows from the rows it kept, and equals a full pass, also after an undo past that token."""
    session = make_session(tokenizer)
    session.inspect()
    heads = []
    original = session.model.head

    def counting_head(rows):
        heads.append(rows.shape[0])
        return original(rows)

    session.model.head = counting_head
    for _ in range(5):
        session.gen_step()
        session.follow_generation()
    assert heads == [1] * 5  # each followed token: only its own next-token row through the head
    shown = session.inspect()
    assert heads[5:] == [session.model.cfg.n_layers + 1]  # the snapshot: the shown token's lens, once
    assert_same_snapshot(shown, oracle_for(session, 0, shown.lens_position))
    session.gen_step()
    session.follow_generation()
    session.undo()
    session.undo()  # past the followed token whose lens rows were kept
    check(session)


def test_followed_tokens_attention_rows_wait_for_the_snapshot_then_come_in_one_product_a_layer(tokenizer):
    """A followed token's attention rows are not computed until a snapshot needs them; then the rows that
    waited come from one product a layer over the cached keys, and equal a full pass: at the next snapshot
    step, at an inspection with nothing new fed, and after an undo that cuts into the waiting rows."""
    session = make_session(tokenizer)
    session.inspect()
    live = session._live
    assert live is not None
    held = live.n
    for _ in range(3):
        session.gen_step()
        session.follow_generation()
    assert live.n == held + 3 and live._packed_rows == held and len(live._waiting_q) == 3
    session.gen_step()
    check(session)  # a snapshot step: the three that waited and its own row, together
    assert live._packed_rows == live.n and not live._waiting_q
    for _ in range(3):
        session.gen_step()
        session.follow_generation()
    check(session)  # nothing new to feed: the rows settle from the keys the last feed left
    for _ in range(4):
        session.gen_step()
        session.follow_generation()
    session.undo()
    session.undo()  # two of the four waiting rows go; the two before the cut are computed first
    check(session)
    session.gen_step()
    session.follow_generation()
    session.force(50256)
    check(session)
