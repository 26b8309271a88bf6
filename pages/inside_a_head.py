import numpy as np
import streamlit as st

import lab_ui
from bertlab import explain, figures, inside, masks

loaded = lab_ui.model()
info = loaded.info
lab_ui.header(
    "Inside a head",
    "How one attention weight comes out of the model. The layer's input vector of every token goes through "
    "that layer's own **query**, **key** and **value** projections"
    + (" (after the layer's LayerNorm: the family is pre-norm)" if info.norm_placement == "pre" else "")
    + "; the head's slice of each is a short vector (d_head numbers). For the token you pick, each key gets a score. "
    + explain.scores(info)
    + " Then the **mask** is added (a blocked key gets −∞), and the **softmax** turns the row into weights that sum to 1. "
    "The head's output for that token is the weights times the values.",
    "a key whose q⊙k row is mostly red gets a high score, and the softmax turns the largest scaled scores into the "
    "largest weights (how much of the row the top keys take is measured under step 2: in trained heads it is often "
    "most of it). Switch the mask to causal: keys to the right are blocked and their weight is exactly 0.",
)
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
if steps.terms:
    st.subheader("1b · Three terms make each score")
    lab_ui.chart(figures.score_terms(tokens, steps, window), key="head_terms")
    share = {name: float(np.abs(values * steps.scale).sum()) for name, values in steps.terms.items()}
    total = sum(share.values()) or 1.0
    st.caption("Of this row's scores, in absolute size: " + ", ".join(f"{name} {value / total:.0%}" for name, value in share.items())
               + f". Recomputed with the layer's own projections and relative-position embeddings, summed and scaled by "
                 f"1/√(3·d_head) = {steps.scale:.3f}, they give the model's own weights (the check under step 2).")
if steps.q_rotated is not None:
    st.subheader("1b · Rotating q and k by their positions")
    lab_ui.chart(figures.rotation_chart(tokens, steps, window), key="head_rotation")
    moved = np.abs(steps.scaled - (steps.k @ steps.q) * steps.scale)
    st.caption(f"The rotation leaves each vector's length as it was (‖q‖ {np.linalg.norm(steps.q):.2f} before, "
               f"{np.linalg.norm(steps.q_rotated):.2f} after) and turns it by an angle that grows with its position, so "
               f"q·k now depends on how far apart the two tokens are: here it moved each score by up to {moved.max():.2f}. "
               "No position vector was added to the embedding: this is where positions enter.")
st.subheader("2 · From scores to weights")
lab_ui.chart(figures.head_steps_chart(tokens, steps, window), key="head_steps")
blocked = int(steps.blocked.sum())
st.caption(
    f"The weights computed here equal the model's own attention weights for this row "
    f"(largest difference {abs(steps.weights - result.runs[kind].attention(layer, head, query)).max():.1e}; the page keeps those in float16). "
    + (f"{blocked} key(s) are blocked by the {kind} mask"
       + (f" and this layer's local window (±{steps.window})" if steps.window is not None else "")
       + ": weight exactly 0. " if blocked else "No key is blocked. ")
    + lab_ui.top_share(tokens, steps.weights)
)
st.subheader("3 · The value mixture")
left, right = st.columns(2)
with left:
    lab_ui.chart(figures.value_mixture(tokens, steps, window), key="head_mixture")
with right:
    lab_ui.chart(figures.query_key_projection(steps, window), key="head_projection")
lab_ui.notes(result)
