"""The generation step in C (native_decode, decode_step.c) against the PyTorch step and HF's GPT-2, the cases
it must leave to PyTorch, and its build: cached per machine, and a missing or failing compiler falls back."""

from __future__ import annotations

import os

import pytest
import torch

from gptviz.config import GPTConfig
from gptviz.engine.generator import Generator
from gptviz.engine.sampling_settings import SamplingSettings
from gptviz.model import capture, native_decode
from gptviz.model.gpt import GPTModel
from gptviz.model.hooks import intervene
from gptviz.tokenizer import default_tokenizer

GREEDY = SamplingSettings(temperature=0.0, top_k=None, top_p=1.0, seed=0, stop_at_eot=False)


@pytest.fixture(autouse=True)
def _built():
    """Every test starts from the session's library (a test that breaks the compiler forgets it after)."""
    if native_decode.library() is None:
        pytest.skip(f"no C step on this machine: {native_decode.status()}")
    yield
    if native_decode.library() is None:
        native_decode.forget_library()


def _random_model(cfg: GPTConfig, seed: int) -> GPTModel:
    """Every parameter drawn far from its default (norm scales near 1), so no term of the step hides."""
    torch.manual_seed(seed)
    model = GPTModel(cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(".scale"):
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
            else:
                p.normal_(0.0, 0.3)
    return model


CONFIGS = [
    GPTConfig(
        vocab_size=50257, context_length=24, emb_dim=32, n_heads=4, n_layers=2, drop_rate=0.0, name="a"
    ),
    # a bias on Q/K/V, head width 16, no tie, a small vocabulary
    GPTConfig(
        vocab_size=300,
        context_length=24,
        emb_dim=48,
        n_heads=3,
        n_layers=3,
        drop_rate=0.0,
        qkv_bias=True,
        tie_weights=False,
        name="b",
    ),
    # widths that are not a multiple of the C loop's 32 lanes (100, 25 per head, 400 inside)
    GPTConfig(vocab_size=77, context_length=24, emb_dim=100, n_heads=4, n_layers=1, drop_rate=0.0, name="c"),
]


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: c.name)
def test_each_step_equals_the_pytorch_step_and_fills_the_same_cache(cfg):
    model = _random_model(cfg, seed=3)
    ids = torch.randint(0, cfg.vocab_size, (cfg.context_length,), generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        theirs, ours = model.new_cache(1), model.new_cache(1)
        model.hidden(ids[None, :5], theirs)  # the prompt goes through PyTorch on both sides
        model.hidden(ids[None, :5], ours)
        for pos in range(5, cfg.context_length):
            expected = model.head(model.hidden(ids[None, pos : pos + 1], theirs))[0, -1]  # (V,)
            fed = native_decode.step(model, ours, int(ids[pos]))
            assert fed is not None and fed.logits is not None and ours.length == theirs.length == pos + 1
            got = fed.logits  # (V,)
            torch.testing.assert_close(got, expected, rtol=1e-5, atol=2e-5)
        for mine, reference in zip(ours.keys + ours.values, theirs.keys + theirs.values, strict=True):
            torch.testing.assert_close(mine, reference, rtol=1e-5, atol=2e-5)
        # a full cache: the step leaves it alone (the Generator recomputes the moved window in PyTorch)
        assert native_decode.step(model, ours, 0) is None and ours.length == cfg.context_length


def test_steps_equal_hf_gpt2s_logits(tmp_path):
    transformers = pytest.importorskip("transformers")
    from hf_random import imported, random_hf_gpt2

    hf = random_hf_gpt2(n_embd=64, n_layer=2, n_head=4, n_positions=32, seed=5)
    model = imported(hf, tmp_path / "hf")
    ids = torch.randint(0, 50257, (1, 20), generator=torch.Generator().manual_seed(2))  # (1, T)
    with torch.inference_mode():
        reference = hf(ids).logits[0]  # (T, V)
        cache = model.new_cache(1)
        model.hidden(ids[:, :3], cache)
        for pos in range(3, 20):
            fed = native_decode.step(model, cache, int(ids[0, pos]))
            assert fed is not None and fed.logits is not None
            torch.testing.assert_close(fed.logits, reference[pos], rtol=1e-4, atol=1e-4)
    assert isinstance(transformers.__version__, str)


def _greedy_ids(model: GPTModel, steps: int) -> list[int]:
    tok = default_tokenizer()
    gen = Generator(model, tok, tok.encode("The cat sat on"), GREEDY)
    return [s.chosen_id for s in gen.generate(steps)]


def test_generation_chooses_the_same_ids_in_c_and_in_pytorch_across_the_context_limit(monkeypatch):
    model = _random_model(CONFIGS[0], seed=7)
    monkeypatch.setenv(native_decode.SWITCH_ENV, "0")
    plain = _greedy_ids(model, 40)  # past the context of 24: the window moves, the cache is rebuilt
    monkeypatch.setenv(native_decode.SWITCH_ENV, "1")
    fed_in_c = []
    real = native_decode.step

    def counted(*args, **kwargs):
        fed = real(*args, **kwargs)
        fed_in_c.append(fed is not None)
        return fed

    monkeypatch.setattr(native_decode, "step", counted)
    assert _greedy_ids(model, 40) == plain
    # C fed every token until the window was full (positions 4..23 after the 4-token prompt); from then on
    # each step moves the window and PyTorch recomputes it.
    prompt = len(default_tokenizer().encode("The cat sat on"))
    assert sum(fed_in_c) == CONFIGS[0].context_length - prompt


def test_taps_edits_training_and_other_dtypes_take_the_pytorch_path():
    model = _random_model(CONFIGS[0], seed=9)
    with torch.inference_mode():
        cache = model.new_cache(1)
        model.hidden(torch.tensor([[1, 2, 3]]), cache)
        with capture(model, {"blocks.0.hook_resid_post"}):
            assert native_decode.step(model, cache, 4) is None
        with intervene(model, {"blocks.0.attn.hook_out": torch.zeros_like}):
            assert native_decode.step(model, cache, 4) is None
        model.train()
        assert native_decode.step(model, cache, 4) is None
        model.eval()
        double = _random_model(CONFIGS[0], seed=9).double()
        assert native_decode.step(double, double.new_cache(1), 4) is None
        assert cache.length == 3  # nothing fed
        assert native_decode.step(model, cache, 4) is not None and cache.length == 4


def test_an_ablation_still_changes_what_the_generator_chooses():
    """An edit on a hook point must reach the logits: the generator may not take the C step around it."""
    model = _random_model(CONFIGS[0], seed=11)
    tok = default_tokenizer()
    prompt = tok.encode("The cat sat on")
    with intervene(model, {"blocks.1.hook_resid_post": lambda x: x * 0.0}):
        ablated = Generator(model, tok, prompt, GREEDY)
        chosen = [s.chosen_id for s in ablated.generate(3)]  # the 2nd and 3rd feed one token each
    # With the residual stream zeroed, every logit is the final norm's shift times the head, whatever came in.
    shift = model.final_norm.shift.detach()  # (D,)
    expected = int(torch.argmax(model.out_head.weight.detach() @ shift))
    assert chosen == [expected] * 3


def test_off_switch(monkeypatch):
    model = _random_model(CONFIGS[0], seed=1)
    cache = model.new_cache(1)
    with torch.inference_mode():
        model.hidden(torch.tensor([[1, 2]]), cache)
    monkeypatch.setenv(native_decode.SWITCH_ENV, "0")
    assert native_decode.step(model, cache, 3) is None
    assert native_decode.status().startswith("off")


def test_the_library_is_built_once_per_machine_and_reused(tmp_path, monkeypatch):
    monkeypatch.setenv(native_decode.CACHE_DIR_ENV, str(tmp_path))
    native_decode.forget_library()
    try:
        assert native_decode.library() is not None
        built = list((tmp_path / "native").glob("decode_step-*.so"))
        assert len(built) == 1
        stamp = os.stat(built[0]).st_mtime_ns
        native_decode.forget_library()
        assert native_decode.library() is not None
        assert native_decode.status() == f"on ({built[0]})"
        assert os.stat(built[0]).st_mtime_ns == stamp  # loaded, not compiled again
        assert [p.name for p in (tmp_path / "native").iterdir()] == [built[0].name]  # no temporary left
    finally:
        native_decode.forget_library()


@pytest.mark.parametrize("compiler", ["none", "failing"])
def test_no_compiler_or_a_failing_one_falls_back_to_pytorch(compiler, tmp_path, monkeypatch):
    model = _random_model(CONFIGS[0], seed=13)
    monkeypatch.setenv(native_decode.SWITCH_ENV, "0")
    reference = _greedy_ids(model, 6)
    monkeypatch.setenv(native_decode.SWITCH_ENV, "1")
    monkeypatch.setenv(native_decode.CACHE_DIR_ENV, str(tmp_path))
    if compiler == "none":
        monkeypatch.delenv("CC", raising=False)
        monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    else:
        monkeypatch.setenv("CC", "false")  # found on PATH, exits 1 for everything
    native_decode.forget_library()
    try:
        assert native_decode.library() is None
        reason = native_decode.status()
        assert (
            reason.startswith("off (")
            and ("no C compiler" if compiler == "none" else "could not build") in reason
        )
        assert _greedy_ids(model, 6) == reference
        assert not list((tmp_path / "native").glob("*.so")) if (tmp_path / "native").exists() else True
    finally:
        native_decode.forget_library()


def test_weights_replaced_between_steps_are_the_ones_the_next_step_reads():
    """The C step keeps its table of weight addresses between steps; a weight replaced in any way a user can
    (a new Parameter, new data under the old one, a transposed view) must not leave it reading the old."""
    model = _random_model(CONFIGS[0], seed=15)
    with torch.inference_mode():
        cache = model.new_cache(1)
        model.hidden(torch.tensor([[1, 2, 3]]), cache)

    def next_logits(token: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The PyTorch step's logits and the C step's, the second fed again at the same position."""
        with torch.inference_mode():
            expected = model.head(model.hidden(torch.tensor([[token]]), cache))[0, -1]  # (V,)
            cache.truncate(cache.length - 1)
            fed = native_decode.step(model, cache, token)
            return expected, fed.logits if fed is not None else None

    expected, got = next_logits(4)
    assert got is not None
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=2e-5)
    fc2 = model.blocks[1].ff.fc2
    fc2.weight = torch.nn.Parameter(torch.randn_like(fc2.weight))  # a new Parameter object
    expected, got = next_logits(5)
    assert got is not None
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=2e-5)
    qkv = model.blocks[0].attn.W_qkv
    qkv.weight.data = torch.randn_like(qkv.weight)  # new data under the same Parameter
    expected, got = next_logits(6)
    assert got is not None
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=2e-5)
    proj = model.blocks[0].attn.out_proj
    proj.weight.data = proj.weight.data.t()  # the same address, no longer contiguous: PyTorch's turn
    expected, got = next_logits(7)
    assert got is None


def test_the_taps_a_c_step_fills_equal_the_pytorch_steps_hook_points():
    cfg = CONFIGS[1]  # a bias on Q/K/V, three heads
    model = _random_model(cfg, seed=17)
    names = {native_decode.EMBED_TAP} | {
        f"blocks.{i}.{tap}" for i in range(cfg.n_layers) for tap in native_decode.LAYER_TAPS
    }
    with torch.inference_mode():
        theirs, ours = model.new_cache(1), model.new_cache(1)
        model.hidden(torch.tensor([[1, 2, 3, 4]]), theirs)
        model.hidden(torch.tensor([[1, 2, 3, 4]]), ours)
        with capture(model, names) as expected:
            hidden = model.hidden(torch.tensor([[5]]), theirs)  # (1, 1, D)
        fed = native_decode.step(model, ours, 5, frozenset(names), head=False)
        assert fed is not None and fed.logits is None  # the head is left to the caller
        assert set(fed.taps) == names
        for name in names:
            assert fed.taps[name].shape == expected[name].shape, name
            torch.testing.assert_close(fed.taps[name], expected[name], rtol=1e-5, atol=2e-5)
        torch.testing.assert_close(fed.hidden, hidden, rtol=1e-5, atol=2e-5)
        # a tap the C step does not fill (the attention weights): PyTorch's turn, nothing fed
        assert native_decode.step(model, ours, 6, frozenset({"blocks.0.attn.hook_weights"})) is None
        assert ours.length == 5


def test_a_generator_feed_for_the_panes_is_the_same_in_c_and_in_pytorch(monkeypatch):
    """What the live panes ask of each Step (their taps, the logit lens's rows through the head with the
    token's own) comes out the same either way."""
    from gptviz.engine.live_inspection import LiveInspection

    model = _random_model(CONFIGS[0], seed=19)
    tok = default_tokenizer()
    prompt = tok.encode("The cat sat on")

    def feeds() -> list:
        gen = Generator(model, tok, prompt, GREEDY)
        live = LiveInspection(model, tok)
        names = live.tap_names()
        out = [gen.feed(names, live.lens_rows)]
        for _ in range(5):
            gen.step()
            out.append(gen.feed(names, live.lens_rows))
        return out

    monkeypatch.setenv(native_decode.SWITCH_ENV, "0")
    plain = feeds()
    monkeypatch.setenv(native_decode.SWITCH_ENV, "1")
    calls = []
    real = native_decode.step
    monkeypatch.setattr(native_decode, "step", lambda *a, **k: calls.append(real(*a, **k)) or calls[-1])
    native = feeds()
    assert sum(fed is not None for fed in calls) == 5  # every fed token after the prompt went through C
    for a, b in zip(plain, native, strict=True):
        assert (a.start, a.first, a.window_ids) == (b.start, b.first, b.window_ids)
        assert set(a.taps) == set(b.taps)
        for name in a.taps:
            torch.testing.assert_close(b.taps[name], a.taps[name], rtol=1e-5, atol=2e-5)
        torch.testing.assert_close(b.logits, a.logits, rtol=1e-5, atol=2e-5)
        assert (a.head_logits is None) == (b.head_logits is None)
        if a.head_logits is not None:
            torch.testing.assert_close(b.head_logits, a.head_logits, rtol=1e-5, atol=2e-5)
        for ka, kb in zip(a.keys, b.keys, strict=True):
            torch.testing.assert_close(kb, ka, rtol=1e-5, atol=2e-5)
