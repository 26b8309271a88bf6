"""The Streamlit side shared by every page: the sidebar, the cached model and analyses, error display.

Widgets that define the view are bound to the URL (`bind="query-params"`), so a copied link
reproduces it. The engine (`bertlab`) never imports this module.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import textwrap
import threading
from typing import Callable, TypeVar

import cachetools
import numpy as np
import torch

import streamlit as st

import bertlab
from bertlab import modebar
from bertlab.analysis import Analysis, analyze_encoding
from bertlab.loading import RANDOM_PREFIX, check_allowed, offline_message
from bertlab.corpus import Corpus, CorpusIndex, build_index
from bertlab.tokens import Encoding, encode, with_masks

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
MODELS = [
    "bert-base-uncased",
    "bert-base-cased",
    "bert-large-uncased",
    "bert-base-multilingual-cased",
    "distilbert-base-uncased",
    bertlab.PACKAGED_MODEL,
    MECHANICS_MODEL,
]

MODEL_HELP = (
    "A Hugging Face hub id or a local directory of a BERT-family checkpoint. 'minilm' is the packaged, "
    "offline all-MiniLM-L6-v2 encoder (real weights, no MLM/NSP head). When the default cannot be "
    "downloaded, bertlab falls back to it and says so. 'random:bert-base' has BERT-base's shape and both "
    "pre-training heads with random weights: every step is real, its predictions mean nothing."
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


def _default(key: str, value: object) -> None:
    """Seed a widget's state unless the URL or an earlier run already did."""
    if key not in st.session_state and key not in st.query_params:
        st.session_state[key] = value


def _apply_preset() -> None:
    text, pair = PRESETS[st.session_state.preset]
    st.session_state.text, st.session_state.pair = text, pair


def sidebar() -> None:
    st.session_state["_shown_errors"] = set()  # a load error is shown once per run (banner), not per caller
    st.html(TOUCH_CSS)
    if presenting():
        st.html(PRESENTER_CSS)
    _default("model", bertlab.DEFAULT_MODEL)
    _default("text", DEFAULT_TEXT)
    _default("pair", DEFAULT_PAIR)
    with st.sidebar:
        st.markdown("## 🔬 bertlab")
        current = st.session_state.get("model") or st.query_params.get("model")
        options = MODELS + ([current] if current and current not in MODELS else [])
        # the options are their own labels: a URL-bound selectbox writes the label into the link
        st.selectbox("Model", options, key="model", accept_new_options=True, help=MODEL_HELP, bind="query-params")
        model_box = st.container()
        st.selectbox("Device", DEVICES, key="device", help="auto: CUDA, then Apple MPS, then CPU", bind="query-params")
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
                f"{info.hidden_size} · {info.parameters / 1e6:.3g}M parameters · heads: {heads} · {info.device}"
            )
            if info.notice:
                st.warning(info.notice, icon="📦")


MODEL_SLOTS = 4
"""Models held per process (st.cache_resource): two compared side by side, the packaged MiniLM and one more."""


@st.cache_resource(show_spinner=False, max_entries=MODEL_SLOTS)
def _load(name: str, device: str) -> bertlab.LoadedModel:
    # the offline stand-in for the default shares this cache's packaged model: one copy of its weights
    return bertlab.load_model(name, device=device, packaged=lambda: _load(bertlab.PACKAGED_MODEL, device))


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
    try:
        check_allowed(name)  # the policy applies to models already in the cache too
        with st.spinner(f"Loading {name}…"):
            loaded = _load(name, device)
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


def _use_model(name: str) -> None:
    st.session_state["model"] = name


def allowed(name: str) -> bool:
    """May users load `name` on this server (BERTLAB_ALLOWED_MODELS)?"""
    try:
        check_allowed(name)
        return True
    except bertlab.PolicyError:
        return False


