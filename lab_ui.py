"""The Streamlit side shared by every page: the sidebar, the cached model and analyses, error display.

Widgets that define the view are bound to the URL (`bind="query-params"`), so a copied link
reproduces it. The engine (`bertlab`) never imports this module. The drawing helpers (charts, token pickers,
the window of positions) live in lab_widgets and are imported here, so a page needs only `lab_ui`.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
from typing import Callable, TypeVar

import cachetools
import numpy as np
import torch

import streamlit as st

import bertlab
from bertlab.analysis import Analysis, analyze_encoding
from bertlab import policy
from bertlab.loading import RANDOM_PREFIX, check_allowed, offline_message, resolve_source
from bertlab.corpus import Corpus, CorpusIndex, index_path, stored_index
from bertlab.errors import Stopped
from bertlab.hall.client import hall_from_env
from bertlab.tokens import Encoding, encode, with_masks
from lab_widgets import (  # noqa: F401  (pages use them as lab_ui.*; they live in lab_widgets)
    header, notes, presenting, PRESENTER_CSS, image, TITLE_CHARS,
    TOUCH_CSS, PRESENTER_LABELS, DENSE_LABELS, chart, layer_head, top_share, offered_positions,
    token_labels, token_picker, WINDOW_TOKENS, WINDOW_SIZES, token_window,
)

T = TypeVar("T")
log = logging.getLogger("bertlab.app")


def _configure_logging() -> None:
    """bertlab's loggers write to the server's stderr (once per process): model loads, fallbacks, and the
    traceback of any unexpected error a page caught."""
    root = logging.getLogger("bertlab")
    if not root.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s bertlab: %(message)s"))
        root.addHandler(handler)
        root.setLevel(os.environ.get("BERTLAB_LOG_LEVEL", "INFO").upper())
        root.propagate = False


_configure_logging()

MECHANICS_MODEL = f"{RANDOM_PREFIX}bert-base"
"""BERT-base's shape with both pre-training heads and random weights: what the MLM and NSP pages can run on a
machine with no hub and no stored checkpoint (every step real, every prediction meaningless)."""
DECODER = "gpt2"
"""The causal model the lessons compare BERT with; `random:gpt2` where it cannot be loaded."""
MODELS = [
    "bert-base-uncased",
    "bert-base-cased",
    "bert-large-uncased",
    "bert-base-multilingual-cased",
    "distilbert-base-uncased",
    "roberta-base",
    "albert-base-v2",
    "google/electra-base-discriminator",
    "microsoft/deberta-v3-base",
    "answerdotai/ModernBERT-base",
    DECODER,
    bertlab.PACKAGED_MODEL,
    MECHANICS_MODEL,
    f"{RANDOM_PREFIX}roberta-base",
    f"{RANDOM_PREFIX}albert-base",
    f"{RANDOM_PREFIX}electra-base",
    f"{RANDOM_PREFIX}deberta-v3-base",
    f"{RANDOM_PREFIX}modernbert-base",
    f"{RANDOM_PREFIX}{DECODER}",
]

MODEL_HELP = (
    "A Hugging Face hub id or a local directory of a checkpoint of a family bertlab reads: BERT, DistilBERT, RoBERTa, "
    "ALBERT, ELECTRA, DeBERTa-v3, ModernBERT, and GPT-2 as the causal model to compare them with. 'minilm' is the "
    "packaged, offline all-MiniLM-L6-v2 encoder (real weights, no MLM/NSP head). When the default cannot be "
    "downloaded, bertlab falls back to it and says so. 'random:…' models have a family's published shape and random "
    "weights: every step is real, their predictions mean nothing."
)
PRESETS: dict[str, tuple[str, str]] = {
    "bank (money)": ("I went to the bank to deposit money.", ""),
    "bank (river)": ("The river bank was very scenic.", ""),
    "bank (robbed)": ("The bank was robbed yesterday.", ""),
    "sentence pair": ("I have a pen", "the pen is red"),
    "fill the mask": ("The quick brown [MASK] jumps over the lazy dog.", ""),
    "two masks": ("The man went to the [MASK] to buy a [MASK] of milk.", ""),
}
DEFAULT_TEXT, DEFAULT_PAIR = PRESETS["fill the mask"]
DEVICES = ["auto", "cpu", "cuda", "mps"]
PRECISIONS = ["auto", "float32", "bfloat16", "float16"]
"""The weights' number format (bertlab.loading.pick_dtype): auto is bfloat16 on a CUDA GPU and float32 elsewhere."""


