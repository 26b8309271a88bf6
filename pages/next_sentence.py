import html

import streamlit as st

import lab_ui
from bertlab import figures, nsp

lab_ui.header(
    "Next sentence prediction",
    "BERT's second pre-training task: given `[CLS]` A `[SEP]` B `[SEP]`, was B the sentence that really "
    "followed A (IsNext), or a random one (NotNext)? Half the training pairs were each. The **NSP head** "
    "reads the pooled `[CLS]` vector (a dense layer with tanh, then two logits). Segment embeddings tell "
    "the model which tokens belong to A and which to B.",
    "your second sentence beside a random one, as in training: with trained weights a sensible continuation "
    "(“I have a pen” → “the pen is red”) usually scores higher than a sentence from elsewhere. Put the second "
    "sentence in the sidebar.",
)
loaded = lab_ui.model_with_head("nsp")
result = lab_ui.analysis(loaded)
pieces = " ".join(
    f"<span style='color:{figures.SEGMENT_COLOURS[t.segment]};font-weight:{700 if t.special else 400}'>{html.escape(t.text)}</span>"
    for t in result.tokens
)
st.html(f"<div style='font-family:monospace;font-size:1.05rem;line-height:2'>{pieces}</div>")
st.caption("Segment A in blue, segment B in orange; segment ids: " + "".join(str(t.segment) for t in result.tokens))

first, second = st.session_state.get("text", ""), (st.session_state.get("pair") or "").strip()
c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
seed = c1.number_input("Random sentence number", 0, 9_999, key="random", bind="query-params",
                       help="Which sentence of bertlab's word-sense corpus stands in for 'a random sentence from elsewhere'; "
                            "the number is in the link, so the class sees the same one.")
c2.button("🎲 Another", key="another_random", width="stretch",
          on_click=lambda: st.session_state.update(random=(int(st.session_state.get("random") or 0) + 1) % 10_000))
other = nsp.random_sentence(avoid=[first, second], seed=int(seed))
candidates = [second, other] if second else [other]
scores = lab_ui.compute(loaded, "nsp", (first, tuple(candidates)), lambda: nsp.next_sentence(loaded, first, candidates))

left, right = st.columns(2)
columns = [(left, "Your second sentence"), (right, "A random sentence")] if second else [(right, "A random sentence")]
if not second:
    left.info("Add a second sentence (segment B) in the sidebar to score it beside the random one.")
for (column, title), sentence, probability, cut in zip(columns, scores.seconds, scores.is_next, scores.truncated):
    with column:
        st.markdown(f"#### {title}")
        st.markdown(f"> {html.escape(sentence)}")
        st.metric("P(IsNext)", f"{probability:.3f}")
        lab_ui.chart(figures.nsp_gauge(float(probability)), key=f"nsp_{title.split()[0].lower()}")
        if cut:
            st.caption("This pair is longer than the model's positions: its end was cut before scoring.")
st.caption(("Both pairs ran through " if second else "It ran through ") + f"{loaded.info.name}"
           + (" as one padded batch" if second else "") + "; the random sentence comes from bertlab's own corpus, "
           "standing in for NSP's 'a sentence from another document'.")
lab_ui.notes(result)