def missing_head(loaded: bertlab.LoadedModel, head: str) -> None:
    """Why this view has nothing to show with the running model and what does work here, in plain words (no
    commands: making a checkpoint load is the operator's job, README's "Running for a class")."""
    requested = (st.session_state.get("model") or bertlab.DEFAULT_MODEL).strip()
    name, what = loaded.info.name, HEAD_NAMES[head]
    if name != requested:  # the offline stand-in runs
        text = (f"**{requested} cannot be loaded on this machine**: this server cannot reach the Hugging Face Hub and "
                f"has no stored copy of it, so **{name}** runs instead, and {name} has no {what}. What would make "
                f"{requested} load: whoever runs this server downloads it once on a machine with internet access.")
    else:
        if name in WITHOUT_HEAD:
            why = WITHOUT_HEAD[name]
        elif loaded.info.family == "distilbert" and head == "nsp":
            why = WITHOUT_HEAD["distilbert"]
        else:
            why = "its checkpoint does not include one"
        text = f"**{name}** has no {what}: {why}."
    offer = MECHANICS_MODEL if name != MECHANICS_MODEL and allowed(MECHANICS_MODEL) else None
    if offer:
        text += (f" What works here now: **{offer}**, BERT-base's shape with both heads and random weights. Every step "
                 "is real and shown as BERT computes it; the predictions themselves mean nothing.")
    st.warning(text, icon="🧩")
    if offer:
        st.button(f"Use {offer} (random weights)", on_click=_use_model, args=(offer,), key=f"use_{head}_mechanics",
                  icon=":material/casino:")


def random_weights_note(loaded: bertlab.LoadedModel) -> None:
    """Under predictions from random weights: what is real (every step) and what is not (the answer)."""
    if loaded.info.name.startswith(RANDOM_PREFIX):
        st.caption(f"🎲 **{loaded.info.name}** has random weights: every step below is computed as BERT computes it, "
                   "but the predictions mean nothing. A trained checkpoint is needed for sensible ones.")


def model(name: str | None = None) -> bertlab.LoadedModel:
    loaded = model_or_none(name)
    if loaded is None:
        st.info("Choose another model in the sidebar (for example 'minilm', which needs no network).")
        st.stop()
    return loaded


CACHE_MB = int(os.environ.get("BERTLAB_CACHE_MB", "256"))


@st.cache_resource(show_spinner=False)
def _results() -> tuple[cachetools.LRUCache, threading.Lock]:
    """Every engine result (analyses, senses, mask-each, logit lens, experiments, ...) shared by every
    session of this process, least recently used out first, within CACHE_MB.

    Analyses are stored compact (float16 attentions): a 512-token analysis of BERT-base still holds
    ~200 MB, so the bound is in bytes, not entries (st.cache_data would also pickle a copy per read)."""
    return cachetools.LRUCache(maxsize=CACHE_MB * 2**20, getsizeof=nbytes), threading.Lock()


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
    result = compute()
    with lock:
        if nbytes(result) <= cache.maxsize:
            cache[key] = result
    return result


def compute(loaded: bertlab.LoadedModel, what: str, inputs: tuple, work: Callable[[], T], spinner: str | None = "Running BERT…") -> T:
    """A cached engine result, computed under a spinner with the page's error handling."""
    return guarded(lambda: cached(loaded, what, inputs, work), spinner=spinner)


def _encoding(loaded: bertlab.LoadedModel, text: str, pair: str, masked: tuple[int, ...]) -> Encoding:
    encoding = encode(loaded, text, pair or None)
    return with_masks(loaded, encoding, masked) if masked else encoding


def analysis(loaded: bertlab.LoadedModel | None = None, masked: tuple[int, ...] = (), top_k: int = 5) -> Analysis:
    """The analysis of the sidebar's text (one forward pass, cached by model and inputs), for `loaded`
    (default: the sidebar's model)."""
    loaded = loaded or model()
    state = st.session_state
    text, pair, masked = state.get("text", ""), state.get("pair", ""), tuple(sorted(masked))
    return compute(
        loaded, "analysis", (text, pair, masked, top_k),
        lambda: analyze_encoding(loaded, _encoding(loaded, text, pair, masked), top_k=top_k).compact(),
    )


