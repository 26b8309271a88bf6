"""Teaching: the guided lesson, presenter mode, predict-then-reveal, and exports that are valid files."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pytest
import torch
from streamlit.testing.v1 import AppTest

import bertlab
from bertlab.cli import main

APP = str(Path(__file__).resolve().parent.parent / "app.py")
PAIR = "a pen is red"
STEPS = ["Tokens", "Three embeddings", "Attention", "Layers", "Masked LM", "Bidirectional vs causal", "BERT vs GPT", "Word sense", "Next sentence"]


def start(model: str, text: str = "the quick brown [MASK] jumps over the lazy dog.", pair: str = PAIR) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    for key, value in dict(model=model, device="cpu", text=text, pair=pair).items():
        at.session_state[key] = value
    at.run()
    return at


def shown_on_the_step(at: AppTest, step: str, which: str, reference) -> None:
    """What this step shows is this text's analysis (checked where an independent computation exists)."""
    text = at.session_state["text"]
    if step == "Tokens":
        chips = next(h.proto.body for h in at.get("html") if 'class="chips"' in h.proto.body)
        shown = [html.unescape(piece) for piece in re.findall(r">([^<>]*)<sub>", chips)]
        if which == "tiny":
            assert shown == [t["text"] for t in reference(text, PAIR)["tokens"]]
        assert shown[0] == "[CLS]" and shown.count("[SEP]") == 2 and "[MASK]" in shown
    elif step == "Three embeddings":  # the model's own check, under the chart
        check = next(str(c.value) for c in at.caption if "Checked: LayerNorm(token + segment + position)" in str(c.value))
        assert float(re.search(r"largest difference ([0-9.e+-]+)", check).group(1)) <= 1e-5
    elif step == "Masked LM" and which == "tiny":  # each [MASK]'s guesses under each mask, a chart per mask
        assert len(at.get("plotly_chart")) == 2 * text.count("[MASK]")
    elif step == "Masked LM":  # MiniLM has no MLM head: a warning instead of guesses
        assert at.warning and not at.get("plotly_chart")
    elif step == "Next sentence" and which == "tiny":
        assert at.metric[0].value == f"{reference(text, PAIR)['is_next']:.3f}"
    elif step == "Next sentence":  # nor an NSP head
        assert at.warning and not at.metric


@pytest.mark.parametrize("which", ["tiny", "minilm"])
def test_the_lesson_renders_every_step(which, tiny_bert_dir, reference):
    at = start(str(tiny_bert_dir) if which == "tiny" else "minilm")
    at.switch_page("pages/guided_lesson.py").run()
    for i, step in enumerate(STEPS):
        assert not at.exception, (step, [e.value for e in at.exception])
        assert not at.error, (step, [e.value for e in at.error])
        assert [p.proto.text for p in at.get("progress")] == [f"Step {i + 1} of {len(STEPS)}: {step} · running {at.session_state['model']}"]
        assert any("What to notice" in str(info.value) for info in at.info), step
        shown_on_the_step(at, step, which, reference)
        if i < len(STEPS) - 1:
            at.button(key="lesson_next").click().run()


def test_presenter_mode_from_the_url():
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["present"] = "true"
    at.session_state["model"] = "minilm"
    at.run()
    assert not at.exception
    styles = [h.proto.body for h in at.get("html")]
    assert any("font-size: 22px" in body for body in styles)


def test_predict_then_reveal_hides_then_scores_the_guess(tiny_bert_dir, tiny_bert):
    text = "the quick brown [MASK] jumps."
    at = start(str(tiny_bert_dir), text=text, pair="")
    at.switch_page("pages/masked_lm.py").run()
    shown = len(at.get("plotly_chart"))
    at.toggle(key="predict").set_value(True).run()
    assert len(at.get("plotly_chart")) == shown - 2, "the [MASK] bars (a chart per mask) are hidden until a guess"
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


def test_json_export_says_what_the_model_computes(tiny_bert_dir, reference, capsys):
    """The analysis JSON (`analyze --json`, the same object the pages download) against an independent
    computation: tokens, segments and offsets from the tokenizer; top-k at the [MASK] and P(IsNext) from a fresh
    BertForPreTraining's own forward pass."""
    text, pair = "the quick brown [MASK] jumps.", "a pen is red"
    assert main(["analyze", text, "--pair", pair, "--model", str(tiny_bert_dir), "--device", "cpu", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    expected = reference(text, pair)
    keys = ("text", "id", "segment", "position")
    assert [{k: t[k] for k in keys} for t in printed["tokens"]] == [{k: t[k] for k in keys} for t in expected["tokens"]]
    for got, want in zip(printed["tokens"], expected["tokens"]):
        if not got["special"]:
            assert (got["start"], got["end"]) == (want["start"], want["end"]), got
    assert [m["position"] for m in printed["mlm"]] == [m["position"] for m in expected["mlm"]] == [4]
    got, want = printed["mlm"][0]["bidirectional"], expected["mlm"][0]["bidirectional"]
    assert [p["token"] for p in got] == [p["token"] for p in want]
    assert [p["prob"] for p in got] == pytest.approx([p["prob"] for p in want], abs=1e-6)
    assert printed["nsp"]["is_next"] == pytest.approx(expected["is_next"], abs=1e-6)
    assert printed["model"]["layers"] == 2
