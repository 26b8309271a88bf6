import html

import streamlit as st

import lab_ui
from bertlab import figures

lab_ui.header(
    "Next sentence prediction",
    "BERT's second pre-training task: given `[CLS]` A `[SEP]` B `[SEP]`, was B the sentence that really "
    "followed A (IsNext), or a random one (NotNext)? Half the training pairs were each. The **NSP head** "
    "reads the pooled `[CLS]` vector (a dense layer with tanh, then two logits). Segment embeddings tell "
    "the model which tokens belong to A and which to B.",
    "a sensible continuation (“I have a pen” → “the pen is red”) should score high, an unrelated one low. "
    "Put the second sentence in the sidebar.",
)
result = lab_ui.analysis()
pieces = " ".join(
    f"<span style='color:{figures.SEGMENT_COLOURS[t.segment]};font-weight:{700 if t.special else 400}'>{html.escape(t.text)}</span>"
    for t in result.tokens
)
st.html(f"<div style='font-family:monospace;font-size:1.05rem;line-height:2'>{pieces}</div>")
st.caption("Segment A in blue, segment B in orange; segment ids: " + "".join(str(t.segment) for t in result.tokens))
if not result.encoding.pair:
    st.info("Add a second sentence (segment B) in the sidebar to ask whether it follows the first.")
if result.nsp is None:
    st.warning(
        f"**{result.model.name}** has no next-sentence-prediction head, so there is no IsNext probability. "
        "BERT pre-training checkpoints such as `bert-base-uncased` have one; DistilBERT and the packaged MiniLM do not.",
        icon="⏭️",
    )
else:
    st.metric("P(IsNext)", f"{result.nsp:.3f}")
    lab_ui.chart(figures.nsp_gauge(result.nsp), key="nsp")
lab_ui.notes(result)