def _default(key: str, value: object) -> None:
    """Seed a widget's state unless the URL or an earlier run already did."""
    if key not in st.session_state and key not in st.query_params:
        st.session_state[key] = value


def _apply_preset() -> None:
    text, pair = PRESETS[st.session_state.preset]
    st.session_state.text, st.session_state.pair = text, pair


def sidebar(pages: dict | None = None) -> None:
    """The sidebar: the pages (links under their section's name), then the model, the text and presenter mode."""
    st.session_state["_shown_errors"] = set()  # a load error is shown once per run (banner), not per caller
    st.html(TOUCH_CSS)
    if presenting():
        st.html(PRESENTER_CSS)
    _default("model", bertlab.DEFAULT_MODEL)
    _default("text", DEFAULT_TEXT)
    _default("pair", DEFAULT_PAIR)
    with st.sidebar:
        st.markdown("## 🔬 bertlab")
        for section, links in (pages or {}).items():
            with st.container(gap="small", key=f"nav_{section.lower().replace(' ', '_')}"):
                st.markdown(f"**{section}**")
                for link in links:
                    st.page_link(link)
        if pages:
            st.divider()
        current = st.session_state.get("model") or st.query_params.get("model")
        options = MODELS + ([current] if current and current not in MODELS else [])
        # the options are their own labels: a URL-bound selectbox writes the label into the link
        st.selectbox("Model", options, key="model", accept_new_options=True, help=MODEL_HELP, bind="query-params")
        model_box = st.container()
        device, precision = st.columns(2)
        device.selectbox("Device", DEVICES, key="device", help="auto: CUDA, then Apple MPS, then CPU", bind="query-params")
        precision.selectbox("Precision", PRECISIONS, key="dtype", bind="query-params",
                            help="The weights' number format. auto: bfloat16 on a CUDA GPU (half the memory, faster), "
                                 "float32 elsewhere. float16 is for GPUs only.")
        st.selectbox(
            "Example", list(PRESETS), index=None, key="preset", placeholder="Load an example…", on_change=_apply_preset
        )
        st.text_area("Text (segment A)", key="text", height=110, help="Type [MASK] where BERT should guess a word.", bind="query-params")
        st.text_input("Second sentence (segment B, optional)", key="pair", help="BERT's input is [CLS] A [SEP] B [SEP].", bind="query-params")
        st.toggle("Presenter mode", key="present", bind="query-params", help="Large, high-contrast text for a projector; add ?present=true to a link.")
    with model_box:  # right under the Model box, above the fold: which model really runs
        loaded = model_or_none(show=False)  # a load error is shown once, in the main area (banner)
        if loaded is not None:
            info = loaded.info
            heads = ", ".join(h.upper() for h in info.heads_available) or "none"
            st.caption(
                f"Running **{running_name(loaded)}** · {info.layers} layers · {info.heads} heads · hidden "
                f"{info.hidden_size} · {info.parameters / 1e6:.3g}M parameters · heads: {heads} · {info.device}, {info.dtype}"
            )
            if info.notice:
                st.warning(info.notice, icon="📦")


MODEL_SLOTS = 4
"""Models held per process (st.cache_resource): two compared side by side, the packaged MiniLM and one more."""


@st.cache_resource(show_spinner=False, max_entries=MODEL_SLOTS)
def _load(name: str, device: str, dtype: str = "auto") -> bertlab.LoadedModel:
    # the offline stand-in for the default shares this cache's packaged model: one copy of its weights
    return bertlab.load_model(name, device=device, dtype=dtype, packaged=lambda: _load(bertlab.PACKAGED_MODEL, device, dtype))


