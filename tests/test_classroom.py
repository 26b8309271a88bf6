"""Issue 15, the app as a class sees it: the running model named on every page, a truncated or long text
flagged on every page, an unknown model explained once (AppTest); a phone (390 × 844, touch) and a
projector (1280 × 720, presenter mode) in a real browser."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from test_app import APP, PAGES, start, visit


def main_text(at: AppTest) -> str:
    """Everything the main area says (captions, markdown, alerts), not the sidebar."""
    parts = []
    for kind in ("caption", "markdown", "warning", "info", "error"):
        parts += [str(e.value) for e in getattr(at.main, kind)]
    return "\n".join(parts)


def test_the_offline_stand_in_is_named_at_the_top_of_every_page(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    at = start("bert-base-uncased")
    for page in PAGES:
        at = visit(at, page)
        assert "Model running: **minilm (offline stand-in for bert-base-uncased)**" in at.main.caption[0].value, page
        assert "6 layers" in at.main.caption[0].value
    lesson = main_text(visit(at, "views/lesson.py"))
    assert "12 layers" in lesson and "has 6 layers, hidden size 384" in lesson  # BERT-base's as reference, then this model's


def test_sizes_quote_the_running_model(minilm):
    at = visit(start("minilm"), "views/attention.py")
    assert "12 in BERT-base, 16 in BERT-large, 12 in the model running here (minilm)" in main_text(at)
    at = visit(at, "views/layers.py")
    assert f"3,072 in BERT-base, {minilm.info.intermediate_size:,} in the model running here" in main_text(at)


def test_a_truncated_text_is_flagged_on_every_page(tiny_bert_dir):
    long = "the cat sat on the mat. " * 120  # far more tokens than the tiny model's positions
    at = start(str(tiny_bert_dir), text=long)
    for page in PAGES:
        at = visit(at, page)
        cut = [w.value for w in at.main.warning if "cut short" in w.value]
        assert cut, page
        assert "tokens; BERT reads at most" in cut[0]
    assert any("link to this page carries all of them" in i.value for i in at.main.info)  # > 1,500 characters


def test_a_short_text_has_no_banners(tiny_bert_dir):
    at = visit(start(str(tiny_bert_dir), text="the cat sat."), PAGES[0])
    assert not [w for w in at.main.warning if "cut short" in w.value]
    assert not [i for i in at.main.info if "link to this page" in i.value]


@pytest.mark.parametrize(
    "name, says",
    [
        ("my-cool-model", "not a known BERT-family checkpoint"),
        ("bert-large-uncasedd", "Did you mean 'bert-large-uncased'"),
        ("gpt2", "decoder"),
        ("openai-community/gpt2", "decoder"),
        ("meta-llama/Llama-3.1-8B", "decoder"),
    ],
)
def test_an_unknown_model_is_explained_once_without_commands(name, says, monkeypatch):
    import bertlab.loading

    def no_network(*args, **kwargs):
        raise AssertionError("the network was asked")

    monkeypatch.setattr(bertlab.loading, "hub_reachable", no_network)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    at = start(name)
    for page in (None, "views/attention.py", "views/lesson.py"):
        if page:
            at.switch_page(page).run()
            assert not at.exception
        errors = [e.value for e in at.error]
        assert len(errors) == 1, (page, errors)  # once: not in the sidebar and again on the page
        assert says in errors[0] and name in errors[0]
        assert "prefetch" not in errors[0] and "python -m" not in errors[0]
