"""The app's one result cache, the one offline fallback shared with the engine, and server-side logging."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import bertlab

APP = str(Path(__file__).resolve().parent.parent / "app.py")


def start(model: str, page: str = "pages/three_embeddings.py", text: str = "the bank was robbed .") -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    for key, value in dict(model=model, device="cpu", text=text, pair="").items():
        at.session_state[key] = value
    at.run()
    at.switch_page(page)
    at.run()
    assert not at.exception, at.exception
    return at


def messages(at: AppTest) -> str:
    return " ".join(str(e.value) for e in [*at.error, *at.warning, *at.sidebar.error, *at.sidebar.warning])


def test_allow_list_without_minilm_gives_the_offline_message_in_engine_and_app(monkeypatch):
    """The fallback exists once: an operator who offers only bert-base-* gets, offline, the message about
    bert-base-uncased (not 'This server does not offer minilm') in the engine and in the page alike."""
    monkeypatch.setenv("BERTLAB_ALLOWED_MODELS", "bert-base-*")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(bertlab.OfflineError) as engine:
        bertlab.load_model("bert-base-uncased", device="cpu")
    at = start("bert-base-uncased")
    shown = messages(at)
    assert str(engine.value) in shown
    assert "does not offer" not in shown


def test_fallback_and_explicit_minilm_keep_separate_cache_entries(monkeypatch):
    """The cache is keyed by the loaded model's identity: the offline stand-in's notice never shows up in an
    analysis of an explicitly chosen 'minilm' (and vice versa), though both share one copy of the weights."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("BERTLAB_ALLOWED_MODELS", raising=False)
    import lab_ui

    text = "a text only the fallback test analyses ."
    fallback = start("bert-base-uncased", text=text)
    assert any("could not be loaded" in str(w.value) for w in fallback.sidebar.warning)
    explicit = start("minilm", text=text)
    assert not any("could not be loaded" in str(w.value) for w in explicit.sidebar.warning)
    cache, _ = lab_ui._results()
    mine = [(key[0], value) for key, value in cache.items() if key[1] == "analysis" and key[2][0] == text]
    assert len(mine) == 2, "one entry per loaded model"
    by_notice = {info.notice is not None: result for info, result in mine}
    assert by_notice[True].model.notice and not by_notice[False].model.notice
    assert not any("could not be loaded" in n for n in by_notice[False].notes)
    loaded_fallback = lab_ui._load("bert-base-uncased", "cpu", "auto")
    assert loaded_fallback.encoder is lab_ui._load("minilm", "cpu", "auto").encoder, "one copy of the weights"


def test_senses_and_mask_each_are_cached_across_reruns(tiny_bert_dir, monkeypatch):
    import lab_ui

    calls = []
    real = bertlab.senses
    monkeypatch.setattr(bertlab, "senses", lambda *a, **k: calls.append(1) or real(*a, **k))
    at = AppTest.from_file(APP, default_timeout=60)
    for key, value in dict(model=str(tiny_bert_dir), device="cpu", text="a cat .", pair="", target="bank",
                           sentences="only this test has the bank here .\nand the bank there , only here .").items():
        at.session_state[key] = value
    at.run()
    at.switch_page("pages/word_sense.py")
    at.run()
    at.run()
    at.run()
    assert len(calls) == 1, "a rerun (a slider move) must not run the sentences again"
    assert not at.error


def test_unexpected_errors_are_logged_with_traceback_and_shown_short(tiny_bert_dir, monkeypatch, caplog):
    import lab_ui

    def broken(*_a, **_k):
        raise ZeroDivisionError("deep inside the engine")

    monkeypatch.setattr(lab_ui, "analyze_encoding", broken)
    logger = logging.getLogger("bertlab")
    monkeypatch.setattr(logger, "propagate", True)  # let caplog see what the server's handler writes
    with caplog.at_level(logging.ERROR, logger="bertlab"):
        at = start(str(tiny_bert_dir), text="a text that breaks on purpose .")
    assert not at.exception
    shown = " ".join(str(e.value) for e in at.error)
    assert "ZeroDivisionError" in shown and "server log" in shown
    assert "deep inside the engine" not in shown, "internals stay in the log"
    record = next(r for r in caplog.records if r.name == "bertlab.app")
    assert record.exc_info and "deep inside the engine" in caplog.text


def test_the_device_bound_evicts_what_lives_on_the_accelerator(tiny_bert, monkeypatch):
    """BERTLAB_DEVICE_CACHE_MB: results whose tensors live on a GPU leave the cache, least recently used first, once
    they pass the device budget, whatever room the host budget has. (On this CPU-only machine a tensor counts as
    on the device here: device_bytes is asked with the CPU treated as one.)"""
    import lab_ui

    analyses = [bertlab.analyze(tiny_bert, f"the cat sat on mat number {i} .") for i in range(4)]
    each = lab_ui.device_bytes(analyses[0]) or 1
    monkeypatch.setattr(lab_ui, "on_device", lambda tensor: True)
    each = lab_ui.device_bytes(analyses[0])
    cache = lab_ui.ResultCache(maxsize=100 * each, device_maxsize=int(2.5 * each))
    for i, a in enumerate(analyses):
        cache[i] = a
    assert list(cache) == [2, 3], "two fit the device budget: the oldest went"
    assert cache.device_size <= cache.device_maxsize and set(cache.device_sizes) == {2, 3}
    host = lab_ui.ResultCache(maxsize=100 * each, device_maxsize=int(2.5 * each))
    monkeypatch.setattr(lab_ui, "on_device", lambda tensor: False)
    for i, a in enumerate(analyses):
        host[i] = a
    assert list(host) == [0, 1, 2, 3] and host.device_size == 0, "CPU tensors count against the host budget only"