def _error_once(message: str, show: bool = True) -> None:
    """Show a load error unless this run already did (the banner shows it first; a page that asks again stays quiet)."""
    shown = st.session_state.setdefault("_shown_errors", set())
    if show and message not in shown:
        shown.add(message)
        st.error(message, icon="⚠️")


def model_or_none(name: str | None = None, show: bool = True) -> bertlab.LoadedModel | None:
    """The process's one copy of a model (default: the sidebar's), or None after showing why it could not load
    (`show=False`: quietly; the next caller shows it)."""
    name = (name or st.session_state.get("model") or bertlab.DEFAULT_MODEL).strip()
    device = st.session_state.get("device") or "auto"
    dtype = st.session_state.get("dtype") or "auto"
    try:
        served(name)  # the policy applies to models already in the cache too
        check_allowed(name)
        with st.spinner(f"Loading {name}…"):
            loaded = _load(name, device, dtype)
        if loaded.info.name != name:  # a cached offline stand-in: the operator may have stopped offering it since
            try:
                check_allowed(loaded.info.name)
            except bertlab.PolicyError:
                raise bertlab.OfflineError(offline_message(name)) from None
        return loaded
    except bertlab.BertlabError as err:
        _error_once(str(err), show)
        return None
    except Exception:  # never a traceback in the page; the operator gets it in the log
        if show:
            log.exception("loading %r on %s failed", name, device)
        _error_once(f"'{name}' could not be loaded because of an unexpected error; the server log has the details.", show)
        return None


def served(name: str) -> None:
    """The app's own rule over the engine's: with BERTLAB_ALLOWED_PATHS unset, no local folder (bertlab.policy)."""
    source = resolve_source(name)
    policy.check_served(name, source, packaged=source != os.path.expanduser(name.strip()))


def running_name(loaded: bertlab.LoadedModel, requested: str | None = None) -> str:
    """The model that actually runs, e.g. 'minilm (offline stand-in for bert-base-uncased)'."""
    requested = (requested or st.session_state.get("model") or bertlab.DEFAULT_MODEL).strip()
    name = loaded.info.name
    if name != requested:
        return f"{name} (offline stand-in for {requested})"
    if name.startswith(RANDOM_PREFIX):
        return f"{name} (random weights)"
    return name


LONG_LINK_CHARS = 1500
"""Above this many characters of text, the share link (the text is in the URL) is too long for many chat apps."""


def banner(slot) -> None:
    """The top of the main area on every page: the model that actually runs, in one small line (the sidebar is
    collapsed on a phone and in presenter mode), or why it could not load; and a truncated or long input."""
    with slot.container():
        loaded = model_or_none()
        if loaded is None:
            return
        info = loaded.info
        st.caption(
            f"🔬 Model running: **{running_name(loaded)}** · {info.layers} layers · {info.heads} heads · "
            f"hidden {info.hidden_size}",
            help=info.notice,
        )
        random_weights_note(loaded)  # on every page and lesson step, with the way back when a button switched
        text, pair = st.session_state.get("text", ""), st.session_state.get("pair", "")
        try:
            tokens = encode(loaded, text, pair or None)  # tokenizing only: cheap, and every page shows its effect
        except bertlab.BertlabError:
            tokens = None  # the page says what is wrong with the text
        if tokens is not None and tokens.truncated:
            st.warning(
                f"**Your text was cut short.** It has {tokens.untruncated_length:,} tokens; BERT reads at most "
                f"{len(tokens):,} positions, so every page shows only the first {len(tokens):,} tokens.",
                icon="✂️",
            )
        if len(text) + len(pair) > LONG_LINK_CHARS:
            st.info(
                f"This text has {len(text) + len(pair):,} characters, and a link to this page carries all of them: "
                "too long for many chat apps and QR codes. To share it, send the text itself, or a shorter passage.",
                icon="🔗",
            )


