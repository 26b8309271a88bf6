import pandas as pd
import streamlit as st

import lab_ui
from bertlab import HEAD_STATS, attention_views, figures

lab_ui.header(
    "Attention",
    "Each of BERT's layers has several **heads** (12 in BERT-base, 16 in BERT-large). A head turns every "
    "token into a query, a key and a value; the softmax of query·key/√d gives each token a row of weights "
    "over all tokens (each row sums to 1), and the token's new vector mixes the values by those weights. "
    "BERT's mask is **bidirectional**: every token may look left and right.",
    "heads that attend to the previous or next token (a diagonal just off the middle), heads that park "
    "attention on `[CLS]` or `[SEP]`, and heads that link a word to a related word. The per-head grid finds them.",
)
result = lab_ui.analysis()
kind = st.segmented_control(
    "Mask", ["bidirectional", "causal"], key="mask", default="bidirectional", bind="query-params",
    help="Causal: the same weights, but each token may only attend to itself and the tokens on its left.",
) or "bidirectional"
run = result.runs[kind]
tokens = result.tokens

tab_head, tab_model, tab_heatmap, tab_stats, tab_rollout = st.tabs(
    ["Head view", "Model view", "Heatmap", "Head statistics", "Rollout"]
)
with tab_head:
    st.caption("bertviz head view: pick a layer; click a head's colour to toggle it; hover a token to focus its lines.")
    layer = st.session_state.get("layer", 0)
    html = lab_ui.guarded(lambda: attention_views.head_view(tokens, run.attentions, layer=min(layer, result.model.layers - 1)))
    st.iframe(html, height=min(2000, 120 + 23 * len(tokens)))
with tab_model:
    st.caption("bertviz model view: every layer (rows) and head (columns); click a thumbnail to enlarge it.")
    html = lab_ui.guarded(lambda: attention_views.model_view(tokens, run.attentions))
    st.iframe(html, height=110 + 165 * result.model.layers)
with tab_heatmap:
    layer, head = lab_ui.layer_head(result)
    st.plotly_chart(
        figures.attention_heatmap(tokens, run.attentions[layer, head], title=f"layer {layer}, head {head} ({kind})"),
        key="heatmap",
    )
    stats = {name: float(run.head_stats[name][layer, head]) for name in HEAD_STATS}
    cols = st.columns(len(stats))
    for col, (name, value) in zip(cols, stats.items()):
        col.metric(figures.STAT_NAMES[name], f"{value:.3f}")
with tab_stats:
    stat = st.selectbox("Statistic", HEAD_STATS, format_func=figures.STAT_NAMES.get, key="stat", bind="query-params")
    st.plotly_chart(figures.head_stat_grid(run, stat), key="stat_grid")
    frame = pd.DataFrame(
        [
            {"layer": l, "head": h, **{figures.STAT_NAMES[s]: round(float(run.head_stats[s][l, h]), 4) for s in HEAD_STATS}}
            for l in range(result.model.layers)
            for h in range(result.model.heads)
        ]
    )
    st.dataframe(frame, hide_index=True, width="stretch", height=300)
with tab_rollout:
    st.caption(
        "Attention rollout (Abnar & Zuidema, 2020): average the heads, add the residual connection as an "
        "identity, and multiply layer by layer, estimating how much each input token flows into each position."
    )
    upto = st.slider("Through layer", 0, result.model.layers - 1, result.model.layers - 1, key="rollout_layer")
    st.plotly_chart(figures.rollout_heatmap(tokens, run, upto), key="rollout")
lab_ui.notes(result)
