"""The live class on the Streamlit side: the store, the join link and its QR code, the teacher's controls,
the students' answer forms and the live panels both pages refresh (st.fragment with run_every).

Nothing about a class is kept in this process: every panel reads the store (bertlab.classroom) on each
refresh, and every action writes it before the page says it is done. The teacher's key travels only in the
teacher's link (?room=CODE&key=...), a student's id only in theirs (?room=CODE&me=...). Pages:
pages/live_class_teacher.py (/teach) and pages/live_class_student.py (/join).
"""

from __future__ import annotations

import gc
import html
import io
import logging
import os
import re
import urllib.parse

import segno
import streamlit as st

import lab_ui
from bertlab import DEFAULT_MODEL, BertlabError
from bertlab.analysis import Analysis, analyze
from bertlab.classroom import (
    MAX_ANSWER_CHARS, MAX_NICKNAME_CHARS, POLL_KINDS, ClassError, ClassStore, Poll, Room, StoreUnavailable, open_store, store_url,
)
from bertlab.classroom import figures as class_figures
from bertlab.classroom import lesson, polls
from bertlab.corpus import shipped_corpus
from lab_widgets import presenting

log = logging.getLogger("bertlab.app")


def _freeze_startup_heap() -> None:
    """Take the objects alive now out of Python's cyclic garbage collector, once per process.

    Streamlit runs gc.collect(2) after every script run (runner.postScriptGC), a fragment's included. With torch
    and transformers imported that walks ~420,000 objects, ~175 ms of CPU on this machine: a phone whose class
    panel refreshes every second would cost a core per six students. What is alive when a class page is first
    imported (modules, classes, the loaded models) lives as long as the process; gc.freeze() moves it to a
    permanent generation that later collections skip (reference counting still frees what is dropped), and a
    collection then takes well under a millisecond."""
    gc.collect()
    gc.freeze()


_freeze_startup_heap()

TEACH_PATH, JOIN_PATH = "teach", "join"
"""The two pages' url_paths (app.py)."""
try:
    REFRESH_S = max(0.25, float(os.environ.get("BERTLAB_CLASS_REFRESH_S", "1")))
except ValueError:
    REFRESH_S = 1.0
"""How often the live panels read the store (seconds): a teacher's step reaches phones within about this."""
FILL_DEFAULT = "The quick brown [MASK] jumps over the lazy dog."
SENSE_EXAMPLES = {
    "bank": "We had a picnic on the grassy bank by the water.",
    "bat": "The bat flew out of the cave at dusk.",
    "mouse": "Click the left button of the mouse twice.",
    "spring": "The flowers open early in spring.",
    "pitch": "The singer could not hold the pitch of the note.",
}
"""Which-sense sentences that are not in the corpus (a corpus sentence would find itself as its nearest context)."""
CLASS_CSS = """<style>
.class-code { font-size: clamp(2rem, 4.2vw, 4rem); font-weight: 800; letter-spacing: 0.12em; font-family: "DejaVu Sans Mono", monospace;
              line-height: 1.1; margin: 0.1rem 0; white-space: nowrap; }
.st-key-class_title h1 { font-size: 2.2rem !important; padding-top: 0; }
.st-key-class_live h3 { padding-top: 0; }
</style>"""
"""The live class pages' own elements: the code in large letters that fit a third of a projector, a compact title."""


# --- the store ------------------------------------------------------------------------------------


@st.cache_resource(show_spinner=False)
def _store(url: str) -> ClassStore:
    """One store object (a pool of connections) per URL and process; the class itself lives in the store."""
    return open_store(url)


def store() -> ClassStore | None:
    """The store the environment names, or None after saying plainly why it cannot be used."""
    try:
        return _store(store_url())
    except ClassError as err:
        st.error(f"The class store cannot be used: {err}", icon="🗄️")
        return None


def shown(err: Exception) -> None:
    """A class error as a message on the page (never a traceback)."""
    if isinstance(err, StoreUnavailable):
        st.error(str(err), icon="🗄️")
    elif isinstance(err, ClassError):
        st.warning(str(err), icon="✋")
    else:
        log.exception("unexpected error on the live class page")
        st.error(f"Something went wrong ({type(err).__name__}); the server log has the details.")


