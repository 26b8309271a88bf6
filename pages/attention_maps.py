import pandas as pd
import streamlit as st

import lab_ui
from bertlab import HEAD_STATS, attention_views, figures

lab_ui.header(
    "Attention",
    f"Each of BERT's layers has several **heads** (12 in BERT-base, 16 in BERT-large{lab_ui.in_this_model('heads')}). A head turns every "
    "token into a query, a key and a value; the softmax of query·key/√d gives each token a row of weights "
    "over all tokens (each row sums to 1), and the token's new vector mixes the values by those weights. "
    "BERT's mask is **bidirectional**: every token may look left and right.",
    "heads that attend to the previous or next token (a diagonal just off the middle), heads that park "
    "attention on `[CLS]` or `[SEP]`, and heads that link a word to a related word. The thumbnails and the "
    "per-head statistics find them; the heatmap and bertviz's views show one in detail.",
)
result = lab_ui.analysis()
tokens = result.tokens
VIEWS = ["Heatmap", "Head view", "Model view", "All heads", "Statistics", "Rollout"]
c1, c2 = st.columns([5, 2])
# Options are their own labels: a bound widget writes the label into the URL (?view=Head+view).
view = c1.pills(  # pills wrap on a phone; a segmented control clips its last options
    "View", VIEWS, key="view", default="Heatmap", bind="query-params",
    help="Head view and model view are bertviz's. Only the chosen view is computed and sent to the browser.",
) or "Heatmap"
kind = c2.segmented_control(
    "Mask", ["bidirectional", "causal"], key="mask", default="bidirectional", bind="query-params",
    help="Causal: the same weights, but each token may only attend to itself and the tokens on its left.",
) or "bidirectional"
run = result.runs[kind]


def bertviz(build) -> None:
    try:
        html = build()
    except attention_views.TooManyTokens as err:
        st.info(str(err), icon="📏")
        return
    except attention_views.OfflineAssetsMissing as err:
        st.warning(str(err))
        return
    st.iframe(html, height=120 + 23 * len(tokens) if view == "Head view" else 110 + 165 * result.model.layers)


if view == "Heatmap":
    layer, head = lab_ui.layer_head(result)
    window = lab_ui.token_window(tokens)
    lab_ui.chart(
        figures.attention_heatmap(tokens, run.attention(layer, head), title=f"layer {layer}, head {head} ({kind})", window=window),
        key="heatmap",
    )
    cols = st.columns(len(HEAD_STATS))
    for col, name in zip(cols, HEAD_STATS):
        col.metric(figures.STAT_SHORT[name], f"{float(run.head_stats[name][layer, head]):.3f}", help=figures.STAT_NAMES[name])
elif view == "Head view":
    layer = st.slider("Layer", 0, result.model.layers - 1, key="layer", bind="query-params")
    st.caption(f"bertviz head view of layer {layer} (the slider above picks it): click or tap a head's colour to toggle it; "
               "hover or tap a token to focus its lines.")
    bertviz(lambda: attention_views.head_view(tokens, run.attentions, layer=layer))
elif view == "Model view":
    st.caption("bertviz model view: every layer (rows) and head (columns); click or tap a thumbnail to enlarge it.")
    with st.container(key="phone_only_model_view"):  # shown below 640 px only (lab_widgets.TOUCH_CSS)
        st.caption(f"↔️ On a phone the view is wider than the screen: swipe sideways inside it to see all "
                   f"{result.model.heads} heads of each layer (the first four fit), or use All heads for every head at once.")
    bertviz(lambda: attention_views.model_view(tokens, run.attentions))
elif view == "All heads":
    st.caption(
        "Every head at once, rows = layers, columns = heads; each tile is that head's (query × key) attention, "
        "darker = more weight, scaled per tile. Pick one with the sliders in the heatmap view."
    )
    lab_ui.image(attention_views.thumbnails(run.attention_layers), key=f"all-heads-{kind}",
                 alt=f"Attention of all {result.model.layers * result.model.heads} heads ({kind}): rows layers 0 to "
                     f"{result.model.layers - 1}, columns heads 0 to {result.model.heads - 1}; darker is more weight")
elif view == "Statistics":
    stat = st.selectbox("Statistic", HEAD_STATS, format_func=figures.STAT_NAMES.get, key="stat", bind="query-params")
    lab_ui.chart(figures.head_stat_grid(run, stat), key="stat_grid")
    frame = pd.DataFrame(
        [
            {"layer": l, "head": h, **{figures.STAT_NAMES[s]: round(float(run.head_stats[s][l, h]), 4) for s in HEAD_STATS}}
            for l in range(result.model.layers)
            for h in range(result.model.heads)
        ]
    )
    st.dataframe(frame, hide_index=True, width="stretch", height=300)
else:
    st.caption(
        "Attention rollout (Abnar & Zuidema, 2020): average the heads, add the residual connection as an "
        "identity, and multiply layer by layer, estimating how much each input token flows into each position."
    )
    upto = st.slider("Through layer", 0, result.model.layers - 1, result.model.layers - 1, key="rollout_layer")
    lab_ui.chart(figures.rollout_heatmap(tokens, run, upto, window=lab_ui.token_window(tokens)), key="rollout")
lab_ui.notes(result)
