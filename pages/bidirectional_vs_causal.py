import streamlit as st

import bertlab
import lab_families
import lab_ui
from bertlab import experiments, figures, masks

lab_ui.header(
    "Bidirectional vs causal",
    "The same weights, two masks. BERT is trained **bidirectionally**: every token attends to its left and "
    "its right. A GPT-style **causal** mask lets each token see only itself and what came before. Here both "
    "masks run in one batch through the same BERT, so every difference you see comes from the mask alone.",
    "under the causal mask everything above the diagonal is exactly zero; a token's hidden state then cannot "
    "depend on later words. Try “I went to the bank to deposit money.” and change the last words: the causal "
    "states for “bank” do not move, the bidirectional ones do.",
)
loaded = lab_ui.model()
result = lab_ui.analysis(loaded)
tokens = result.tokens
if loaded.info.mask_as_trained == "causal":
    st.info(f"**{loaded.info.name}** is a decoder, trained with the causal mask: its causal run is how it really works, and "
            "its bidirectional run is the counterfactual here (the same weights, allowed to look right, which they never "
            "learned to do).", icon="↔️")
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

windows = loaded.info.windows
if windows:
    w = next(iter(windows.values()))
    local = ", ".join(str(layer) for layer in windows)
    st.subheader(f"A third mask: {loaded.info.title}'s own local window (±{w})")
    st.markdown(f"In layers {local} each token attends only to the keys within ±{w} positions of it; the other layers "
                "attend globally. Both runs above keep that window in those layers, as the model computes them. Below: the "
                "window itself, and the same weights with it in **every** layer, global ones included.")
    window_mask = masks.preset("window", len(tokens), window=w)
    lab_ui.chart(figures.mask_matrix(tokens, window_mask.numpy(), f"local ±{w}", window), key="mask_local")
    if st.toggle(f"Run every layer under the ±{w} window", key="apply_local", bind="query-params"):
        effect = lab_ui.compute(loaded, "mask", (lab_ui.encoding_key(result.encoding), f"local±{w}", window_mask.numpy().tobytes()),
                                lambda: experiments.with_mask(loaded, result.encoding, window_mask, f"local ±{w}", top_k=result.top_k))
        lab_ui.chart(figures.change_heatmap(tokens, effect.hidden_cosine, "how far the window everywhere moved each token: "
                                            "1 − cosine(as trained, windowed)", window), key="local_change")

st.subheader("BERT beside GPT: a model trained causally")
st.markdown("Above, one model under two masks: that isolates the mask, but the causal run is a model that was never trained "
            "that way. Here a decoder, **trained** to read left to right, reads the same sentences beside an encoder: what "
            "each token can see, the word “bank” in the seeds' sentences layer by layer, and, over bertlab's corpus, "
            "whether each model tells a word's senses apart when the clue comes after the word.")
encoder = loaded if loaded.info.mask_as_trained == "bidirectional" else lab_ui.model(bertlab.PACKAGED_MODEL)
if "model_b" not in st.session_state and "model_b" not in st.query_params:
    st.session_state.model_b = lab_families.decoder_name()
decoders = [lab_ui.DECODER, f"{lab_ui.RANDOM_PREFIX}{lab_ui.DECODER}", "distilgpt2", "gpt2-medium"]
current = st.session_state.get("model_b") or st.query_params.get("model_b")
second = st.selectbox("The decoder beside it", decoders + ([current] if current and current not in decoders else []), key="model_b",
                      accept_new_options=True, bind="query-params", help="GPT-2 (or its shape with random weights, offline).")
decoder = lab_ui.model_or_none(second)
if decoder is None:
    st.info(f"Choose {lab_families.decoder_name()} (it works here).")
elif decoder.info.mask_as_trained != "causal":
    st.info(f"**{decoder.info.name}** is an encoder; this comparison needs a decoder such as {lab_families.decoder_name()}.")
else:
    lab_ui.random_weights_note(decoder)
    left, right = st.columns(2)
    with left:
        st.markdown(f"**{encoder.info.name}**: trained bidirectionally")
        lab_ui.chart(figures.mask_matrix(tokens, result.bidirectional.allowed, "bidirectional", window), key="trained_encoder")
    with right:
        decoded = lab_ui.analysis(decoder)
        st.markdown(f"**{decoder.info.name}**: trained causally")
        lab_ui.chart(figures.mask_matrix(decoded.tokens, decoded.causal.allowed, "causal", lab_ui.token_window(decoded.tokens, "b_")),
                     key="trained_decoder")
    if st.toggle("Add the corpus sense probe for both models (builds each model's index once)", key="bert_gpt_probe",
                 bind="query-params"):
        lab_families.bert_vs_gpt(encoder, decoder, "bert_gpt", probe=True)
    else:
        lab_families.bert_vs_gpt(encoder, decoder, "bert_gpt", probe=False)
lab_ui.notes(result)
