import streamlit as st

import lab_ui
from bertlab import figures

lab_ui.header(
    "Bidirectional vs causal",
    "The same weights, two masks. BERT is trained **bidirectionally**: every token attends to its left and "
    "its right. A GPT-style **causal** mask lets each token see only itself and what came before. Here both "
    "masks run in one batch through the same BERT, so every difference you see comes from the mask alone.",
    "under the causal mask everything above the diagonal is exactly zero; a token's hidden state then cannot "
    "depend on later words. Try “I went to the bank to deposit money.” and change the last words: the causal "
    "states for “bank” do not move, the bidirectional ones do.",
)
result = lab_ui.analysis()
tokens = result.tokens
layer, head = lab_ui.layer_head(result)
window = lab_ui.token_window(tokens)

left, right = st.columns(2)
top = figures.shared_zmax([result.runs[k].attention(layer, head) for k in ("bidirectional", "causal")], window)  # one scale
for col, kind in ((left, "bidirectional"), (right, "causal")):
    run = result.runs[kind]
    with col:
        st.markdown(f"#### {kind}")
        lab_ui.chart(figures.mask_matrix(tokens, run.allowed, kind, window), key=f"mask_{kind}")
        lab_ui.chart(
            figures.attention_heatmap(tokens, run.attention(layer, head), title=f"layer {layer}, head {head}", window=window, zmax=top),
            key=f"attn_{kind}",
        )

lab_ui.chart(figures.divergence_heatmap(tokens, result.divergence(), window), key="divergence")

st.subheader("[MASK] predictions under each mask")
if "mlm" not in result.model.heads_available:
    st.info(f"{result.model.name} has no masked-LM head, so there are no predictions to compare.")
elif not result.mask_positions:
    st.info("Type [MASK] in the text to compare the guesses: the causal model sees only the words before the blank.")
else:
    for position in result.mask_positions:
        lab_ui.chart(
            figures.prediction_bars(result.predictions(position), f"[MASK] at position {position}"),
            key=f"mlm_{position}",
        )
lab_ui.notes(result)
