"""The Compare models page: two checkpoints on the same text, through AppTest and in Chromium, and the
engine's word matching across tokenizations."""

from __future__ import annotations

import os
import urllib.parse
from pathlib import Path

import numpy as np
import pytest
import torch
import transformers
from conftest import VOCAB
from streamlit.testing.v1 import AppTest
from transformers import BertTokenizer

import bertlab
from bertlab import compare

APP = str(Path(__file__).resolve().parent.parent / "app.py")
TEXT = "the quick brown [MASK] jumps over the lazy dog catching fish ."


def open_compare(first: str, second: str, text: str = TEXT, **state) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    for key, value in {"model": first, "model_b": second, "device": "cpu", "text": text, "pair": "", **state}.items():
        at.session_state[key] = value
    at.run()  # pages are known by their url_path only after a first run
    at.switch_page("pages/compare_models.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at


def charts(at: AppTest) -> list[dict]:
    import json

    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def own_word_vectors(directory: Path, cls, text: str, word: str) -> np.ndarray:
    """(layer + 1, hidden): the word's mean piece vector at every layer, from the model's own forward pass."""
    tokenizer = BertTokenizer.from_pretrained(directory)
    enc = tokenizer(text, return_tensors="pt", return_offsets_mapping=True)
    start = text.index(word)
    pieces = [i for i, (a, b) in enumerate(enc.pop("offset_mapping")[0].tolist()) if b > a and a < start + len(word) and b > start]
    enc.pop("token_type_ids") if cls is transformers.DistilBertModel else None
    with torch.no_grad():
        hidden = torch.stack(cls.from_pretrained(directory)(**enc, output_hidden_states=True).hidden_states)[:, 0]
    return hidden[:, pieces].mean(1).numpy()


def test_same_hidden_size_compares_a_word_layer_by_layer(tiny_bert_dir, tiny_distilbert_dir, tiny_bert):
    words = [t for t in bertlab.analyze(tiny_bert, TEXT).tokens if not t.special]
    catching = next(i for i, t in enumerate(words) if t.text == "catch")  # the word picker lists these
    at = open_compare(str(tiny_bert_dir), str(tiny_distilbert_dir), compare_word=catching)
    assert at.query_params["model"] == str(tiny_bert_dir) and at.query_params["model_b"] == str(tiny_distilbert_dir), "the URL holds both"
    assert [s.value for s in at.subheader] == ["Tokens", "Masked LM", "Attention", "One word in both models"]
    assert sum('class="chips"' in h.proto.body for h in at.get("html")) == 2, "both tokenizations"

    specs = charts(at)
    bars = [s for s in specs if s["data"][0]["type"] == "bar"]
    assert len(bars) == 4, "one [MASK], guessed by each model under each mask (a chart per mask, lab_ui.chart)"
    heatmaps = [s for s in specs if s["data"][0]["type"] == "heatmap"]
    assert len(heatmaps) == 2

    line = [s for s in specs if s["data"][0]["type"] == "scatter"]
    assert len(line) == 1 and "catching" in line[0]["layout"]["title"]["text"]
    a = own_word_vectors(tiny_bert_dir, transformers.BertModel, TEXT, "catching")
    b = own_word_vectors(tiny_distilbert_dir, transformers.DistilBertModel, TEXT, "catching")
    expected = (a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)
    np.testing.assert_allclose(_values(line[0]["data"][0]["y"]), expected, atol=1e-4)


def test_different_hidden_sizes_show_how_context_moves_the_picked_word_in_each_model(tiny_bert_dir, tiny_bert, minilm):
    """Vectors of different sizes cannot be compared across models; each model's own 1 − cosine(bidirectional,
    causal) of the picked word can, and picking another word changes it (issue 20: the Word pills changed nothing)."""
    from bertlab.metrics import cosine

    def expected(loaded, word: str) -> np.ndarray:
        result = bertlab.analyze(loaded, TEXT)
        start = TEXT.index(word)
        pieces = [t.position for t in result.tokens if not t.special and t.start < start + len(word) and t.end > start]
        both, left = (result.runs[k].hidden_states[:, pieces].mean(1) for k in ("bidirectional", "causal"))
        return 1 - cosine(both, left)

    words = [t for t in bertlab.analyze(tiny_bert, TEXT).tokens if not t.special]
    at = open_compare(str(tiny_bert_dir), "minilm")
    assert any("hidden sizes differ (32 vs 384)" in c.value for c in at.caption)
    assert any("minilm" in info.value and "no masked-LM head" in info.value for info in at.info)
    for index, word in ((0, "the"), (next(i for i, t in enumerate(words) if t.text == "dog"), "dog")):
        at.session_state["compare_word"] = index
        at.run()
        curves = [s for s in charts(at) if s["data"][0]["type"] == "scatter"]
        assert len(curves) == 1 and [t["name"] for t in curves[0]["data"]] == [str(tiny_bert_dir), "minilm"]
        assert f"after '{word}'" in curves[0]["layout"]["title"]["text"]
        np.testing.assert_allclose(_values(curves[0]["data"][0]["y"]), expected(tiny_bert, word), atol=1e-4)
        np.testing.assert_allclose(_values(curves[0]["data"][1]["y"]), expected(minilm, word), atol=1e-4)


def test_word_matched_by_characters_across_tokenizations(tmp_path_factory, tiny_bert):
    from conftest import checkpoint, tiny_bert_config

    cased_dir = checkpoint(tmp_path_factory, "tiny-cased", 3, lambda: transformers.BertForMaskedLM(tiny_bert_config()))
    BertTokenizer(vocab={p: i for i, p in enumerate(VOCAB)}, do_lower_case=False, model_max_length=64).save_pretrained(cased_dir)
    cased = bertlab.load_model(str(cased_dir), device="cpu")
    text = "The dog was catching fish ."
    a, b = bertlab.analyze(tiny_bert, text), bertlab.analyze(cased, text)
    ing = next(t.position for t in a.tokens if t.text == "##ing")
    assert compare.word_span(a.encoding, ing) == (0, text.index("catching"), text.index("catching") + len("catching"))
    word = compare.compare_word(a, b, ing)
    assert word.word == "catching" and word.pieces == (["catch", "##ing"], ["catch", "##ing"])
    first = compare.compare_word(a, b, 1)
    assert first.word == "The" and first.pieces == (["the"], ["[UNK]"]), "uncased 'the' vs cased [UNK]"
    assert first.cosine.shape == (3,) and np.all(np.abs(first.cosine) <= 1)
    with pytest.raises(bertlab.InputError):
        compare.word_span(a.encoding, 0)  # [CLS]


def test_compare_page_in_chromium(app_server, chromium, tmp_path_factory):
    """The page draws in a real browser, offline; its screenshot is README's."""
    from playwright.sync_api import sync_playwright

    from labtools.server import FLAGS, wait_idle

    shots = Path(os.environ.get("BERTLAB_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    query = urllib.parse.urlencode({"model": "minilm", "model_b": "random:bert-mini", "text": "The quick brown [MASK] jumps over the lazy dog."})
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=FLAGS)
        context = browser.new_context(viewport={"width": 1400, "height": 1100})
        outside: list[str] = []
        context.route("**/*", lambda r: r.continue_() if urllib.parse.urlparse(r.request.url).hostname in ("127.0.0.1", None) else (outside.append(r.request.url), r.abort()))
        page = context.new_page()
        page.goto(f"{app_server.url}/compare?{query}")
        wait_idle(page, 120_000)
        page.wait_for_function("() => [...document.querySelectorAll('.js-plotly-plot')].filter(p => p.querySelector('.main-svg')).length >= 5",
                               timeout=60_000)  # charts, not their .main-svg layers
        assert page.locator(".chips").count() == 2
        assert page.locator("[data-testid=stException]").count() == 0
        shots.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(shots / "10-compare.png"))
        browser.close()
    assert not outside, outside[:5]


def _values(y) -> np.ndarray:
    """A plotly array from a figure spec: a list, or numpy's base64 typed array."""
    if isinstance(y, dict):
        import base64

        return np.frombuffer(base64.b64decode(y["bdata"]), dtype=np.dtype(y["dtype"]))
    return np.asarray(y, dtype=float)


def test_a_long_text_is_compared_through_each_models_window(tiny_bert_dir, tiny_distilbert_dir):
    at = open_compare(str(tiny_bert_dir), str(tiny_distilbert_dir), text="the cat sat on the mat. " * 12,
                      a_positions_from=20)
    assert at.slider(key="a_positions_from").value == 20 and at.slider(key="b_positions_from").value == 0
    heatmaps = [c for c in charts(at) if "head 0" in c["layout"]["title"]["text"]]
    first, second = (c["layout"]["xaxis"]["tickvals"] for c in heatmaps)
    assert (min(first), max(first), min(second), max(second)) == (20, 59, 0, 39)
