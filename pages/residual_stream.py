import numpy as np
import pandas as pd
import streamlit as st

import lab_ui
from bertlab import explain, figures, inside, masks

loaded = lab_ui.model()
info = loaded.info
lab_ui.header(
    "Layers and the residual stream",
    explain.layer(info) + " The feed-forward block widens each token to its intermediate size "
    f"(3,072 in BERT-base{lab_ui.in_this_model('intermediate_size')}) and applies "
    + ("a gated GELU (one half of the widened vector gates the other)" if info.family == "modernbert" else "GELU")
    + ": those are its **neurons**.",
    "how large A and F are next to the stream they join (a share near 0 leaves the token almost as it was), "
    "and which feed-forward neurons fire for which tokens.",
)
result = lab_ui.analysis(loaded)
tokens = result.tokens
kind = st.segmented_control("Mask", list(masks.MASK_TYPES), key="mask", default="bidirectional", bind="query-params") or "bidirectional"
steps = lab_ui.compute(loaded, "layers", (lab_ui.encoding_key(result.encoding), kind),
                       lambda: inside.layer_steps(loaded, result.encoding, kind), spinner="Running {model} with hooks on every sublayer…")
st.caption(
    f"Checked against the model: {explain.after_attention(info)} and {explain.after_ffn(info)}"
    + (", computed with each layer's own LayerNorm modules," if info.norm_placement == "post" else ",")
    + f" equal the model's own h and layer output (largest difference over all layers {steps.recomposition_error:.1e})."
    + (" The last layer's output then goes through the final LayerNorm before the head." if info.norm_placement == "pre" else "")
)
window = lab_ui.token_window(tokens)
lab_ui.chart(figures.sublayer_shares(tokens, steps.shares(), window), key="layer_shares")
token = lab_ui.token_picker("Token (tap one)", tokens, key="token", window=window)
lab_ui.chart(figures.sublayer_norms(steps.norms(), token, tokens[token].shown, info.norm_placement), key="layer_norms")

st.subheader("Feed-forward neurons")
layer = st.slider("Layer", 0, result.model.layers - 1, key="layer", bind="query-params")
ids, values = steps.top_neurons(layer)
shown = window or slice(None)
st.dataframe(
    pd.DataFrame({"position": [t.position for t in tokens[shown]], "token": [t.text for t in tokens[shown]],
                  **{f"#{r + 1}": [f"{i} ({v:.2f})" for i, v in zip(ids[shown, r], values[shown, r])] for r in range(ids.shape[1])}}),
    hide_index=True, width="stretch", height=min(400, 40 + 35 * len(tokens[shown])),
)
top = int(ids[token, 0])
if st.session_state.get("_neuron_for") != (layer, token):  # a new token or layer starts at its top neuron
    from_link = "_neuron_for" not in st.session_state and "neuron" in st.query_params
    st.session_state["_neuron_for"] = (layer, token)
    if not from_link:
        st.session_state["neuron"] = top
neuron = st.number_input("Neuron", 0, steps.activations.shape[-1] - 1, key="neuron", bind="query-params",
                         help=f"Starts at the neuron that fires most for “{tokens[token].text}” in this layer ({top}).")
lab_ui.chart(figures.neuron_bars(tokens, lab_ui.guarded(lambda: steps.neuron(layer, int(neuron))), layer, int(neuron), window), key="neuron_bars")
lab_ui.notes(result)
