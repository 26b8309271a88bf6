"""Every page on every family, through AppTest: each family's own view where it differs from BERT's (its pieces,
its embedding steps, DeBERTa's three terms, ModernBERT's rotation and local window, pre-norm layers, GPT-2's
next-token guesses, ELECTRA's replaced tokens), and BERT beside GPT."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import FAMILIES
from streamlit.testing.v1 import AppTest

import bertlab
from bertlab import explain

APP = str(Path(__file__).resolve().parent.parent / "app.py")
TEXT = "The bank was [MASK] yesterday by the river."
PAGES = ["tokenization", "three_embeddings", "attention_maps", "inside_a_head", "residual_stream", "bidirectional_vs_causal",
         "masked_lm", "next_sentence", "run_experiments", "word_sense", "guided_lesson"]


def start(model: str, text: str = TEXT, **state) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=180)
    for key, value in {"model": model, "device": "cpu", "text": text, "pair": "", **state}.items():
        at.session_state[key] = value
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def visit(at: AppTest, page: str) -> AppTest:
    at.switch_page(f"pages/{page}.py").run()
    assert not at.exception, (page, [e.value for e in at.exception])
    assert not at.error, (page, [e.value for e in at.error])
    return at


def titles(at: AppTest) -> list[str]:
    import json

    return [str((json.loads(c.proto.spec).get("layout", {}).get("title") or {}).get("text", "")) for c in at.get("plotly_chart")]


def text_of(at: AppTest) -> str:
    return "\n".join(str(e.value) for e in [*at.markdown, *at.caption, *at.info, *at.subheader, *at.title])


@pytest.mark.parametrize("family", FAMILIES)
def test_every_page_renders_on_every_family(family, family_dirs):
    at = start(str(family_dirs[family]))
    for page in PAGES:
        visit(at, page)


def test_each_family_is_explained_as_it_computes(family_models):
    for family, loaded in family_models.items():
        info = loaded.info
        said = explain.tokenization(info, loaded.tokenizer.cls_token, loaded.tokenizer.sep_token)
        assert info.title in said and {"##": "`##`", "Ġ": "`Ġ`", "▁": "`▁`"}[info.pieces] in said, family
        steps = bertlab.analyze(loaded, "the bank").embeddings.steps
        said = explain.embeddings(info, steps)
        assert ("position** embedding" in said) == ("position" in steps), family
        assert ("projection" in said or "projected" in said) == ("projection" in steps), family
        assert ("**LayerNorm**" in said) == ("layernorm" in steps), family
        said = explain.layer(info)
        assert ("pre-norm" in said) == (info.norm_placement == "pre") and ("locally" in said) == bool(info.local_layers), family


def test_deberta_and_modernbert_show_how_their_scores_are_made(family_dirs):
    at = visit(start(str(family_dirs["deberta"]), query=3), "inside_a_head")
    assert "1b · Three terms make each score" in text_of(at) and "content→position" in text_of(at)
    at = visit(start(str(family_dirs["modernbert"]), layer=1, query=5), "inside_a_head")
    said = text_of(at)
    assert "1b · Rotating q and k by their positions" in said and "local window (±2)" in said
    at = visit(at, "residual_stream")
    assert "pre-norm" in text_of(at) and "x + A and h + F" in text_of(at)


def test_modernbert_local_window_is_a_third_mask_that_can_be_applied(family_dirs):
    at = visit(start(str(family_dirs["modernbert"])), "bidirectional_vs_causal")
    assert "A third mask: ModernBERT's own local window (±2)" in text_of(at)
    at.toggle(key="apply_local").set_value(True).run()
    assert not at.exception and any("window everywhere" in t for t in titles(at))


def test_a_decoder_guesses_the_next_token_beside_bert_filling_the_blank(family_dirs):
    at = visit(start(str(family_dirs["gpt2"]), text="The bank was robbed yesterday by the river."), "masked_lm")
    assert [t.value for t in at.title] == ["Next-token prediction"]
    table = at.dataframe[0].value
    assert list(table["word"]) == "The bank was robbed yesterday by the river .".split()[:-1] + ["."]
    assert table.iloc[0, 3] is None or str(table.iloc[0, 3]) in ("None", "nan"), "nothing comes before the first word"
    assert "GPT guesses what comes next; BERT fills the blank" in text_of(at)
    at = visit(at, "next_sentence")
    assert any("next sentence prediction is BERT's" in w.value for w in at.warning)


def test_electra_lights_up_a_swapped_word(family_dirs, family_models):
    at = visit(start(str(family_dirs["electra"]), text="the cat sat on the mat ."), "masked_lm")
    assert [t.value for t in at.title] == ["Replaced-token detection"]
    at.text_input(key="swap_with").input("dog").run()
    assert not at.exception
    assert "The sentence now reads" in text_of(at)
    swapped = bertlab.analyze(family_models["electra"], next(str(c.value) for c in at.caption if "now reads" in str(c.value))
                              .split("“")[1].rstrip("”."))
    assert swapped.replaced is not None and np.isfinite([r["prob"] for r in swapped.replaced]).all()


def test_bert_beside_gpt_on_the_page_and_in_the_lesson(tiny_bert_dir):
    at = visit(start(str(tiny_bert_dir), text="I went to the bank to deposit money."), "bidirectional_vs_causal")
    assert "BERT beside GPT: a model trained causally" in text_of(at)
    assert at.session_state["model_b"] == "random:gpt2", "offline, GPT-2's shape with random weights"
    drawn = titles(at)
    assert any("S1 and S2" in t for t in drawn) and any("S1 and S3" in t for t in drawn), drawn
    at = start(str(tiny_bert_dir), step="BERT vs GPT")
    at.switch_page("pages/guided_lesson.py").run()
    assert not at.exception
    said = " ".join(str(i.value) for i in at.info)
    assert "random:gpt2, which never sees what comes after, gives “bank” the same vector in both (cosine 1.000" in said
