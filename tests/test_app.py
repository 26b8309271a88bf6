"""Every page through Streamlit's AppTest, with a tiny BERT (MLM + NSP heads) and the offline MiniLM."""

from __future__ import annotations

import pytest
from pathlib import Path

from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parent.parent / "app.py")

PAGES = [
    "pages/tokenization.py",
    "pages/three_embeddings.py",
    "pages/attention_maps.py",
    "pages/masked_lm.py",
    "pages/bidirectional_vs_causal.py",
    "pages/word_sense.py",
    "pages/next_sentence.py",
    "pages/guided_lesson.py",
]


def start(model: str, text: str = "the quick brown [MASK] jumps over the lazy dog.", pair: str = "") -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["model"] = model
    at.session_state["device"] = "cpu"
    at.session_state["text"] = text
    at.session_state["pair"] = pair
    at.run()
    assert not at.exception, at.exception
    return at


def visit(at: AppTest, page: str) -> AppTest:
    at.switch_page(page)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at


def markdown(at: AppTest) -> str:
    return "\n".join(str(m.value) for m in at.markdown) + "\n".join(str(c.value) for c in at.caption)


@pytest.fixture(params=["tiny", "minilm"])
def model_name(request, tiny_bert_dir) -> str:
    return str(tiny_bert_dir) if request.param == "tiny" else "minilm"


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_without_error(model_name, page):
    at = visit(start(model_name, pair="a pen is red"), page)
    assert at.title and at.title[0].value
    assert at.info, "every page opens with what to look at"


def test_tokens_page_shows_pieces_and_changes_with_text(tiny_bert_dir):
    at = visit(start(str(tiny_bert_dir), text="the cats sat."), PAGES[0])
    table = at.dataframe[0].value
    assert list(table["piece"]) == ["[CLS]", "the", "cat", "##s", "sat", ".", "[SEP]"]
    at.text_area(key="text").input("a dog!").run()
    assert list(at.dataframe[0].value["piece"]) == ["[CLS]", "a", "dog", "!", "[SEP]"]


def test_embeddings_page_shows_the_check(minilm):
    at = visit(start("minilm"), PAGES[1])
    value = float(at.metric[0].value)
    assert value <= 1e-5
    assert at.success


def test_masked_lm_page_with_heads_and_without(tiny_bert_dir):
    at = visit(start(str(tiny_bert_dir)), PAGES[3])
    # top-k for the [MASK] (two panels, bidirectional and causal: lab_ui.chart sets them in columns), logit lens
    assert len(at.get("plotly_chart")) == 3
    at.toggle(key="mask_each").set_value(True).run()
    assert not at.exception
    assert len(at.get("plotly_chart")) == 4  # and mask-each-token, on request
    at = visit(start("minilm"), PAGES[3])
    assert any("no masked-LM head" in w.value for w in at.warning)


def test_masking_tokens_by_choice(tiny_bert_dir):
    at = visit(start(str(tiny_bert_dir), text="the cat sat on the mat."), PAGES[3])
    before = len(at.get("plotly_chart"))
    at.multiselect(key="masked").select("2:cat").run()
    assert not at.exception
    assert len(at.get("plotly_chart")) == before + 2  # the new [MASK]'s guesses, under each mask


def test_next_sentence_page(tiny_bert_dir, reference):
    at = visit(start(str(tiny_bert_dir), text="i have a pen", pair="the pen is red"), PAGES[6])
    assert at.metric[0].value == f"{reference('i have a pen', 'the pen is red')['is_next']:.3f}"
    at = visit(start("minilm", text="i have a pen", pair="the pen is red"), PAGES[6])
    assert any("no next-sentence-prediction head" in w.value for w in at.warning)


def test_word_sense_page_shows_the_lesson():
    at = visit(start("minilm"), PAGES[5])
    # four for the typed sentences (the PCA in two panels: five), four for the corpus (its PCA in two panels)
    assert len(at.get("plotly_chart")) == 9
    at.text_input(key="target").input("fish").run()
    assert any("does not occur in sentence 1" in w.value for w in at.warning)
    assert not at.exception


@pytest.mark.parametrize("text", ["", "    "])
def test_bad_text_is_a_message_not_a_traceback(text, tiny_bert_dir):
    at = start(str(tiny_bert_dir), text=text)
    for page in PAGES[:5]:
        at = visit(at, page)
        assert any("empty" in w.value for w in at.warning), page


def test_unknown_model_is_a_message_and_the_app_stays_usable():
    at = start("./no/such/model")
    assert any("no such directory" in e.value for e in at.error)
    at.switch_page(PAGES[2]).run()
    assert not at.exception
    at.selectbox(key="model").set_value("minilm").run()
    assert not at.exception and not at.error


def test_one_analysis_per_text_shared_by_pages_and_cached_compact(tiny_bert_dir, monkeypatch):
    import numpy as np

    import lab_ui

    runs = []
    real = lab_ui.analyze_encoding
    monkeypatch.setattr(lab_ui, "analyze_encoding", lambda loaded, *a, **k: runs.append(loaded.info.name) or real(loaded, *a, **k))
    at = start(str(tiny_bert_dir), text="a sentence that no other test analyses.")
    for page in ("pages/attention_maps.py", "pages/bidirectional_vs_causal.py", "pages/three_embeddings.py", "pages/attention_maps.py"):
        visit(at, page)
    # (Bidirectional vs causal also runs a decoder beside it: its own analysis, once)
    assert runs.count(str(tiny_bert_dir)) == 1, "pages must share the cached analysis of the same text"
    cache, _ = lab_ui._results()
    analyses = [a for a in cache.values() if isinstance(a, lab_ui.Analysis)]
    assert analyses and all(run.attentions.dtype == np.float16 for a in analyses for run in a.runs.values())


def test_no_page_file_is_named_like_its_url():
    """Streamlit runs pages/<url_path>.py alone (no sidebar, no banner) when a URL names it on a server's first
    run, because a folder called pages/ also means its old file-based navigation: the stems must differ."""
    import ast

    tree = ast.parse((Path(APP).read_text()))
    pages = {}
    for call in ast.walk(tree):
        if isinstance(call, ast.Call) and getattr(call.func, "attr", "") == "Page":
            url = next(k.value.value for k in call.keywords if k.arg == "url_path")
            pages[Path(call.args[0].value).stem] = url
    assert len(pages) >= 12
    assert not [stem for stem, url in pages.items() if stem == url], pages


def test_the_sidebar_chooses_the_precision_and_says_which_runs(tiny_bert_dir):
    """Precision in the sidebar loads the weights in that format (float32 by default on the CPU); float16 on the CPU
    is refused with a message, and the app stays usable."""
    at = visit(start(str(tiny_bert_dir)), PAGES[1])
    assert at.selectbox(key="dtype").value == "auto"
    assert any("cpu, float32" in str(c.value) for c in at.sidebar.caption)
    at.selectbox(key="dtype").set_value("bfloat16").run()
    assert not at.exception
    assert any("cpu, bfloat16" in str(c.value) for c in at.sidebar.caption)
    at.selectbox(key="dtype").set_value("float16").run()
    assert not at.exception and any("float16 is for GPUs" in e.value for e in at.error)
    at.selectbox(key="dtype").set_value("float32").run()
    assert not at.exception and not at.error