def in_this_model(attribute: str) -> str:
    """', N in this model' for a size a text quotes for BERT-base (heads, layers, intermediate_size, ...), or ''."""
    loaded = model_or_none(show=False)
    if loaded is None:
        return ""
    return f", {getattr(loaded.info, attribute):,} in the model running here ({loaded.info.name})"


def sizes_sentence() -> str:
    """The running model's sizes, next to a text that quotes BERT-base's ('' when no model loaded)."""
    loaded = model_or_none(show=False)
    if loaded is None:
        return ""
    i = loaded.info
    return (
        f"The model running here, **{running_name(loaded)}**, has {i.layers} layers, hidden size {i.hidden_size}, "
        f"{i.heads} heads, a {i.intermediate_size:,}-wide feed-forward block and {i.vocab_size:,} vocabulary entries "
        f"({i.parameters / 1e6:.3g}M parameters): every chart below shows those."
    )


HEAD_NAMES = {"mlm": "masked-LM head", "nsp": "next-sentence-prediction head"}
WITHOUT_HEAD = {
    bertlab.PACKAGED_MODEL: "it was trained for sentence embeddings, and its checkpoint holds only the encoder",
    "distilbert": "DistilBERT was distilled with the masked-LM objective only, without next sentence prediction",
}
NOT_TRAINED_WITH = {
    "nsp": "next sentence prediction is BERT's pre-training task; {title} was not trained with it",
    "mlm": "{title} was not trained to fill blanks",
}


def _use_model(name: str) -> None:
    """Switch the sidebar's model, remembering the one before, so the page can offer the way back."""
    before = (st.session_state.get("model") or bertlab.DEFAULT_MODEL).strip()
    if before != name:
        st.session_state["_model_before"] = before
    st.session_state["model"] = name


def allowed(name: str) -> bool:
    """May users load `name` on this server (BERTLAB_ALLOWED_MODELS, and the app's rule for local folders)?"""
    try:
        served(name)
        check_allowed(name)
        return True
    except bertlab.PolicyError:
        return False


def mechanics_offer(loaded: bertlab.LoadedModel) -> str | None:
    """The random-weights model with both heads, when it is not the one running and this server offers it."""
    return MECHANICS_MODEL if loaded.info.name != MECHANICS_MODEL and allowed(MECHANICS_MODEL) else None


def missing_head(loaded: bertlab.LoadedModel, head: str, offer: bool = True) -> None:
    """Why this view has nothing to show with the running model and what does work here, in plain words (no
    commands: making a checkpoint load is the operator's job, README's "Running for a class"). `offer`: a
    button that switches the sidebar's model to random weights (a page; the lesson offers its own, for one step)."""
    requested = (st.session_state.get("model") or bertlab.DEFAULT_MODEL).strip()
    name, what = loaded.info.name, HEAD_NAMES[head]
    if name != requested:  # the offline stand-in runs
        text = (f"**{requested} cannot be loaded on this machine**: this server cannot reach the Hugging Face Hub and "
                f"has no stored copy of it, so **{name}** runs instead, and {name} has no {what}. What would make "
                f"{requested} load: whoever runs this server downloads it once on a machine with internet access.")
    else:
        could_hold = any(head in heads for heads in loaded.adapter.classes.values())
        if name in WITHOUT_HEAD:
            why = WITHOUT_HEAD[name]
        elif loaded.info.family == "distilbert" and head == "nsp":
            why = WITHOUT_HEAD["distilbert"]
        elif not could_hold:
            why = NOT_TRAINED_WITH[head].format(title=loaded.info.title)
        elif loaded.info.family == "electra" and head == "mlm":
            why = "it is ELECTRA's discriminator, which says per token whether it was replaced; the generator holds the MLM head"
        else:
            why = "its checkpoint does not include one"
        text = f"**{name}** has no {what}: {why}."
    mechanics = mechanics_offer(loaded)
    if mechanics:
        text += (f" What works here now: **{mechanics}**, BERT-base's shape with both heads and random weights. Every step "
                 "is real and shown as BERT computes it; the predictions themselves mean nothing.")
    st.warning(text, icon="🧩")
    if mechanics and offer:
        st.button(f"Use {mechanics} (random weights)", on_click=_use_model, args=(mechanics,), key=f"use_{head}_mechanics",
                  icon=":material/casino:")