def title(text: str) -> None:
    """The page's title, compact (a projector's first screen is for the code and the room), and the pages' CSS.
    After the teacher opens a poll (at the bottom of the page), the page comes back to the top."""
    st.html(CLASS_CSS)
    with st.container(key="class_title"):
        st.title(text, anchor=False)
    if st.session_state.pop("_class_scroll", False):
        st.html("<script>/* %s */ (function () { var t = document.querySelector('.st-key-class_title');"
                " if (t) { t.scrollIntoView({block: 'start'}); } })();</script>" % html.escape(text),
                unsafe_allow_javascript=True)


def plain(text: object) -> str:
    """Text a student typed, for st.markdown: HTML escaped and every markdown sign backslashed, so it shows as typed."""
    escaped = html.escape(str(text), quote=False)
    return re.sub(r"([\\`*_{}\[\]()#+\-.!|~:$>])", r"\\\1", escaped)


# --- links and the QR code ------------------------------------------------------------------------


def base_url() -> str:
    """The app's address as the browser reached it (BERTLAB_PUBLIC_URL when set: behind a proxy, or a
    teacher on localhost whose students need the machine's network address)."""
    public = os.environ.get("BERTLAB_PUBLIC_URL", "").strip().rstrip("/")
    if public:
        return public
    url = (st.context.url or "http://localhost:8501").rstrip("/")
    for page in (TEACH_PATH, JOIN_PATH):
        if url.endswith("/" + page):
            return url[: -len(page) - 1]
    return url


def link(path: str, **params: str) -> str:
    return f"{base_url()}/{path}" + ("?" + urllib.parse.urlencode({k: v for k, v in params.items() if v}) if params else "")


def join_link(code: str, model: str | None = None) -> str:
    """The students' link: the room, and the class's model when it is not the app's default (their pages
    then name the model the class runs)."""
    return link(JOIN_PATH, room=code, model=model if model and model != DEFAULT_MODEL else "")


def qr_png(url: str) -> bytes:
    """The join link as a QR code (segno; medium error correction survives a dim projector), a PNG."""
    out = io.BytesIO()
    segno.make(url, error="m").save(out, kind="png", scale=10, border=2, dark="#000", light="#fff")
    return out.getvalue()


def join_panel(room: Room, url: str) -> None:
    """What the room reads off the projector: the address, the code in large letters and the QR code."""
    short = re.sub(r"^https?://", "", url.split("?", 1)[0])
    st.markdown(f"Join at **{plain(short)}** with the code")
    st.html(f'<div class="class-code" aria-label="class code {" ".join(room.code)}">{html.escape(room.code)}</div>')
    st.image(qr_png(url), width=220 if presenting() else 200, alt="QR code of the join link")
    st.caption("or scan the code with a phone's camera")


# --- the model side (teacher) ---------------------------------------------------------------------


def class_analysis(loaded, sentence: str) -> Analysis:
    """One analysis of a poll's sentence (cached with every other engine result), with the top-10 at a [MASK]."""
    return lab_ui.compute(loaded, "class_analysis", (sentence, polls.TOP_K),
                          lambda: analyze(loaded, sentence, top_k=polls.TOP_K).compact(), spinner="Running BERT…")


def step_check(loaded, step: int) -> tuple[str, dict]:
    """The check for a lesson step on the class's text (the sidebar's), cached."""
    text, pair = st.session_state.get("text", ""), st.session_state.get("pair", "")
    analysis = lab_ui.analysis(loaded)
    return lab_ui.compute(loaded, "class_check", (text, pair, step), lambda: lesson.check(loaded, analysis, step),
                          spinner="Running BERT…")


def _pick_query(label: str, analysis: Analysis, key: str, default: int) -> int:
    labels = [t.label for t in analysis.tokens]
    if st.session_state.get(key) not in labels:
        st.session_state.pop(key, None)
    chosen = st.pills(label, labels, key=key, default=labels[min(default, len(labels) - 1)],
                      format_func=lambda o: o.split(":", 1)[1])
    return polls.position_of(chosen or labels[min(default, len(labels) - 1)])


