"""Issue 22, the model's side of the live class: each poll's answer and each lesson check is computed from the
live engine, and checked here against an independent computation (a fresh transformers model's own outputs,
the mask's definition), not against bertlab itself. The projector's charts draw exactly the histogram."""

from __future__ import annotations

import ast
import html
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import BertForPreTraining, BertTokenizerFast

import bertlab
from bertlab import corpus as corpora
from bertlab.classroom import Poll, lesson, polls
from bertlab.classroom import figures as class_figures
from bertlab.errors import InputError, NoMaskError

FILL = "the quick brown [MASK] jumps over the lazy dog."


@pytest.fixture(scope="module")
def fresh(tiny_bert_dir):
    """The tiny checkpoint read straight by transformers (eager attention, weights returned)."""
    tokenizer = BertTokenizerFast.from_pretrained(tiny_bert_dir)
    model = BertForPreTraining.from_pretrained(tiny_bert_dir, attn_implementation="eager").eval()

    def run(text: str):
        enc = tokenizer(text, return_tensors="pt")
        with torch.no_grad():
            out = model(input_ids=enc["input_ids"], token_type_ids=enc["token_type_ids"], output_attentions=True)
        return enc, out

    return tokenizer, run


def as_poll(kind: str, built: tuple[str, dict], status: str = "open") -> Poll:
    prompt, spec = built
    return Poll(1, kind, prompt, spec, status, 0.0)


def test_fill_the_blank_is_the_models_top_k_and_ranks_a_guess_among_all_tokens(tiny_bert, fresh):
    tokenizer, run = fresh
    analysis = bertlab.analyze(tiny_bert, FILL, top_k=polls.TOP_K)
    prompt, spec = polls.fill_poll(tiny_bert, analysis)
    enc, out = run(FILL)
    position = enc["input_ids"][0].tolist().index(tokenizer.mask_token_id)
    probs = torch.softmax(out.prediction_logits[0, position], -1)
    top = probs.topk(polls.TOP_K)
    assert spec["position"] == position and FILL in prompt
    assert [p["token"] for p in spec["top"]] == tokenizer.convert_ids_to_tokens(top.indices.tolist())
    assert np.allclose([p["prob"] for p in spec["top"]], top.values.numpy(), atol=1e-5)
    assert spec["correct"] == [spec["top"][0]["token"]]
    poll = as_poll("fill", (prompt, spec))
    guesses = {"dog": 3, spec["top"][2]["token"]: 1, "   ": 1}
    result = polls.rank_guesses(tiny_bert, analysis, poll, guesses)["ranks"]
    dog = tokenizer.convert_tokens_to_ids("dog")
    assert result["dog"]["rank"] == int((probs > probs[dog]).sum()) + 1  # rank among every token of the vocabulary
    assert result["dog"]["prob"] == pytest.approx(float(probs[dog]), abs=1e-5)
    assert result[spec["top"][2]["token"]]["rank"] == 3
    assert "error" in result["   "]
    with pytest.raises(NoMaskError):
        polls.fill_poll(tiny_bert, bertlab.analyze(tiny_bert, "no blank here."))


def test_which_token_a_head_looks_at_is_the_live_attention_rows_largest(tiny_bert, fresh):
    tokenizer, run = fresh
    text = "the cat sat on the mat."
    analysis = bertlab.analyze(tiny_bert, text)
    _, out = run(text)
    for layer, head, query in [(0, 0, 2), (1, 3, 5), (1, 2, 0)]:
        prompt, spec = polls.head_poll(tiny_bert, analysis, layer, head, query)
        row = out.attentions[layer][0, head, query].numpy()
        assert np.allclose(spec["row"], row, atol=1e-5)
        assert spec["correct"] == [f"{row.argmax()}:{tokenizer.convert_ids_to_tokens(int(analysis.tokens[row.argmax()].id))}"]
        assert spec["options"] == [t.label for t in analysis.tokens] and f"head {head}" in prompt
    with pytest.raises(InputError):
        polls.head_poll(tiny_bert, analysis, 9, 0, 0)


def test_where_the_mask_blocks_is_the_masks_own_row(tiny_bert):
    analysis = bertlab.analyze(tiny_bert, "the cat sat on the mat.")
    n = len(analysis.tokens)
    _, causal = polls.mask_poll(analysis, "causal", 3)
    assert causal["blocked"] == [k > 3 for k in range(n)]
    assert causal["correct"] == [t.label for t in analysis.tokens if t.position > 3]
    assert analysis.causal.attention(1, 0, 3)[4:].max() == 0  # the model's own weights are exactly zero there
    _, window = polls.mask_poll(analysis, "window", 4, window=2)
    assert window["blocked"] == [abs(k - 4) > 2 for k in range(n)]
    with pytest.raises(InputError):
        polls.mask_poll(analysis, "bidirectional", 3)
    with pytest.raises(InputError, match="sees every token"):
        polls.mask_poll(analysis, "causal", n - 1)