def encoding_key(encoding: Encoding) -> tuple:
    """What a result computed from an encoding depends on: its token ids and segments."""
    return tuple((t.id, t.segment) for t in encoding.tokens)


def senses(loaded: bertlab.LoadedModel, target: str, sentences: list[str]) -> bertlab.Senses:
    """A word across sentences (one batched pass), cached."""
    return compute(loaded, "senses", (target, tuple(sentences)), lambda: bertlab.senses(loaded, target, sentences),
                   spinner="Running BERT on every sentence…")


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
    lock = st.session_state.setdefault("_heavy_work", threading.Lock())
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


def header(title: str, explanation: str, look_for: str) -> None:
    st.title(title)
    st.markdown(explanation)
    st.info(f"**What to look at:** {look_for}", icon="👀")


def notes(result: Analysis) -> None:
    """The analysis' notes, and its download as JSON (the same object `python -m bertlab analyze --json` prints)."""
    for note in result.notes:
        if note != result.model.notice:
            st.caption(f"ℹ️ {note}")
    st.download_button(
        "Download this analysis (JSON)",
        data=lambda: json.dumps(result.to_dict(), indent=1),
        file_name="bertlab-analysis.json",
        mime="application/json",
        on_click="ignore",
        key="analysis_json",
        icon=":material/download:",
    )


def presenting() -> bool:
    return str(st.session_state.get("present", st.query_params.get("present", ""))).lower() in ("1", "true")


PRESENTER_CSS = """<style>
html, body, [data-testid=stAppViewContainer] { font-size: 22px; color: #000; background: #fff; }
[data-testid=stMarkdownContainer] p, [data-testid=stMarkdownContainer] li { font-size: 1.25rem; line-height: 1.5; color: #000; }
h1 { font-size: 3.2rem !important; } h2, h3 { font-size: 2.2rem !important; }
[data-testid=stAlert] p { font-size: 1.2rem; }
.chips { font-size: 1.6rem !important; }
[data-testid=stProgress] p { font-size: 1.8rem !important; font-weight: 600; }
[data-testid=stMainBlockContainer] { max-width: 100%; padding-left: 2rem; padding-right: 2rem; padding-top: 4.5rem; }
</style>"""


def image(png: bytes, key: str) -> None:
    """A server-rendered PNG with its download (sent only on click; shown as PNG, not re-encoded as JPEG)."""
    st.image(png, width="content", output_format="PNG")
    st.download_button("PNG", lambda: png, file_name=f"bertlab-{key}.png", mime="image/png", type="tertiary",
                       icon=":material/download:", on_click="ignore", key=f"{key}_png")


TITLE_CHARS = 48
"""A chart title longer than this wraps (plotly's SVG titles never wrap, and a phone shows ~50 characters)."""

TOUCH_CSS = """<style>
/* On a touch screen plotly's toolbar sits over the chart title and hover-only buttons mean little: hide it
   there (the PNG/SVG buttons stay on desktop; the HTML download under each chart works everywhere). */
@media (hover: none) and (pointer: coarse) { .js-plotly-plot .modebar-container { display: none !important; } }
/* Pills and segmented controls scroll sideways, unmarked, when they do not fit (the Attention page's View on a
   phone hid Statistics and Rollout): wrap them onto a second line instead. */
[data-testid=stButtonGroup] > div:has(> button) { flex-wrap: wrap !important; overflow-x: visible !important; row-gap: 0.4rem; }
/* A token axis with many labels (chart(), DENSE_LABELS) keeps one label in three on a phone-sized screen: the
   server cannot know the width, and plotly never thins labels given as an array. */
@media (max-width: 640px) {
  [class*="st-key-dense_"] .xaxislayer-above > g:not(:nth-child(3n+1)) { display: none; }
}
</style>"""


