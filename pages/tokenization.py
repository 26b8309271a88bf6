import pandas as pd
import streamlit as st

import lab_ui
from bertlab import figures

lab_ui.header(
    "Tokenization",
    f"BERT does not read words: its uncased WordPiece vocabulary has 30,522 pieces{lab_ui.in_this_model('vocab_size')}, and a word it does not "
    "know whole is split into pieces, the later ones marked `##` (\"play ##ing\"). The input is framed as "
    "`[CLS]` sentence A `[SEP]` (sentence B `[SEP]`); every token also carries a **segment** (A or B) and a "
    "**position** (0 to 511). A character the vocabulary cannot spell becomes `[UNK]`.",
    "where words split into `##` pieces, the `[CLS]`/`[SEP]` frame, segment colours A/B, and any `[UNK]`. "
    "Hover or tap a chip for its id and the characters it came from.",
)
encoding = lab_ui.encoding()
tokens = encoding.tokens

st.html(figures.token_chips(encoding))
st.caption("Blue: segment A · orange: segment B · grey: special tokens · dashed: `##` continuation · red: `[UNK]`")

c1, c2, c3, c4 = st.columns(4)
c1.metric("tokens", len(tokens))
c2.metric("words split into pieces", sum(1 for t in tokens if t.continuation))
c3.metric("[UNK]", sum(1 for t in tokens if t.unknown))
c4.metric("positions left", max(0, lab_ui.model().max_length - len(tokens)))
if encoding.truncated:
    st.warning(
        f"The input has {encoding.untruncated_length} tokens; BERT reads at most {lab_ui.model().max_length} "
        "positions, so the rest was cut off."
    )

table = pd.DataFrame([t.to_dict() for t in tokens]).rename(columns={"text": "piece"})
table["segment"] = table["segment"].map({0: "A", 1: "B"})
st.dataframe(table, hide_index=True, width="stretch")
