"""Whatever a room of students types: a clear message or a correct result, never a traceback.

One table, run through the engine and through the app (AppTest). After each case the same session
must still work, and a second session must be unaffected.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
from streamlit.testing.v1 import AppTest

import bertlab

APP = str(Path(__file__).resolve().parent.parent / "app.py")
PAGES = ["pages/tokenization.py", "pages/three_embeddings.py", "pages/attention_maps.py", "pages/masked_lm.py", "pages/bidirectional_vs_causal.py",
         "pages/word_sense.py", "pages/next_sentence.py"]


@dataclass
class Case:
    id: str
    text: str = "the cat sat on the mat."
    pair: str = ""
    model: str = "tiny"
    target: str | None = None
    sentences: list[str] | None = None
    env: dict[str, str] = field(default_factory=dict)
    error: type[Exception] | None = None
    message: str = ""
    check: str | None = None
    missing_on_hub: bool = False
    """Run with the Hub reachable and answering 404 for the repository (conftest's `hub_without_the_repo`)."""


CASES = [
    Case("empty text", text="", error=bertlab.InputError, message="empty"),
    Case("only whitespace", text=" \n\t  ", error=bertlab.InputError, message="empty"),
    Case("100,000 characters", text="bank " * 20_000, error=bertlab.InputError, message="100,000 characters"),
    Case("600 tokens", text=" ".join(["cat"] * 598), model="minilm", check="truncated"),
    Case("only [MASK] tokens", text="[MASK] [MASK] [MASK]", check="three masks"),
    Case("50 masks", text=" ".join(["[MASK]"] * 50), check="fifty masks"),
    Case("typed [CLS] [SEP] [PAD]", text="[CLS] the cat [SEP] sat [PAD]", check="typed specials"),
    Case("emoji with ZWJ", text="the family 👩‍👩‍👧‍👦 sat 🏳️‍🌈", model="minilm", check="works"),
    Case("right-to-left", text="مرحبا بالعالم שלום", model="minilm", check="works"),
    Case("CJK", text="我爱自然语言处理。日本語もです", model="minilm", check="works"),
    Case("combining accents", text="cafe\u0301 nai\u0308ve", model="minilm", check="works"),
    Case("control characters and NUL", text="the\x00 cat\x07 sat\x1b[31m", check="works"),
    Case("only control characters", text="\x00\x01\x02", error=bertlab.InputError, message="no tokens"),
    Case("script tag", text="<script>alert(1)</script> the cat", check="works"),
    Case("img onerror", text='<img src=x onerror="alert(1)"> the cat', check="works"),
    Case("second sentence too long", pair="a " * 15_000, error=bertlab.InputError, message="second sentence"),
    Case("target absent", target="bank", sentences=["the cat sat.", "the bank."], error=bertlab.TargetNotFoundError, message="sentence 1"),
    Case("one sentence", target="bank", sentences=["the bank."], error=bertlab.InputError, message="at least two"),
    Case("too many sentences", target="cat", sentences=["the cat."] * 40, error=bertlab.InputError, message="at most"),
    Case("unknown model id", model="no-such-user/no-such-bert", missing_on_hub=True, error=bertlab.ModelLoadError,
         message="'no-such-user/no-such-bert': no such model on the Hugging Face Hub"),
    Case("path that is not a model", model="{tmp}", error=bertlab.ModelLoadError, message="not a model"),
    Case("missing directory", model="./no/such/dir", error=bertlab.ModelLoadError, message="no such directory"),
    Case("path outside allowed places", model="{tiny}", env={"BERTLAB_ALLOWED_PATHS": "/nonexistent-root"}, error=bertlab.PolicyError, message="outside the folders"),
    Case("model not offered", model="minilm", env={"BERTLAB_ALLOWED_MODELS": "bert-base-*"}, error=bertlab.PolicyError, message="does not offer"),
    Case("a decoder bertlab does not read", model="{llama}", error=bertlab.NotAnEncoderError, message="llama model"),
    Case("no MLM head", model="minilm", text="the [MASK] sat.", check="no mlm head"),
    Case("corrupted weights", model="{corrupt}", error=bertlab.ModelLoadError, message="Cannot read"),
    Case("pickle-only weights", model="{pickle}", error=bertlab.PolicyError, message="pickle"),
    Case("hub unreachable, empty cache", model="bert-large-cased", env={"HF_HUB_OFFLINE": "1"}, error=bertlab.OfflineError, message="cannot be loaded on this machine"),
    Case("path traversal", model="{passwd}", error=bertlab.ModelLoadError, message="is a file"),
    Case("path traversal on a shared server", model="../../etc", env={"BERTLAB_ALLOWED_PATHS": "/srv/models"},
         error=bertlab.PolicyError, message="outside the folders"),
]


@pytest.fixture(scope="module")
def places(tmp_path_factory, tiny_bert_dir) -> dict[str, str]:
    from transformers import LlamaConfig

    root = tmp_path_factory.mktemp("hostile")
    (root / "empty").mkdir()
    (root / "empty" / "notes.txt").write_text("not a model")
    LlamaConfig(num_hidden_layers=1, hidden_size=8, num_attention_heads=2, intermediate_size=16).save_pretrained(root / "llama")
    corrupt = root / "corrupt"
    shutil.copytree(tiny_bert_dir, corrupt)
    (corrupt / "model.safetensors").write_bytes(b"\x00" * 64)
    pickle = root / "pickle"
    shutil.copytree(tiny_bert_dir, pickle)
    (pickle / "model.safetensors").unlink()
    (pickle / "pytorch_model.bin").write_bytes(b"pretend pickle")
    return {"tiny": str(tiny_bert_dir), "tmp": str(root / "empty"), "llama": str(root / "llama"), "corrupt": str(corrupt), "pickle": str(pickle),
            # A relative path that climbs to /etc/passwd from wherever the tests run (CI checks out deeper).
            "passwd": os.path.relpath("/etc/passwd")}


def model_name(case: Case, places: dict[str, str]) -> str:
    return places["tiny"] if case.model == "tiny" else case.model.format(**places)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_engine(case: Case, places, monkeypatch, request):
    for key, value in case.env.items():
        monkeypatch.setenv(key, value)
    if case.missing_on_hub:
        request.getfixturevalue("hub_without_the_repo")

    def run():
        loaded = bertlab.load_model(model_name(case, places), device="cpu")
        if case.sentences is not None:
            return loaded, bertlab.senses(loaded, case.target, case.sentences)
        return loaded, bertlab.analyze(loaded, case.text, case.pair or None)

    if case.error:
        with pytest.raises(case.error, match=case.message):
            run()
        return
    loaded, result = run()
    if case.check == "truncated":
        assert result.truncated and len(result.tokens) == 512 and any("truncated" in n for n in result.notes)
    elif case.check == "three masks":
        assert len(result.bidirectional.mlm) == 3
    elif case.check == "fifty masks":
        assert len(result.causal.mlm) == 50
    elif case.check == "typed specials":
        assert [t.special for t in result.tokens if t.text in ("[CLS]", "[SEP]", "[PAD]")] == [True] * 5
    elif case.check == "no mlm head":
        assert result.bidirectional.mlm == {} and any("no masked-LM head" in n for n in result.notes)
        with pytest.raises(bertlab.MissingHeadError):
            bertlab.fill_masks(loaded, case.text)
    import numpy as np

    np.testing.assert_allclose(result.bidirectional.attentions.sum(-1), 1.0, atol=1e-5)


def start(case: Case, places) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["model"] = model_name(case, places)
    at.session_state["device"] = "cpu"
    at.session_state["text"] = case.text
    at.session_state["pair"] = case.pair
    if case.sentences is not None:
        at.session_state["target"] = case.target
        at.session_state["sentences"] = "\n".join(case.sentences)
    return at


def messages(at: AppTest) -> str:
    return " ".join(str(e.value) for e in [*at.warning, *at.error, *at.info, *at.caption])


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_app(case: Case, places, monkeypatch, request):
    for key, value in case.env.items():
        monkeypatch.setenv(key, value)
    if case.missing_on_hub:
        request.getfixturevalue("hub_without_the_repo")
    at = start(case, places)
    at.run()
    pages = [PAGES[5]] if case.sentences is not None else PAGES[:5] + [PAGES[6]]
    for page in pages:
        at.switch_page(page).run()
        assert not at.exception, (page, [e.value for e in at.exception])
        if case.error:
            assert case.message.lower() in messages(at).lower(), (page, messages(at)[:500])
    # the same session recovers as soon as the input is fixed
    for key in case.env:
        monkeypatch.delenv(key)
    at.session_state["model"] = "minilm"  # (AppTest cannot pick a selectbox value its last run did not list)
    at.session_state["text"] = "the cat sat."
    at.session_state["pair"] = ""
    at.session_state["target"] = "cat"
    at.session_state["sentences"] = "the cat sat.\nwe have a cat."
    at.switch_page(PAGES[0]).run()
    assert not at.exception and list(at.dataframe[0].value["piece"]) == ["[CLS]", "the", "cat", "sat", ".", "[SEP]"]


def test_html_in_the_text_stays_text(places):
    case = Case("html", text='<img src=x onerror="alert(1)"><script>alert(2)</script> cat')
    at = start(case, places)
    at.run()
    at.switch_page(PAGES[0]).run()
    chips = next(h.proto.body for h in at.get("html"))
    assert "<img" not in chips and "<script" not in chips
    assert "&lt;" in chips


def test_out_of_memory_is_a_message(places, monkeypatch):
    loaded = bertlab.load_model(places["tiny"], device="cpu")

    def explode(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(loaded.encoder, "forward", explode)
    with pytest.raises(bertlab.ResourceError, match="ran out of memory"):
        bertlab.analyze(loaded, "the cat sat.")


def test_busy_server_says_so(monkeypatch):
    from bertlab import policy

    monkeypatch.setenv("BERTLAB_MAX_CONCURRENT", "1")
    with policy.model_slot():
        with pytest.raises(bertlab.BusyError, match="busy"):
            with policy.model_slot(wait_seconds=0.1):
                pass


def test_sessions_do_not_see_each_other(places):
    a = start(Case("a", text="the cat sat."), places)
    b = start(Case("b", text="a dog!"), places)
    a.run()
    b.run()
    a.switch_page(PAGES[0]).run()
    b.switch_page(PAGES[0]).run()
    a.session_state["text"] = ""
    a.run()
    b.run()
    assert any("empty" in w.value for w in a.warning)
    assert list(b.dataframe[0].value["piece"]) == ["[CLS]", "a", "dog", "!", "[SEP]"]


def test_one_heavy_job_per_session(monkeypatch, places):
    import threading

    import lab_ui

    monkeypatch.setattr(lab_ui, "SESSION_WAIT_SECONDS", 0.1)
    at = start(Case("busy"), places)
    at.run()
    at.session_state["_heavy_work"] = lock = threading.Lock()
    lock.acquire()  # as if this session's previous run were still in its forward pass
    at.switch_page(PAGES[1]).run()
    assert not at.exception
    assert any("Still working on your previous request" in w.value for w in at.warning)
    lock.release()
    at.run()
    assert not at.warning and at.metric
