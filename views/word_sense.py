import streamlit as st

import lab_ui
from bertlab import figures

SENSE_PRESETS = {
    "bank": (
        "bank",
        "I went to the bank to deposit money.\nI went to the bank to catch some fish.\n"
        "The river bank was very scenic.\nThe bank was robbed yesterday.",
    ),
    "bat": ("bat", "He swung the bat at the ball.\nA bat flew out of the cave.\nShe bought a new cricket bat."),
    "play": ("play", "The children play in the garden.\nWe watched a play at the theatre.\nPress play to start the video."),
}

lab_ui.header(
    "Word sense",
    "A static word vector gives “bank” one meaning. BERT's hidden states are **contextual**: the vector "
    "for “bank” at each layer depends on the whole sentence. Compare the target word's vectors across "
    "sentences by cosine similarity, layer by layer (layer 0 is the embedding output: the same for every "
    "sentence up to position and segment).",
    "the similarity falls as the layers mix in context. Under the **causal** mask, “bank” in “I went to the "
    "bank to deposit money” and “I went to the bank to catch some fish” has the same left context, so it is "
    "the *same vector* (cosine 1.000) at every layer; bidirectionally the words after it pull the two apart.",
)


def _load_preset() -> None:
    st.session_state.target, st.session_state.sentences = SENSE_PRESETS[st.session_state.sense_preset]


if "target" not in st.session_state and "target" not in st.query_params:
    _load_preset_default = SENSE_PRESETS["bank"]
    st.session_state.target, st.session_state.sentences = _load_preset_default
st.selectbox("Example", list(SENSE_PRESETS), index=None, key="sense_preset", placeholder="Load an example…", on_change=_load_preset)
c1, c2 = st.columns([1, 3])
target = c1.text_input("Target word", key="target", bind="query-params")
sentences = c2.text_area("Sentences, one per line", key="sentences", height=140, bind="query-params")

loaded = lab_ui.model()
result = lab_ui.senses(loaded, target, sentences.splitlines())
for i, (sentence, pieces) in enumerate(zip(result.sentences, result.pieces), start=1):
    st.caption(f"**S{i}** {sentence}  →  pieces: {' '.join(pieces)}")

layer = st.slider("Layer", 0, result.layers - 1, result.layers - 1, key="sense_layer")
left, right = st.columns(2)
with left:
    lab_ui.chart(figures.similarity_heatmap(result, "bidirectional", layer), key="sim_bi")
with right:
    lab_ui.chart(figures.similarity_heatmap(result, "causal", layer), key="sim_causal")
lab_ui.chart(figures.projection_scatter(result, layer), key="pca")
c1, c2 = st.columns(2)
n = len(result.sentences)
i = c1.selectbox("Compare sentence", range(n), format_func=lambda k: f"S{k + 1}", key="pair_i")
j = c2.selectbox("with sentence", range(n), index=min(1, n - 1), format_func=lambda k: f"S{k + 1}", key="pair_j")
lab_ui.chart(figures.similarity_by_layer(result, i, j), key="by_layer")
