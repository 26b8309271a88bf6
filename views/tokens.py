import html

import pandas as pd
import streamlit as st

import lab_ui

lab_ui.header(
    "Tokenization",
    "BERT does not read words: its uncased WordPiece vocabulary has 30,522 pieces, and a word it does not "
    "know whole is split into pieces, the later ones marked `##` (\"play ##ing\"). The input is framed as "
    "`[CLS]` sentence A `[SEP]` (sentence B `[SEP]`); every token also carries a **segment** (A or B) and a "
    "**position** (0 to 511). A character the vocabulary cannot spell becomes `[UNK]`.",
    "where words split into `##` pieces, the `[CLS]`/`[SEP]` frame, segment colours A/B, and any `[UNK]`. "
    "Hover a chip for its id and the characters it came from.",
)
encoding = lab_ui.encoding()
tokens = encoding.tokens

chips = []
for t in tokens:
    source = encoding.text if t.segment == 0 else (encoding.pair or "")
    classes = ["chip", f"seg{t.segment}"]
    classes += ["special"] if t.special else []
    classes += ["cont"] if t.continuation else []
    classes += ["unk"] if t.unknown else []
    title = f"id {t.id} · position {t.position} · segment {'AB'[t.segment]}" + (
        f" · characters {t.start}–{t.end}: “{source[t.start:t.end]}”" if t.end > t.start else ""
    )
    chips.append(
        f'<span class="{" ".join(classes)}" title="{html.escape(title, quote=True)}">{html.escape(t.text)}'
        f"<sub>{t.id}</sub></span>"
    )
st.html(
    """<style>
    .chips{display:flex;flex-wrap:wrap;gap:6px 4px;align-items:baseline;line-height:1.9;font-family:ui-monospace,Menlo,monospace;font-size:1.05rem}
    .chip{border:2px solid;border-radius:8px;padding:2px 7px;margin:2px;white-space:nowrap}
    .chip sub{opacity:.55;font-size:.65em;margin-left:3px}
    .seg0{border-color:#2563eb;background:#dbeafe;color:#1e3a8a}
    .seg1{border-color:#ea580c;background:#ffedd5;color:#7c2d12}
    .special{background:#e5e7eb;border-color:#6b7280;color:#111827;font-weight:600}
    .cont{border-style:dashed}
    .unk{background:#fee2e2;border-color:#dc2626;color:#7f1d1d}
    </style><div class="chips" data-testid="token-chips">"""
    + "".join(chips)
    + "</div>"
)
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
