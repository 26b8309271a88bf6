import numpy as np
import pandas as pd
import streamlit as st

import lab_ui
from bertlab import figures, inside, masks

lab_ui.header(
    "Layers and the residual stream",
    "Each BERT layer is **post-norm**: the attention sublayer's output A is added to the layer's input x and "
    "normalized, h = LayerNorm(A + x); then the feed-forward block's output F is added to h and normalized "
    "again, out = LayerNorm(F + h). The feed-forward block widens each token to its intermediate size "
    f"(3,072 in BERT-base{lab_ui.in_this_model('intermediate_size')}) and applies GELU: those are its **neurons**.",
    "how large A and F are next to the stream they join (a share near 0 leaves the token almost as it was), "
    "and which feed-forward neurons fire for which tokens.",
)
loaded = lab_ui.model()
result = lab_ui.analysis(loaded)
tokens = result.tokens
kind = st.segmented_control("Mask", list(masks.MASK_TYPES), key="mask", default="bidirectional", bind="query-params") or "bidirectional"
steps = lab_ui.compute(loaded, "layers", (lab_ui.encoding_key(result.encoding), kind),
                       lambda: inside.layer_steps(loaded, result.encoding, kind), spinner="Running BERT with hooks on every sublayer…")
st.caption(
    "Checked against the model: LayerNorm(F + h) of the last layer equals the model's own output "
    f"(largest difference {float(np.abs(steps.output[-1] - result.runs[kind].hidden_states[-1]).max()):.1e})."
)
lab_ui.chart(figures.sublayer_shares(tokens, steps.shares()), key="layer_shares")
token = lab_ui.token_picker("Token (tap one)", tokens, key="token")
lab_ui.chart(figures.sublayer_norms(steps.norms(), token, tokens[token].text), key="layer_norms")

st.subheader("Feed-forward neurons")
layer = st.slider("Layer", 0, result.model.layers - 1, key="layer", bind="query-params")
ids, values = steps.top_neurons(layer)
st.dataframe(
    pd.DataFrame({"token": [t.text for t in tokens],
                  **{f"#{r + 1}": [f"{i} ({v:.2f})" for i, v in zip(ids[:, r], values[:, r])] for r in range(ids.shape[1])}}),
    hide_index=True, width="stretch", height=min(400, 40 + 35 * len(tokens)),
)
top = int(ids[token, 0])
neuron = st.number_input("Neuron", 0, steps.activations.shape[-1] - 1, value=top, key="neuron",
                         help=f"Start: the neuron that fires most for “{tokens[token].text}” in this layer.")
lab_ui.chart(figures.neuron_bars(tokens, lab_ui.guarded(lambda: steps.neuron(layer, int(neuron))), layer, int(neuron)), key="neuron_bars")
lab_ui.notes(result)