def ask_panel(store_: ClassStore, room: Room, key: str) -> None:
    """The teacher's questions: pick a kind, see what the model answers, open it on every phone."""
    loaded = lab_ui.model()
    kind = st.segmented_control("Kind of question", list(POLL_KINDS), format_func=POLL_KINDS.get, key="class_kind",
                                default="check") or "check"
    built: tuple[str, dict] | None = None
    try:
        if kind == "check":
            built = step_check(loaded, room.step)
            st.caption(f"Step {room.step + 1}, {lesson.STEPS[room.step]}: the check on the class's text (the sidebar's). "
                       "Students see its hints one at a time.")
        elif kind == "fill":
            if "mlm" not in loaded.info.heads_available:
                lab_ui.missing_head(loaded, "mlm")
                return
            text = st.session_state.get("text", "")
            sentence = st.text_input("Sentence with a [MASK]", value=text if "[MASK]" in text else FILL_DEFAULT, key="class_fill_text")
            built = polls.fill_poll(loaded, class_analysis(loaded, sentence))
        elif kind == "sense":
            corpus = shipped_corpus()
            words = corpus.vocabulary
            c1, c2 = st.columns([1, 3])
            word = c1.selectbox("Word", words, index=words.index("bank") if "bank" in words else 0, key="class_sense_word")
            selected = corpus.select(word)
            example = SENSE_EXAMPLES.get(word, selected.sentences[0])
            if st.session_state.get("_class_sense_for") != word:  # a new word brings its own example sentence
                st.session_state["class_sense_text"] = example
                st.session_state["_class_sense_for"] = word
            sentence = c2.text_input("Sentence", key="class_sense_text")
            layer = st.slider("Layer (0 = the embeddings)", 0, loaded.info.layers, loaded.info.layers, key="class_sense_layer")
            index = lab_ui.corpus_index(loaded, selected)
            built = polls.sense_poll(loaded, index, word, sentence, layer)
        else:
            sentence = st.text_input("Sentence", value=st.session_state.get("text", "") or FILL_DEFAULT, key=f"class_{kind}_text")
            analysis = class_analysis(loaded, sentence)
            if kind == "head":
                c1, c2 = st.columns(2)
                layer = c1.slider("Layer", 0, loaded.info.layers - 1, loaded.info.layers // 2, key="class_head_layer")
                head = c2.slider("Head", 0, loaded.info.heads - 1, 0, key="class_head_head")
                query = _pick_query("The token that looks", analysis, "class_head_query", (analysis.mask_positions or [1])[0])
                built = polls.head_poll(loaded, analysis, layer, head, query)
            else:
                mask = st.segmented_control("Mask", polls.MASK_KINDS, key="class_mask_kind", default="causal") or "causal"
                query = _pick_query("The token that looks", analysis, "class_mask_query", max(1, len(analysis.tokens) // 2))
                built = polls.mask_poll(analysis, mask, query)
    except ClassError as err:
        shown(err)
        return
    except BertlabError as err:
        st.warning(str(err), icon="✋")
        return
    prompt, spec = built
    st.markdown(f"**The question:** {plain(prompt)}")
    if spec.get("correct"):
        st.caption("The model's answer (hidden from students until you reveal): " + plain(", ".join(_readable(spec, c) for c in spec["correct"][:6])))
    if st.button("Open this poll on every phone", type="primary", icon=":material/campaign:", key="class_open"):
        try:
            store_.open_poll(room.code, key, kind, prompt, spec)
        except ClassError as err:
            shown(err)
            return
        st.session_state["_class_scroll"] = True
        st.rerun()


def _readable(spec: dict, answer: str) -> str:
    """'4:fox' -> 'fox (4)' for token answers; other answers as they are."""
    if "tokens" in spec and re.match(r"^\d+:", answer):
        position, text = answer.split(":", 1)
        return f"{text} ({position})"
    return answer


def reveal(store_: ClassStore, room: Room, key: str, poll: Poll) -> None:
    """Lock the poll and store what the model says about the room's answers (fill: each guess's rank)."""
    result = None
    if poll.kind == "fill":
        loaded = lab_ui.model(poll.spec.get("model"))
        analysis = class_analysis(loaded, poll.spec["sentence"])
        result = polls.rank_guesses(loaded, analysis, poll, store_.histogram(room.code, poll.id))
    store_.reveal_poll(room.code, key, poll.id, result)


# --- what both pages draw -------------------------------------------------------------------------


def chart(fig, key: str) -> None:
    """A chart for the projector or a phone: no toolbar, larger text in presenter mode."""
    if presenting():
        fig.update_layout(font=dict(size=20, color="#000"))
        fig.update_annotations(font_size=22)
    st.plotly_chart(fig, key=key, config={"displayModeBar": False, "displaylogo": False})


def poll_results(store_: ClassStore, room: Room, poll: Poll, key: str, reveal_now: bool, stacked: bool = False) -> None:
    """The room's answers (beside the model's once revealed; `stacked`: one above the other, for a narrow screen),
    with a line that says them in words."""
    histogram = store_.histogram(room.code, poll.id)
    revealed = poll.status != "open"
    chart(class_figures.chart(poll, histogram, revealed and reveal_now, stacked=stacked), key=key)
    st.caption(plain(class_figures.summary(poll, histogram)))


def step_header(step: int) -> None:
    name = lesson.STEPS[step]
    st.subheader(f"Step {step + 1} of {len(lesson.STEPS)} · {name}", anchor=False)



def lesson_link(room: Room, step: int, label: str | None = None) -> None:
    """The guided lesson at this step, with the class's model and text."""
    settings = {k: v for k, v in room.settings.items() if k in ("model", "text", "pair") and v}
    st.page_link("pages/guided_lesson.py", label=label or f"Open “{lesson.STEPS[step]}” in the guided lesson", icon="🎓",
                 query_params={"step": lesson.STEPS[step], **settings}, help="The guided lesson at this step, on the class's model and text")


# --- students -------------------------------------------------------------------------------------


def student_identity() -> tuple[str | None, str | None]:
    """The room and the student's id: from the link, else from this session (a student who went to another
    page and came back through the menu); written back into the link, which survives a reload or a restart."""
    code = st.query_params.get("room") or st.session_state.get("_class_room")
    me = st.query_params.get("me")
    if not me and code and code == st.session_state.get("_class_room"):
        me = st.session_state.get("_class_me")
    if code and st.query_params.get("room") != code:
        st.query_params["room"] = code
    if me and st.query_params.get("me") != me:
        st.query_params["me"] = me
    return code, me


def join_form(store_: ClassStore, code: str | None) -> None:
    """Join by code (or a link with the code in it), with an optional nickname."""
    with st.form("class_join", border=True):
        typed = st.text_input("Class code", value=code or "", max_chars=8, placeholder="e.g. KQWMRT", key="class_join_code",
                              disabled=bool(code))
        nickname = st.text_input("Nickname (optional)", max_chars=MAX_NICKNAME_CHARS, key="class_join_nickname",
                                 help="Shown to the teacher next to your answers. Leave it empty to stay anonymous.")
        joined = st.form_submit_button("Join", type="primary", use_container_width=True)
    st.caption("No account and no personal data: the class keeps a nickname if you give one, and your answers, "
               "until the class expires.")
    if joined:
        try:
            student = store_.join(code or typed, nickname)
        except ClassError as err:
            shown(err)
            return
        room_code = store_.room(code or typed).code
        st.session_state["_class_room"], st.session_state["_class_me"] = room_code, student.id
        st.query_params["room"], st.query_params["me"] = room_code, student.id
        st.rerun()


def explore(on: bool) -> None:
    """Leave the teacher's step to explore, or rejoin. A flag of the session, not a widget's value: a widget set from
    code can be set back by a refresh that left the phone before the change arrived."""
    st.session_state["_class_exploring"] = on
    st.session_state.pop("class_own_step", None)


def answer_form(store_: ClassStore, room: Room, me: str, poll: Poll) -> None:
    """The poll on a phone: a field, choices or tokens to tap, and Send; the saved answer below."""
    spec = poll.spec
    kind = spec.get("answer_kind")
    mine = store_.answer_of(room.code, poll.id, me)
    with st.form(f"class_answer_{poll.id}", border=False, enter_to_submit=True):
        if poll.options is None:
            label = "Your guess for the blank" if poll.kind == "fill" else "Your answer"
            value = st.text_input(label, max_chars=MAX_ANSWER_CHARS, key=f"class_answer_text_{poll.id}",
                                  placeholder="one word" if poll.kind == "fill" else "")
        elif poll.kind in ("head", "mask") or kind == "token":
            tokens = spec.get("tokens", [])
            query = spec.get("query")
            value = st.pills("Tap a token", poll.options, key=f"class_answer_token_{poll.id}",
                             format_func=lambda o: ("➜ " if polls.position_of(o) == query else "") + tokens[polls.position_of(o)])
        else:
            value = st.radio("Your answer", poll.options, index=None, key=f"class_answer_choice_{poll.id}")
        sent = st.form_submit_button("Check" if poll.kind == "check" else "Send", type="primary", use_container_width=True)
    if sent:
        if value is None or str(value).strip() == "":
            st.warning("Choose or type an answer first.", icon="✋")
        else:
            try:
                mine = store_.answer(room.code, me, poll.id, str(value))
            except ClassError as err:
                shown(err)
    if mine is not None:
        st.success(f"Saved: **{plain(_readable(spec, mine.answer))}**. You can change it until the teacher reveals.", icon="✅")
        if poll.kind == "check":
            check_feedback(poll, mine.answer)


def check_feedback(poll: Poll, answer: str) -> None:
    """Right or not yet, and the step's hints one at a time."""
    right = polls.grade(poll, answer)
    if right:
        st.markdown("🎉 **Right.**")
        return
    hints = poll.spec.get("hints", [])
    shown_key = f"class_hints_{poll.id}"
    count = st.session_state.get(shown_key, 0)
    st.markdown("**Not yet.**" + (" A hint may help:" if hints else ""))
    for hint in hints[:count]:
        st.info(hint, icon="💡")
    if count < len(hints):
        st.button(f"Show a hint ({count + 1} of {len(hints)})", key=f"class_hint_{poll.id}_{count}", icon=":material/lightbulb:",
                  on_click=_one_more_hint, args=(shown_key,))


def _one_more_hint(shown_key: str) -> None:
    st.session_state[shown_key] = st.session_state.get(shown_key, 0) + 1


def revealed_for_student(store_: ClassStore, room: Room, me: str, poll: Poll) -> None:
    """After reveal: the student's answer, the model's, and the room beside the model."""
    mine = store_.answer_of(room.code, poll.id, me)
    right = None if mine is None else polls.grade(poll, mine.answer)
    correct = ", ".join(_readable(poll.spec, c) for c in (poll.spec.get("correct") or [])[:4])
    yours = "You did not answer." if mine is None else f"Your answer: **{plain(_readable(poll.spec, mine.answer))}**"
    if poll.kind == "fill" and mine is not None:
        rank = ((poll.result or {}).get("ranks") or {}).get(mine.answer.casefold())
        if rank and "rank" in rank:
            yours += f", #{rank['rank']:,} of {poll.spec.get('vocab_size', 0):,} tokens for the model ({rank['prob']:.1%})"
    model_says = {"fill": "The model's top guess", "sense": "The nearest corpus contexts vote",
                  "head": "The head looks most at", "mask": "Blocked", "check": "The answer"}[poll.kind]
    line = f"{yours}. {model_says}: **{plain(correct)}**." if correct else f"{yours}."
    (st.success if right else st.info)(line, icon="🎉" if right else "📣")
    # words, not a chart: the projector has the chart, and a phone redraws this panel every REFRESH_S seconds
    st.caption(plain(class_figures.summary(poll, store_.histogram(room.code, poll.id))))