RANDOM_NOTE = ("🎲 **{name}** has random weights: every number here is computed as {title} computes it, but what a "
               "trained {title} learns is not in them, so its predictions, and the patterns trained heads show, are absent.")


def random_weights_note(loaded: bertlab.LoadedModel) -> None:
    """On every view of a random-weights model: what is real (every step) and what is not (the answer); and,
    when a page's button switched to it, the way back to the model before."""
    if not loaded.info.name.startswith(RANDOM_PREFIX):
        return
    before = st.session_state.get("_model_before")
    if before and before != loaded.info.name and (st.session_state.get("model") or "").strip() == loaded.info.name:
        left, right = st.columns([4, 1], vertical_alignment="center")
        left.caption(RANDOM_NOTE.format(name=loaded.info.name, title=loaded.info.title or 'BERT'))
        right.button(f"Back to {before}", key="model_back", on_click=_use_model, args=(before,), icon=":material/undo:")
    else:
        st.caption(RANDOM_NOTE.format(name=loaded.info.name, title=loaded.info.title or 'BERT'))


def model(name: str | None = None) -> bertlab.LoadedModel:
    loaded = model_or_none(name)
    if loaded is None:
        st.info("Choose another model in the sidebar (for example 'minilm', which needs no network).")
        st.stop()
    return loaded


def model_with_head(head: str) -> bertlab.LoadedModel:
    """The sidebar's model for a page that needs a pre-training head ("mlm" or "nsp"): without it, the page
    says why and what works here, and stops."""
    loaded = model()
    if head not in loaded.info.heads_available:
        missing_head(loaded, head)
        st.stop()
    return loaded  # random weights: the banner says what they mean (random_weights_note)


CACHE_MB = int(os.environ.get("BERTLAB_CACHE_MB", "256"))
DEVICE_CACHE_MB = int(os.environ.get("BERTLAB_DEVICE_CACHE_MB", str(CACHE_MB)))
"""Of CACHE_MB, at most this much on the accelerator: an analysis keeps its tensors where the model computed them
(a GPU's memory, which the model itself needs too). Default: the same as CACHE_MB."""


class ResultCache(cachetools.LRUCache):
    """Least recently used out first, within `maxsize` bytes in all and `device_maxsize` bytes of tensors on an
    accelerator (device_bytes). cachetools bounds one size; the second bound is kept here."""

    def __init__(self, maxsize: int, device_maxsize: int) -> None:
        super().__init__(maxsize=maxsize, getsizeof=nbytes)
        self.device_maxsize = device_maxsize
        self.device_sizes: dict = {}

    @property
    def device_size(self) -> int:
        return sum(self.device_sizes.values())

    def __setitem__(self, key, value) -> None:
        size = device_bytes(value)
        if size > self.device_maxsize:
            return  # larger than the whole device budget: computed for this request, not kept
        super().__setitem__(key, value)
        self.device_sizes[key] = size
        while self.device_size > self.device_maxsize:
            self.popitem()

    def __delitem__(self, key) -> None:
        super().__delitem__(key)
        self.device_sizes.pop(key, None)


def on_device(tensor: torch.Tensor) -> bool:
    """Does this tensor live on an accelerator (what DEVICE_CACHE_MB bounds)?"""
    return tensor.device.type != "cpu"


