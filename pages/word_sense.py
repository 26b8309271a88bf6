import streamlit as st

import lab_ui
from bertlab import InputError, experiments, figures
from bertlab import corpus as corpora

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
    "sentences by cosine similarity, layer by layer, starting from the embeddings (the same vector in every "
    "sentence up to position and segment).",
    "how the similarity changes as the layers mix in context (in trained models it falls for different senses). Under the **causal** mask, “bank” in “I went to the "
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

names = figures.hidden_state_labels(result.layers)  # the numbering every page uses: embeddings, then blocks 0..L-1
layer = st.select_slider("After layer", list(range(result.layers)), value=result.layers - 1, format_func=names.__getitem__,
                         key="sense_layer")
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
info = loaded.info
with st.expander("Experiment: remove heads and see how the senses move"):
    chosen = st.multiselect("Heads to remove (layer.head)", [f"{l}.{h}" for l in range(info.layers) for h in range(info.heads)],
                            key="sense_heads", bind="query-params", placeholder="e.g. 3.5")
    if chosen:
        heads = [tuple(int(x) for x in h.split(".")) for h in chosen]
        after = lab_ui.compute(loaded, "ablate_senses", (target, tuple(sentences.splitlines()), tuple(heads)),
                               lambda: experiments.ablate_senses(loaded, target, sentences.splitlines(), heads))
        before_col, after_col = st.columns(2)
        scale = figures.similarity_range(result, after, layer=layer)  # one colour scale for before and after
        with before_col:
            lab_ui.chart(figures.similarity_heatmap(result, "bidirectional", layer, scale), key="sim_before")
        with after_col:
            lab_ui.chart(figures.similarity_heatmap(after, "bidirectional", layer, scale), key="sim_after")
        st.caption(f"Left: as BERT computes it; right: with {len(heads)} head(s) removed ({names[layer]}, bidirectional). "
                   f"Largest change in any cosine here: {abs(after.similarity['bidirectional'][layer] - result.similarity['bidirectional'][layer]).max():.3f}.")

# --- over a corpus ---------------------------------------------------------------------------------

st.divider()
st.subheader("Over a corpus")
st.markdown(
    f"A few sentences show a word drifting; a corpus shows whether BERT really **separates its senses**. "
    f"The shipped corpus has {len(corpora.shipped_corpus()):,} hand-written sentences: "
    f"{len(corpora.shipped_corpus().vocabulary)} ambiguous words × 2 senses × 8, half of them settling the sense "
    "*before* the word and half only *after* it. Every occurrence is indexed at every layer under both masks."
)
uploaded = st.file_uploader(
    "Your own corpus (optional)",
    type=["tsv", "csv", "txt"],
    key="corpus_file",
    help=f"A .tsv or .csv with a header row and the columns word, sense, sentence; or a .txt with one sentence per "
    f"line (unlabelled: neighbours without a vote, no probe). At most {corpora.MAX_CORPUS_BYTES / 1e6:.0f} MB, "
    f"{corpora.MAX_ROWS:,} sentences, {corpora.MAX_SENTENCE_CHARS} characters per sentence.",
)
corpus = corpora.shipped_corpus()
if uploaded is not None:
    try:
        corpus = corpora.read_corpus(uploaded.getvalue(), uploaded.name)
    except InputError as err:
        st.warning(f"{err} Showing the shipped corpus instead.", icon="✋")
word = target.strip()
if corpus.plain:
    try:
        corpus = corpus.select(word)
    except InputError as err:
        st.warning(f"{err} Showing the shipped corpus instead.", icon="✋")
        corpus = corpora.shipped_corpus()
index = lab_ui.corpus_index(loaded, corpus)
words = sorted(index.groups)
st.caption(
    f"**{corpus.name}**: {len(index):,} sentences, {len(words)} word(s), "
    + ("labelled with senses" if corpus.labelled else "unlabelled")
    + f" · index {index.nbytes / 2**20:.1f} MB (float16)"
    + (f" · {len(index.skipped)} left out (the word lies beyond {loaded.max_length} tokens)" if index.skipped else "")
)
in_corpus = word.casefold() in index.groups
if not in_corpus:
    st.info(f"'{word}' is not a word of {corpus.name}. Type one of these as the target word: {', '.join(words)}.", icon="🔎")
else:
    c1, c2 = st.columns([3, 1])
    i = c1.selectbox("Your sentence", range(len(result.sentences)), format_func=lambda k: f"S{k + 1}: {result.sentences[k]}", key="corpus_sentence")
    k = c2.number_input("Neighbours", 1, 20, 5, key="corpus_k")
    # the word's vectors in your sentence come from the run above: the same pooling as the index
    query = {kind: result.vectors[kind][:, i] for kind in result.vectors}
    st.markdown(f"The corpus sentences whose **{word}** is nearest to yours after {figures.hidden_state_name(layer)} (cosine):")
    for column, kind in zip(st.columns(2), index.mask_types):
        near = corpora.neighbors(index, word, query, layer, kind, k)
        with column:
            st.markdown(f"**{kind}** · vote: **{near.vote or '—'}**")
            st.dataframe(
                [{"cosine": round(n.cosine, 3), "sense": n.sense or "", "sentence": n.sentence} for n in near.neighbors],
                hide_index=True,
                key=f"near_{kind}",
            )
    projections = [corpora.projection(index, word, layer, kind, query, result.sentences[i]) for kind in index.mask_types]
    lab_ui.chart(figures.corpus_projection(projections), key="corpus_pca")

if corpus.labelled:
    st.markdown(
        "**The sense probe.** For every corpus sentence, find the nearest *other* sentence with the same word "
        "(cosine, at one layer and mask): does it have the same sense? The dashed line is what always guessing "
        "the word's most common sense scores."
    )
    sense_probe = corpora.probe(index)
    left, right = st.columns(2)
    with left:
        lab_ui.chart(figures.probe_curve(sense_probe), key="probe_all")
    if in_corpus and word.casefold() in sense_probe.words:
        with right:
            lab_ui.chart(figures.probe_curve(sense_probe, word), key="probe_word")
else:
    st.info("This corpus has no senses, so there is no sense probe; its neighbours still show.")
