import json

import streamlit as st

import lab_ui
from bertlab import influence_figures
from bertlab.influence import LAYERED, METHODS, NAMES, influence

lab_ui.header(
    "Does attention explain?",
    "Pick one position P (a `[MASK]`, or any token). Six measures say how much each input token influences it, "
    "side by side and each scaled to sum 1: **attention** (the last layer's row of P, mean of the heads), "
    "**rollout** (attention multiplied through every layer), **norm-based** (Kobayashi et al. 2020: the size of "
    "what each token's value vector really adds to P), **value zeroing** (Mohebbi et al. 2023: remove a token's "
    "values in a layer and see how far P's output moves), **occlusion** (replace the token and see how far the "
    "prediction falls) and **integrated gradients** (Captum). Since 2019 papers have argued whether attention "
    "explains; here you can measure it on your own sentence.",
    "whether the tall bars line up across the strips. The matrix gives Spearman's rank correlation of every pair; "
    "the layer slider compares attention with the norm-based and value-zeroing measures layer by layer (attention "
    "to [CLS] and [SEP] is often large while what those tokens add is small).",
)
loaded = lab_ui.model()
encoding = lab_ui.encoding(loaded)
tokens = encoding.tokens
info = loaded.info
window = lab_ui.token_window(tokens)
default = encoding.mask_positions[0] if encoding.mask_positions else min(1, len(tokens) - 1)
position = lab_ui.token_picker("Position to explain (P)", tokens, key="influence_position", default=default, window=window,
                               help="The token whose representation (or [MASK] guess) the six measures explain.")
if info.mask_as_trained == "causal":
    st.caption(f"{info.title} is a decoder: every measure runs under its causal mask, so tokens after P get exactly 0.")

found = lab_ui.long_work(
    loaded, "influence", (lab_ui.encoding_key(encoding), position),
    lambda progress, should_stop: influence(loaded, encoding, position, progress=progress, should_stop=should_stop),
    label=f"Measuring how every token influences position {position} six ways", unit="steps",
)
if found is None:
    st.stop()

st.markdown(f"**What the measures say here.** {found.to_dict()['disagreement']}")
lab_ui.chart(influence_figures.influence_bars(found, window=window), key="influence_bars")
target = (f"the probability of “{found.target}” at P (the MLM head's top guess)" if found.target
          else f"P's last hidden state ({info.name} has no masked-LM head)")
st.caption(
    f"Occlusion and integrated gradients explain {target}. Occlusion replaces each ordinary token by "
    f"{found.replacement}; [CLS], [SEP] and [MASK] are kept, so they get 0 there, as they do from integrated gradients, "
    "whose baseline keeps them. The dotted line marks P."
    + (f" Integrated gradients' completeness: the scores sum to {found.completeness['sum']:.4f}, f(input) − f(baseline) = "
       f"{found.completeness['expected']:.4f}." if found.completeness else "")
)
left, right = st.columns([3, 2])
with left:
    lab_ui.chart(influence_figures.spearman_heatmap(found), key="influence_spearman")
with right:
    st.markdown("**Agreement, pair by pair.** Spearman's ρ compares rankings: 1 when two measures order the tokens "
                "the same way, 0 when their orders are unrelated, −1 when reversed. It is computed over the "
                f"{len(found.compared)} ordinary tokens P can see (the measures that keep specials out cannot rank them).")
    pairs = sorted(((found.spearman[a][b], a, b) for i, a in enumerate(METHODS) for b in METHODS[i + 1:]
                    if found.spearman[a][b] is not None), reverse=True)
    if pairs:
        st.markdown("Agree most: " + ", ".join(f"{NAMES[a]} · {NAMES[b]} **{r:+.2f}**" for r, a, b in pairs[:2])
                    + "  \nAgree least: " + ", ".join(f"{NAMES[a]} · {NAMES[b]} **{r:+.2f}**" for r, a, b in pairs[-2:][::-1]))
    st.caption("zeroing = value zeroing, IG = integrated gradients.")

st.subheader("Layer by layer")
if st.session_state.get("influence_layer", 0) > info.layers - 1:  # left over from a deeper model
    st.session_state["influence_layer"] = info.layers - 1
layer = st.slider("Layer", 0, info.layers - 1, info.layers - 1, key="influence_layer", bind="query-params",
                  help="Attention, norm-based and value zeroing exist at every layer; the strips above show the last.")
lab_ui.chart(influence_figures.influence_bars(found, methods=LAYERED, window=window, layer=layer), key="influence_layer_bars")
st.download_button("Download these measures (JSON)", data=lambda: json.dumps(found.to_dict(), indent=1),
                   file_name="bertlab-influence.json", mime="application/json", on_click="ignore", key="influence_json",
                   icon=":material/download:")
