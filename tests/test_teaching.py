"""Teaching: the guided lesson, presenter mode, predict-then-reveal, and exports that are valid files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from streamlit.testing.v1 import AppTest

import bertlab
from bertlab.cli import main

APP = str(Path(__file__).resolve().parent.parent / "app.py")
STEPS = ["Tokens", "Three embeddings", "Attention", "Layers", "Masked LM", "Bidirectional vs causal", "Word sense", "Next sentence"]


def start(model: str, text: str = "the quick brown [MASK] jumps over the lazy dog.", pair: str = "a pen is red") -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    for key, value in dict(model=model, device="cpu", text=text, pair=pair).items():
        at.session_state[key] = value
    at.run()
    return at


@pytest.mark.parametrize("which", ["tiny", "minilm"])
def test_the_lesson_renders_every_step(which, tiny_bert_dir):
    at = start(str(tiny_bert_dir) if which == "tiny" else "minilm")
    at.switch_page("views/lesson.py").run()
    for i, step in enumerate(STEPS):
        assert not at.exception, (step, [e.value for e in at.exception])
        assert not at.error, (step, [e.value for e in at.error])
        assert any(step in str(p.value) for p in at.get("progress")) or at.session_state["step"] == step
        assert any("What to notice" in str(info.value) for info in at.info), step
        if i < len(STEPS) - 1:
            at.button(key="lesson_next").click().run()
            assert at.session_state["step"] == STEPS[i + 1]


def test_lesson_facts_are_true_to_the_paper():
    source = (Path(APP).parent / "views" / "lesson.py").read_text()
    for fact in ("12 layers", "768", "12 attention heads", "110M", "BERT-large has 24", "4096 (340M)", "512 positions", "15%", "80%", "10%", "post-norm", "LayerNorm(F(x) + x)"):
        assert fact in source, fact


def test_presenter_mode_from_the_url():
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["present"] = "true"
    at.session_state["model"] = "minilm"
    at.session_state["present"] = True
    at.run()
    assert not at.exception
    styles = [h.proto.body for h in at.get("html")]
    assert any("font-size: 22px" in body for body in styles)


def test_predict_then_reveal_hides_then_scores_the_guess(tiny_bert_dir, tiny_bert):
    text = "the quick brown [MASK] jumps."
    at = start(str(tiny_bert_dir), text=text, pair="")
    at.switch_page("views/masked_lm.py").run()
    shown = len(at.get("plotly_chart"))
    at.toggle(key="predict").set_value(True).run()
    assert len(at.get("plotly_chart")) == shown - 1, "the [MASK] bars are hidden until a guess"
    at.text_input(key="guess4").input("fox").run()
    assert not at.exception
    assert len(at.get("plotly_chart")) == shown
    message = next(s.value for s in at.success)
    # the rank shown is the rank of 'fox' in the full softmax at the mask
    result = bertlab.analyze(tiny_bert, text)
    enc = result.encoding
    with torch.no_grad():
        logits = tiny_bert.model(input_ids=enc.input_ids, token_type_ids=enc.token_type_ids).prediction_logits[0, 4]
    probs = torch.softmax(logits, -1)
    fox = tiny_bert.tokenizer.convert_tokens_to_ids("fox")
    rank = int((probs > probs[fox]).sum()) + 1
    assert f"number **{rank:,}**" in message and f"{probs[fox].item():.3f}" in message


def test_json_export_is_the_cli_contract(tiny_bert_dir, tiny_bert, capsys):
    text, pair = "the quick brown [MASK] jumps.", "a pen is red"
    exported = json.loads(json.dumps(bertlab.analyze(tiny_bert, text, pair).to_dict(), indent=1))
    assert main(["analyze", text, "--pair", pair, "--model", str(tiny_bert_dir), "--device", "cpu", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert exported["tokens"] == printed["tokens"] and exported["mlm"] == printed["mlm"]
    assert exported["model"]["layers"] == 2 and exported["nsp"] == printed["nsp"]
