import streamlit as st

import lab_ui
from bertlab import figures, inside, masks

lab_ui.header(
    "Inside a head",
    "How one attention weight comes out of the model. The layer's input vector of every token goes through "
    "that layer's own **query**, **key** and **value** projections; the head's slice of each is a short vector "
    "(d_head numbers). For the token you pick, the **score** of each key is q·k, **scaled** by 1/√d_head, the "
    "**mask** is added (a blocked key gets −∞), and the **softmax** turns the row into weights that sum to 1. "
    "The head's output for that token is the weights times the values.",
    "a key whose q⊙k row is mostly red gets a high score, and the softmax turns the largest scaled scores into the "
    "largest weights (how much of the row the top keys take is measured under step 2: in trained heads it is often "
    "most of it). Switch the mask to causal: keys to the right are blocked and their weight is exactly 0.",
)
loaded = lab_ui.model()
result = lab_ui.analysis(loaded)
tokens = result.tokens
layer, head = lab_ui.layer_head(result)
window = lab_ui.token_window(tokens)
c1, c2 = st.columns([3, 1])
kind = c2.segmented_control("Mask", list(masks.MASK_TYPES), key="mask", default="bidirectional", bind="query-params") or "bidirectional"
with c1:
    query = lab_ui.token_picker("Query token (tap one)", tokens, key="query", window=window,
                                help="The token whose row of attention weights is computed step by step.")
steps = lab_ui.compute(loaded, "head", (lab_ui.encoding_key(result.encoding), layer, head, query, kind),
                       lambda: inside.head_steps(loaded, result, layer, head, query, kind), spinner=None)

st.subheader("1 · Query, keys and their product")
lab_ui.chart(figures.head_vectors(tokens, steps, window), key="head_vectors")
st.subheader("2 · From scores to weights")
lab_ui.chart(figures.head_steps_chart(tokens, steps, window), key="head_steps")
blocked = int(steps.blocked.sum())
st.caption(
    f"The weights computed here equal the model's own attention weights for this row "
    f"(largest difference {abs(steps.weights - result.runs[kind].attention(layer, head, query)).max():.1e}; the page keeps those in float16). "
    + (f"{blocked} key(s) are blocked by the {kind} mask: weight exactly 0. " if blocked else "No key is blocked. ")
    + lab_ui.top_share(tokens, steps.weights)
)
st.subheader("3 · The value mixture")
left, right = st.columns(2)
with left:
    lab_ui.chart(figures.value_mixture(tokens, steps, window), key="head_mixture")
with right:
    lab_ui.chart(figures.query_key_projection(steps, window), key="head_projection")
lab_ui.notes(result)