def test_which_sense_is_the_vote_of_the_nearest_corpus_contexts(minilm):
    corpus = corpora.shipped_corpus().select("bank")
    index = corpora.build_index(minilm, corpus)
    sentence = "We had a picnic on the grassy bank by the water."
    last = index.layers - 1
    prompt, spec = polls.sense_poll(minilm, index, "bank", sentence, last)
    near = corpora.neighbors(index, "bank", corpora.occurrence(minilm, sentence, "bank"), last)
    assert spec["options"] == ["finance", "river"] and "bank" in prompt
    assert spec["vote"] == near.vote and [n["sentence"] for n in spec["neighbors"]] == [n.sentence for n in near.neighbors]
    assert sum(spec["votes"].values()) == polls.NEIGHBORS
    assert spec["vote"] == "river"  # real weights: a grassy bank by the water is a river bank


def test_every_lesson_step_has_a_check_computed_from_the_live_analysis(tiny_bert, fresh):
    tokenizer, run = fresh
    analysis = bertlab.analyze(tiny_bert, FILL)
    enc, out = run(FILL)
    checks = {lesson.STEPS[i]: lesson.check(tiny_bert, analysis, i) for i in range(len(lesson.STEPS))}
    for name, (question, spec) in checks.items():
        assert question and spec["correct"] and spec["hints"], name
        assert spec["answer_kind"] in ("number", "text", "choice", "token")
        if "options" in spec:
            assert set(spec["correct"]) <= set(spec["options"]), name
    assert checks["Tokens"][1]["correct"] == [str(enc["input_ids"].shape[1])]
    assert checks["Layers"][1]["correct"] == [str(tiny_bert.info.layers)]
    _, attention = checks["Attention"]
    row = out.attentions[tiny_bert.info.layers // 2][0, 0, attention["query"]].numpy()
    assert attention["correct"] == [analysis.tokens[int(row.argmax())].label]
    position = enc["input_ids"][0].tolist().index(tokenizer.mask_token_id)
    best = int(out.prediction_logits[0, position].argmax())
    assert checks["Masked LM"][1]["correct"] == [tokenizer.convert_ids_to_tokens(best)]
    _, causal = checks["Bidirectional vs causal"]
    assert causal["correct"] == [t.label for t in analysis.tokens if t.position > causal["query"]]
    # the same left context gives the same vector under a causal mask, whatever the weights
    assert checks["Word sense"][1]["correct"] == ["the same"]
    assert checks["BERT vs GPT"][1]["correct"] == ["only “bank” and the words before it"]
    assert checks["Next sentence"][1]["correct"] == ["1"]


def test_the_lesson_steps_are_the_guided_lessons():
    source = (Path(__file__).resolve().parent.parent / "pages" / "guided_lesson.py").read_text()
    steps = next(node.value for node in ast.walk(ast.parse(source))
                 if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "STEPS")
    assert tuple(ast.literal_eval(steps)) == lesson.STEPS
    assert set(lesson.SUMMARIES) == set(lesson.STEPS)


def test_grading():
    number = Poll(1, "check", "q", {"answer_kind": "number", "correct": ["12"]}, "open", 0)
    assert polls.grade(number, "12") and polls.grade(number, "12.0") and not polls.grade(number, "11") and not polls.grade(number, "x")
    typed = Poll(2, "fill", "q", {"correct": ["Fox"]}, "open", 0)
    assert polls.grade(typed, " fox ") and not polls.grade(typed, "dog")
    choice = Poll(3, "check", "q", {"options": ["a", "b"], "correct": ["b"]}, "open", 0)
    assert polls.grade(choice, "b") and not polls.grade(choice, "B")
    assert polls.grade(Poll(4, "sense", "q", {"options": ["a"]}, "open", 0), "a") is None  # no right answer: not graded


def test_the_charts_draw_the_histogram_escaped(tiny_bert):
    analysis = bertlab.analyze(tiny_bert, FILL, top_k=polls.TOP_K)
    poll = as_poll("fill", polls.fill_poll(tiny_bert, analysis), "revealed")
    histogram = {"dog": 4, "<b>cat</b>": 2, "fox": 1}
    for fig in (class_figures.chart(poll, histogram, revealed=True), class_figures.chart(poll, histogram, revealed=False),
                class_figures.chart(poll, histogram, revealed=True, stacked=True)):
        room = next(t for t in fig.data if t.name == "room")
        drawn = dict(zip(room.customdata, room.x))
        assert drawn == {html.escape(k): v for k, v in histogram.items()}
        assert all("<b>" not in label for label in room.y)
    model = next(t for t in class_figures.fill_chart(poll, histogram).data if t.name == "model")
    assert list(model.x)[::-1] == [p["prob"] for p in poll.spec["top"]]

    token = as_poll("head", polls.head_poll(tiny_bert, bertlab.analyze(tiny_bert, "the cat sat."), 1, 0, 2), "revealed")
    taps = {token.spec["options"][1]: 3, token.spec["options"][3]: 2}
    fig = class_figures.chart(token, taps, revealed=True)
    room = next(t for t in fig.data if t.name == "room")
    expected = [0] * len(token.spec["tokens"])
    expected[1], expected[3] = 3, 2
    assert list(room.customdata[0]) == expected
    assert list(next(t for t in fig.data if t.name == "model").z[0]) == token.spec["row"]
    assert class_figures.summary(token, taps) == "The room: “the” (1) 3, “sat” (3) 2."