def _fit_title(fig) -> None:
    """Wrap a long title at word boundaries and let it push the top margin instead of overlapping the plot."""
    text = fig.layout.title.text
    if text and "<br>" not in text and len(text) > TITLE_CHARS:
        fig.update_layout(title_text="<br>".join(textwrap.wrap(text, TITLE_CHARS, break_long_words=False)))
    if text:
        fig.update_layout(title_automargin=True, title_yref="paper")


PRESENTER_LABELS = 20
"""In presenter mode an axis keeps at most this many labels (their font is 18 px instead of 12)."""
DENSE_LABELS = 16
"""A chart with more token labels than this on an x axis is marked dense: a phone shows a third of them."""


def _dense(fig) -> bool:
    return any(len(axis.tickvals or ()) > DENSE_LABELS for axis in fig.select_xaxes())


def chart(fig, key: str) -> None:
    """A plotly chart with PNG and SVG downloads (plotly's own toolbar, no server round trip) and HTML on demand."""
    if _dense(fig):
        with st.container(key=f"dense_{key}"):
            _chart(fig, key)
    else:
        _chart(fig, key)


def _chart(fig, key: str) -> None:
    _fit_title(fig)
    if presenting():
        fig.update_layout(font=dict(size=20, color="#000"), title_font_size=26)
        fig.update_annotations(font_size=22)  # subplot titles are annotations, with their own (small) font
        fig.update_xaxes(tickfont_size=18)
        fig.update_yaxes(tickfont_size=18)
        for axis in (*fig.select_xaxes(), *fig.select_yaxes()):  # 18-px labels need twice the room: half as many
            if axis.tickvals is not None and axis.ticktext is not None and len(axis.tickvals) > PRESENTER_LABELS:
                step = -(-len(axis.tickvals) // PRESENTER_LABELS)
                axis.update(tickvals=axis.tickvals[::step], ticktext=axis.ticktext[::step])
    st.plotly_chart(
        fig,
        key=key,
        config={"toImageButtonOptions": {"format": "png", "filename": f"bertlab-{key}", "scale": 2}, "displaylogo": False},
    )
    st.html(modebar.SVG_BUTTON_SCRIPT, unsafe_allow_javascript=True)  # an SVG button beside the camera (PNG)
    st.download_button(
        "HTML", data=lambda: fig.to_html(include_plotlyjs=True, full_html=True), file_name=f"bertlab-{key}.html",
        mime="text/html", on_click="ignore", key=f"{key}_html", type="tertiary", icon=":material/download:",
        help="This chart as a standalone, offline HTML file (PNG and SVG: the camera and SVG icons on the chart).",
    )


def layer_head(result: Analysis, prefix: str = "") -> tuple[int, int]:
    """Layer and head sliders bound to the URL."""
    c1, c2 = st.columns(2)
    layers, heads = result.model.layers, result.model.heads
    for key, top in ((f"{prefix}layer", layers - 1), (f"{prefix}head", heads - 1)):
        if key in st.session_state and st.session_state[key] > top:
            st.session_state[key] = top
    layer = c1.slider("Layer", 0, layers - 1, key=f"{prefix}layer", bind="query-params")
    head = c2.slider("Head", 0, heads - 1, key=f"{prefix}head", bind="query-params")
    return layer, head


def top_share(tokens, weights: np.ndarray) -> str:
    """How much of one attention row its largest weights take, measured (a 'What to notice' must hold for the
    model on screen: random weights spread a row evenly)."""
    order = np.argsort(weights)[::-1]
    top = order[: min(3, len(order))]
    return (f"Here the top key, “{tokens[int(order[0])].text}”, takes {weights[order[0]]:.0%} of the row and the "
            f"{len(top)} largest {weights[top].sum():.0%}.")


def token_labels(tokens) -> list[str]:
    """Token texts made unique (a repeated piece gets its position), because a URL-bound widget stores
    the label, and duplicate labels would point to the last occurrence."""
    counts: dict[str, int] = {}
    for t in tokens:
        counts[t.text] = counts.get(t.text, 0) + 1
    return [t.text if counts[t.text] == 1 else f"{t.text} ({t.position})" for t in tokens]


def token_picker(label: str, tokens, key: str, default: int = 1, help: str | None = None,
                 window: slice | None = None) -> int:
    """Tap a token (pills wrap on a phone); bound to the URL by the token's label. With a window, its tokens are
    offered (512 pills would fill a phone's screen many times over), and the one already chosen stays offered:
    moving the window zooms the charts, it does not change the choice."""
    labels = token_labels(tokens)
    current = st.session_state.get(key)
    if not isinstance(current, int) or not 0 <= current < len(tokens):
        st.session_state.pop(key, None)
        current = None
    offered = sorted(set(range(len(tokens))[window or slice(None)]) | ({current} if current is not None else set()))
    chosen = st.pills(label, offered, key=key, default=default if default in offered else offered[0],
                      format_func=labels.__getitem__, bind="query-params", help=help)
    return offered[0] if chosen is None else int(chosen)


WINDOW_TOKENS = 40
"""Past this many tokens, pages draw a window of positions: 512 token labels on one axis cannot be read (nor
tapped), and a 512 × 512 heatmap is 262,144 cells to send to a phone."""
WINDOW_SIZES = (40, 80, 128)
"""How many positions a window may show: 128 at most (16,384 cells per heatmap); the All heads view and the
thumbnails show every position at once."""


def _shift_window(key: str, by: int, top: int) -> None:
    st.session_state[key] = min(max(0, int(st.session_state.get(key) or 0) + by), top)


def token_window(tokens, prefix: str = "") -> slice | None:
    """Which positions the charts draw when the text is longer than WINDOW_TOKENS (None: every token): how many
    (40, 80 or 128) and from which position, with ◀ ▶ to step by a window (a slider over 512 positions is
    0.7 px per position on a phone). Both are in the URL (?positions_from=100&positions_shown=40). Every
    position was computed; only the drawing zooms."""
    n = len(tokens)
    if n <= WINDOW_TOKENS:
        return None
    k_from, k_shown = f"{prefix}positions_from", f"{prefix}positions_shown"
    sizes = [size for size in WINDOW_SIZES if size < n]
    if st.session_state.get(k_shown) not in (None, *sizes):
        del st.session_state[k_shown]  # a size left over from a longer text
    with st.container(horizontal=True, vertical_alignment="bottom"):
        shown = st.segmented_control("Tokens shown", sizes, key=k_shown, default=sizes[0], bind="query-params",
                                     help=f"The text has {n} tokens; a chart labels {WINDOW_TOKENS} of them readably. "
                                          "All heads (Attention page) shows every position at once.") or sizes[0]
        top = n - shown
        if isinstance(st.session_state.get(k_from), int) and st.session_state[k_from] > top:
            st.session_state[k_from] = top  # a start left over from a longer text or a wider window
        st.button("◀", key=f"{k_from}_back", help=f"The {shown} positions before", on_click=_shift_window, args=(k_from, -shown, top))
        st.button("▶", key=f"{k_from}_next", help=f"The {shown} positions after", on_click=_shift_window, args=(k_from, shown, top))
    start = st.slider("From position", 0, top, key=k_from, bind="query-params")
    st.caption(f"The charts below show positions {start}–{start + shown - 1} of {n} tokens.")
    return slice(start, start + shown)


def corpus_index(loaded: bertlab.LoadedModel, corpus: Corpus) -> CorpusIndex:
    """The corpus index for this model, built once per process (in the one result cache, keyed by the
    corpus file's hash) with a progress bar."""

    def build() -> CorpusIndex:
        bar = st.progress(0.0, text=f"Indexing {len(corpus):,} sentences of {corpus.name} with {loaded.info.name}…")

        def step(done: int, total: int) -> None:
            bar.progress(done / max(total, 1), text=f"Indexing {corpus.name} with {loaded.info.name}: {done:,} of {total:,} sentences")

        try:
            return build_index(loaded, corpus, progress=step)
        finally:
            bar.empty()

    return compute(loaded, "corpus_index", (corpus.digest,), build, spinner="Running BERT over the corpus…")
