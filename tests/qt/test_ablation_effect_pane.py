"""The Generation pane while parts are switched off: a column and an outline with the whole model's
probability of each candidate, and the change in the chosen token's logit, equal to Hugging Face GPT-2 run
with and without a brute-force hook."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from hf_random import imported, random_hf_gpt2  # noqa: E402
from PySide6.QtCore import Qt  # noqa: E402

from gptviz.engine.ablation_spec import parse_ablations  # noqa: E402
from gptviz.engine.sampling_settings import SamplingSettings  # noqa: E402
from gptviz.engine.session import Session  # noqa: E402
from gptviz.qt.panes.generation import GenerationPane  # noqa: E402
from gptviz.qt.panes.generation_candidates import PLAIN_COLUMN  # noqa: E402
from gptviz.qt.token_labels import quoted_token  # noqa: E402

pytest.importorskip("transformers")

D, HEADS = 32, 4
HD = D // HEADS


def test_an_ablation_changes_the_table_and_the_delta_label_equals_two_hf_runs(qtbot, tmp_path):
    hf = random_hf_gpt2(D, 2, HEADS, 16, seed=5)
    model = imported(hf, tmp_path / "hf")
    pane = GenerationPane()
    pane.resize(900, 600)
    qtbot.addWidget(pane)
    pane.show()
    session = Session(model, corpus=None, sampling=SamplingSettings(temperature=0.0, seed=0))
    session.set_prompt("Every effort moves you")
    pane.set_generation(session.gen_step())
    assert pane.table.isColumnHidden(PLAIN_COLUMN) and not pane.ablation_label.isVisibleTo(pane)
    plain_rows = pane.table_probabilities()
    session.undo()

    session.set_ablations(parse_ablations("1.3"))
    view = session.gen_step()
    pane.set_generation(view)
    assert not pane.table.isColumnHidden(PLAIN_COLUMN) and pane.ablation_label.isVisibleTo(pane)
    ablated_rows = pane.table_probabilities()
    assert not np.allclose([r[1] for r in ablated_rows[:5]], [r[1] for r in plain_rows[:5]], atol=1e-4)

    context = torch.tensor([view.ids[:-1].tolist()])  # (1, T)

    def last_logits(ablate):
        def pre(_module, args):
            x = args[0].clone()  # (B, T, D) before c_proj
            x[..., 3 * HD : 4 * HD] = 0.0
            return (x,)

        handle = hf.transformer.h[1].attn.c_proj.register_forward_pre_hook(pre) if ablate else None
        try:
            with torch.no_grad():
                return hf(context).logits[0, -1]  # (V,)
        finally:
            if handle is not None:
                handle.remove()

    plain, ablated = last_logits(False), last_logits(True)
    chosen = int(view.last.chosen_id)
    delta = float(ablated[chosen] - plain[chosen])
    text = pane.ablation_label.text()
    assert f"Δ logit({quoted_token(view.last.chosen_piece)}) = " in text
    assert f"{'−' if delta < 0 else '+'}{abs(delta):.2f}" in text
    assert "1.3" in text
    whole = torch.softmax(plain, -1)  # (V,)
    for r in range(pane.table.rowCount()):
        token = int(pane.table.item(r, 2).data(Qt.ItemDataRole.UserRole))
        shown = float(pane.table.item(r, PLAIN_COLUMN).data(Qt.ItemDataRole.UserRole))
        assert shown == pytest.approx(float(whole[token]), abs=1e-5)
    assert pane.bars_plain.isVisible()
    assert "candidate_prob_whole_model" in pane.export_data()

    session.set_ablations(())
    session.undo()
    pane.set_generation(session.gen_step())
    assert pane.table.isColumnHidden(PLAIN_COLUMN) and not pane.bars_plain.isVisible()
    np.testing.assert_allclose(
        [r[1] for r in pane.table_probabilities()], [r[1] for r in plain_rows], atol=1e-6
    )