def device_bytes(value: object, depth: int = 0, seen: set | None = None) -> int:
    """Bytes of a result's tensors that live on an accelerator (not on the CPU), each storage counted once."""
    seen = set() if seen is None else seen
    if isinstance(value, torch.Tensor):
        if not on_device(value):
            return 0
        storage = value.untyped_storage()
        if storage.data_ptr() in seen:
            return 0
        seen.add(storage.data_ptr())
        return storage.nbytes()
    if depth > 5 or isinstance(value, (str, bytes, int, float, np.ndarray)) or value is None:
        return 0
    if dataclasses.is_dataclass(value):
        value = vars(value)
    if isinstance(value, dict):
        return sum(device_bytes(v, depth + 1, seen) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(device_bytes(v, depth + 1, seen) for v in value)
    return 0


@st.cache_resource(show_spinner=False)
def _results() -> tuple[ResultCache, threading.Lock]:
    """Every engine result (analyses, senses, mask-each, logit lens, experiments, ...) shared by every
    session of this process, least recently used out first, within CACHE_MB (DEVICE_CACHE_MB of it on a GPU).

    Analyses are stored compact (float16 attentions): a 512-token analysis of BERT-base still holds
    ~200 MB, so the bound is in bytes, not entries (st.cache_data would also pickle a copy per read)."""
    return ResultCache(CACHE_MB * 2**20, DEVICE_CACHE_MB * 2**20), threading.Lock()


def nbytes(value: object, depth: int = 0) -> int:
    """Bytes held by a result's arrays and tensors (dataclasses, dicts and lists walked a few levels deep)."""
    if hasattr(value, "nbytes") and not isinstance(value, (np.ndarray, torch.Tensor)) and depth == 0:
        return int(value.nbytes)
    if isinstance(value, np.ndarray):
        return value.nbytes
    if isinstance(value, torch.Tensor):
        return value.element_size() * value.nelement()
    if depth > 4:
        return 0
    if dataclasses.is_dataclass(value):
        value = vars(value)
    if isinstance(value, dict):
        return 64 + sum(nbytes(v, depth + 1) for v in value.values())
    if isinstance(value, (list, tuple)):
        return 64 + sum(nbytes(v, depth + 1) for v in value)
    return 64


def cached(loaded: bertlab.LoadedModel, what: str, inputs: tuple, compute: Callable[[], T]) -> T:
    """One cache for every engine result, keyed by the loaded model's identity (its ModelInfo: name, device,
    dtype and notice, so the offline stand-in never shares entries with an explicit 'minilm') and the inputs."""
    cache, lock = _results()
    key = (loaded.info, what, inputs)
    with lock:
        hit = cache.get(key)
    if hit is not None:
        return hit
    hall = hall_from_env()  # a lecture hall (bertlab.hall): its shared cache and model service; else computed here
    result = hall.fetch(loaded, what, inputs, compute, remote=compute is not _absent,
                        on_busy=lambda message: st.toast(message, icon="⏳")) if hall else compute()
    with lock:
        if nbytes(result) <= cache.maxsize:
            cache[key] = result
    return result


def compute(loaded: bertlab.LoadedModel, what: str, inputs: tuple, work: Callable[[], T], spinner: str | None = "Running {model}…") -> T:
    """A cached engine result, computed under a spinner with the page's error handling ("{model}" in the spinner's
    text names the running model's family: BERT, RoBERTa, GPT-2...)."""
    return guarded(lambda: cached(loaded, what, inputs, work), spinner=spinner and spinner.format(model=loaded.info.title or "the model"))


def _encoding(loaded: bertlab.LoadedModel, text: str, pair: str, masked: tuple[int, ...]) -> Encoding:
    encoding = encode(loaded, text, pair or None)
    return with_masks(loaded, encoding, masked) if masked else encoding


def analysis(loaded: bertlab.LoadedModel | None = None, masked: tuple[int, ...] = (), top_k: int = 5) -> Analysis:
    """The analysis of the sidebar's text (one forward pass, cached by model and inputs), for `loaded`
    (default: the sidebar's model)."""
    loaded = loaded or model()
    state = st.session_state
    text, pair, masked = state.get("text", ""), state.get("pair", ""), tuple(sorted(masked))
    return compute(loaded, *analysis_work(loaded, text, pair, masked, top_k))


def analysis_work(loaded: bertlab.LoadedModel, text: str, pair: str, masked: tuple[int, ...] = (), top_k: int = 5) -> tuple:
    """(what, inputs, work) of one text's analysis in the one result cache: the pages' key, which the warm-up
    (lab_warm.py) fills before the first visitor."""
    return "analysis", (text, pair, masked, top_k), lambda: analyze_encoding(loaded, _encoding(loaded, text, pair, masked), top_k=top_k).compact()


def encoding_key(encoding: Encoding) -> tuple:
    """What a result computed from an encoding depends on: its token ids and segments."""
    return tuple((t.id, t.segment) for t in encoding.tokens)


def senses(loaded: bertlab.LoadedModel, target: str, sentences: list[str]) -> bertlab.Senses:
    """A word across sentences (one batched pass), cached."""
    return compute(loaded, "senses", (target, tuple(sentences)), lambda: bertlab.senses(loaded, target, sentences),
                   spinner="Running {model} on every sentence…")


def mask_each(loaded: bertlab.LoadedModel, result: Analysis, kind: str) -> bertlab.MaskEach:
    """Mask-each-token pseudo-log-likelihood (one batched pass of n rows), cached."""
    return compute(loaded, "mask_each", (encoding_key(result.encoding), kind),
                   lambda: bertlab.mask_each_token(loaded, result.encoding, kind=kind), spinner="Masking each token…")


def logit_lens(loaded: bertlab.LoadedModel, result: Analysis, position: int, top_k: int = 5) -> list:
    """The MLM head read at every layer for one position, cached."""
    return compute(loaded, "logit_lens", (encoding_key(result.encoding), position, top_k),
                   lambda: bertlab.logit_lens(loaded, result, position, top_k=top_k), spinner=None)


def encoding(loaded: bertlab.LoadedModel | None = None) -> Encoding:
    loaded = loaded or model()
    return guarded(lambda: encode(loaded, st.session_state.get("text", ""), st.session_state.get("pair") or None))


SESSION_WAIT_SECONDS = 30.0


def _one_at_a_time(work: Callable[[], T]) -> T:
    """One heavy job per session: a rerun can start while the last run's forward pass is still finishing."""
    lock = st.session_state.setdefault("_heavy_work", threading.RLock())  # long_work inside a spinner: the same run
    if not lock.acquire(timeout=SESSION_WAIT_SECONDS):
        raise bertlab.BusyError("Still working on your previous request; this view will update when it is done.")
    try:
        return work()
    finally:
        lock.release()


def guarded(work: Callable[[], T], spinner: str | None = None) -> T:
    """Run engine work; a bad input becomes a message on the page, and the rest of the app stays usable.
    An unexpected error is logged with its traceback for the operator; the page gets one short line.

    With a spinner, the work counts as heavy: one such job per session at a time."""
    try:
        if spinner:
            with st.spinner(spinner):
                return _one_at_a_time(work)
        return work()
    except bertlab.BertlabError as err:
        st.warning(str(err), icon="✋")
        st.stop()
    except Exception as err:  # a view must never show a traceback
        log.exception("unexpected error in %s", st.session_state.get("_page", "a page"))
        st.error(f"Something went wrong ({type(err).__name__}); the server log has the details. The rest of the app still works.")
        st.stop()


Work = Callable[[Callable[[int, int], None], Callable[[], bool]], T]
"""work(progress, should_stop) -> result: an engine call with its progress callback and its stop question."""


class _Absent(Exception):
    """Not in the cache (a look that computes nothing)."""


def _absent() -> None:
    raise _Absent


def _stop(state: str, token: str, event: threading.Event, seen: list[int]) -> None:
    st.session_state[state] = (token, *seen)
    event.set()


def _again(state: str) -> None:
    st.session_state.pop(state, None)


def cached_only(loaded, what: str, inputs: tuple) -> object | None:
    """The cached result for these inputs, or None: never computes."""
    try:
        return cached(loaded, what, inputs, _absent)
    except _Absent:
        return None


def long_work(loaded, what: str, inputs: tuple, work: Work[T], label: str, unit: str) -> T | None:
    """The cached result of `work`, or computed now with a progress bar and a Stop button; None after a Stop (the
    page has then said so and offered to start again). Bad input is a message, never a traceback (guarded).

    How Stop ends it: the engine calls `progress(done, total)` after each batch, which updates the bar, and every
    Streamlit call is a point where a running script yields to a pending rerun. Clicking Stop asks for a rerun, so
    the work ends at its next batch (no result is cached); the rerun runs Stop's callback, which records where it
    stopped, and the page says so with a button to start again. `should_stop` (a threading.Event set by the same
    callback) stops the engine between batches too, should the script still be running when the callback runs."""
    state, token = f"_stopped_{what}", repr((loaded.info, inputs))
    stopped = st.session_state.get(state)
    if stopped and stopped[0] == token:
        hit = cached_only(loaded, what, inputs)  # it finished as Stop was clicked
        if hit is not None:
            st.session_state.pop(state, None)
            return hit
        done, total = stopped[1:]
        st.info(f"Stopped after {done:,} of {total:,} {unit}: nothing was kept.", icon="⏹️")
        st.button("Start again", key=f"{what}_again", on_click=_again, args=(state,), icon=":material/play_arrow:")
        return None

    seen = [0, 0]

    def compute() -> T:
        slot = st.empty()  # one placeholder: emptied when the work ends, bar and button with it
        box = slot.container()
        bar = box.progress(0.0, text=f"{label}…")
        event = threading.Event()
        box.button("Stop", key=f"{what}_stop", on_click=_stop, args=(state, token, event, seen), icon=":material/stop:",
                   help="Ends the work after the batch it is on; nothing is kept.")

        def progress(done: int, total: int) -> None:
            seen[:] = [done, total]
            bar.progress(done / max(total, 1), text=f"{label}: {done:,} of {total:,} {unit}")

        try:
            return _one_at_a_time(lambda: work(progress, event.is_set))
        finally:
            slot.empty()

    def attempt() -> T | None:
        try:
            return cached(loaded, what, inputs, compute)
        except Stopped as err:  # bertlab.Stopped: the engine's own says how far it got
            st.session_state[state] = (token, getattr(err, "done", seen[0]), getattr(err, "total", seen[1]))
            return None

    result = guarded(attempt)
    if result is None:
        st.rerun()
    return result


def corpus_index(loaded: bertlab.LoadedModel, corpus: Corpus, mask_types: tuple[str, ...] = bertlab.MASK_TYPES) -> CorpusIndex:
    """The corpus index for this model: in the one result cache (keyed by the corpus file's hash), else read from
    the disk cache (bertlab.corpus.stored_index), else built with a progress bar, a Stop button and a line that
    says why. After a Stop the page says so and ends there."""
    inputs = (corpus.digest, mask_types)
    why = st.empty()
    if cached_only(loaded, "corpus_index", inputs) is None and not index_path(loaded, corpus, mask_types)[0].exists():
        masks_said = "under both masks" if len(mask_types) > 1 else f"under its {mask_types[0]} mask"
        why.info(
            f"**Building the sense probe's index for {loaded.info.name}.** It runs each of the {len(corpus):,} sentences "
            f"of {corpus.name} through the model once, {masks_said}, and keeps the word's vector at every layer. "
            "This happens once per model (a minute or two on a laptop's processor): the index is kept on this "
            "server's disk, and every later visit, by anyone, reuses it.", icon="⏳")
    index = long_work(loaded, "corpus_index", inputs,
                      lambda progress, _stop: stored_index(loaded, corpus, progress=progress, mask_types=mask_types),
                      f"Indexing {corpus.name} with {loaded.info.name}", "sentences")
    why.empty()
    if index is None:
        st.stop()
    return index
