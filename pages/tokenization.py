import pandas as pd
import streamlit as st

import lab_ui
from bertlab import explain, figures

loaded = lab_ui.model()
info, tok = loaded.info, loaded.tokenizer
lab_ui.header(
    "Tokenization",
    explain.tokenization(info, tok.cls_token, tok.sep_token)
    + (f" A character the vocabulary cannot spell becomes `{tok.unk_token}`." if info.pieces == "##" else
       " Byte-level and SentencePiece vocabularies can spell any text, piece by piece."),
    {"##": "where words split into `##` pieces", "Ġ": "which pieces start a word (`Ġ`) and which continue one",
     "▁": "which pieces start a word (`▁`) and which continue one"}[info.pieces]
    + (", the special tokens around the text, segment colours A/B" if info.has_segments else ", the special tokens around the text")
    + ". Hover or tap a chip for its id and the characters it came from.",
)
encoding = lab_ui.encoding()
tokens = encoding.tokens

st.html(figures.token_chips(encoding))
st.caption(explain.continuation_legend(info))

c1, c2, c3, c4 = st.columns(4)
c1.metric("tokens", len(tokens))
c2.metric("words split into pieces", sum(1 for t in tokens if t.continuation))
c3.metric("unknown", sum(1 for t in tokens if t.unknown), help=f"pieces read as {tok.unk_token}")
c4.metric("positions left", max(0, loaded.max_length - len(tokens)))
if encoding.truncated:
    st.warning(
        f"The input has {encoding.untruncated_length} tokens; {info.title} reads at most {loaded.max_length} "
        "positions, so the rest was cut off."
    )

table = pd.DataFrame([t.to_dict() for t in tokens]).rename(columns={"text": "piece"})
if info.pieces != "Ġ":
    table = table.drop(columns=["display"])
else:
    table = table.rename(columns={"display": "as read"})
table["segment"] = table["segment"].map({0: "A", 1: "B"})
st.dataframe(table, hide_index=True, width="stretch")
