import hashlib
import html
import json

import pandas as pd
import streamlit as st

import lab_ui
from bertlab import BertlabError, analyze, figures, influence_figures
from bertlab.atlas import BEHAVIOURS, NAMES, STATS, atlas, clean, read_sentences
from bertlab.corpus import MAX_CORPUS_BYTES, MAX_ROWS, MAX_SENTENCE_CHARS, shipped_corpus

lab_ui.header(
    "Head atlas",
    "One sentence's attention is an anecdote. Averaged over every token of every sentence of a corpus, it "
    "characterises a head (Clark et al., 2019, “What does BERT look at?”): how much of each row goes to the "
    "[CLS]-like and [SEP]-like specials, to punctuation, to the previous or next token, to the token itself, and how "
    "spread out the row is (entropy). Two heads are as far apart as their attention rows differ (the mean "
    "Jensen-Shannon divergence over every token), and the map places every head by those distances.",
    "clusters on the map: heads that look at the previous token, heads that park attention on [SEP], broad heads "
    "in the early layers. Tap a head to see its average behaviour, the sentences where it behaves most typically, "
    "and a link that removes it on the Experiments page.",
)
loaded = lab_ui.model()
info = loaded.info
shipped = shipped_corpus()
SOURCES = ["Shipped corpus", "Upload a file", "Type sentences"]
c1, c2 = st.columns([3, 2])
source = c1.segmented_control("Corpus", SOURCES, key="atlas_source", default=SOURCES[0], bind="query-params") or SOURCES[0]
mask = c2.segmented_control("Mask", ["bidirectional", "causal"], key="atlas_mask", default=info.mask_as_trained,
                            bind="query-params", help="Causal: every token sees only itself and the tokens on its left.") or info.mask_as_trained

sentences, name, digest = list(shipped.sentences), shipped.name, shipped.digest
if source == "Upload a file":
    uploaded = st.file_uploader(
        "A corpus file", type=["tsv", "csv", "txt"], key="atlas_file",
        help=f"A .tsv or .csv with a header row and a `sentence` column, or a .txt with one sentence per line. At most "
             f"{MAX_CORPUS_BYTES / 1e6:.0f} MB, {MAX_ROWS:,} sentences, {MAX_SENTENCE_CHARS} characters per sentence.")
    if uploaded is None:
        st.caption("Until a file is chosen, the atlas reads the shipped corpus.")
    else:
        try:
            sentences, digest = read_sentences(uploaded.getvalue(), uploaded.name)
            name = uploaded.name
        except BertlabError as err:
            st.warning(f"{err} Reading the shipped corpus instead.", icon="✋")
elif source == "Type sentences":
    typed = st.text_area("Sentences, one per line", key="atlas_sentences", height=140,
                         value="The cat sat on the mat.\nI went to the bank to deposit money.\nShe said: “we went there, twice.”")
    try:
        sentences = clean(typed.splitlines())
        name, digest = "typed sentences", hashlib.sha256("\n".join(sentences).encode()).hexdigest()
    except BertlabError as err:
        st.warning(f"{err} Reading the shipped corpus instead.", icon="✋")
limit = st.number_input("Sentences to read", 1, len(sentences), len(sentences), key="atlas_limit",
                        help="The first N sentences of the corpus (fewer is faster).")
chosen = sentences[: int(limit)]

result = lab_ui.long_work(
    loaded, "atlas", (digest, int(limit), mask),
    lambda progress, should_stop: atlas(loaded, chosen, mask, corpus=name, progress=progress, should_stop=should_stop),
    label=f"Running {info.name} over {len(chosen):,} sentences of {name}", unit="sentences",
)
if result is None:
    st.stop()
st.caption(f"**{name}**: {len(result.sentences):,} sentences, {result.tokens:,} tokens, {mask} mask · "
           f"{info.layers} layers × {info.heads} heads of {lab_ui.running_name(loaded)}")

labels = [f"{i // result.heads}.{i % result.heads}" for i in range(result.layers * result.heads)]
dominant = result.dominant()
current = st.session_state.get("atlas_head") or st.query_params.get("atlas_head")
if current not in labels:  # none yet, or one of another model: the head with the most pronounced behaviour
    current = labels[max(range(len(labels)), key=lambda k: result.stats[k, :len(BEHAVIOURS)].max())]
st.session_state["atlas_head"] = current


def _picked() -> None:
    """A tap on the map picks that head in the head box below."""
    points = st.session_state["atlas_map"].selection.points
    if points and points[0].get("customdata"):
        st.session_state["atlas_head"] = labels[int(points[0]["customdata"][0])]


colour = st.segmented_control("Colour by", ["layer", "behaviour"], key="atlas_colour", default="layer",
                              bind="query-params") or "layer"
picked = st.session_state["atlas_head"]
layer, head = (int(x) for x in picked.split("."))
fig = influence_figures.atlas_map(result, colour, selected=(layer, head))
st.plotly_chart(fig, key="atlas_map", on_select=_picked, selection_mode="points",
                config={"displaylogo": False, "toImageButtonOptions": {"format": "png", "filename": "bertlab-atlas", "scale": 2}})
st.caption("Tap or click a head on the map (or choose it below). Axes have no units: only distances between points mean "
           "something (classical MDS of the Jensen-Shannon divergences).")

head_label = st.selectbox("Head (layer.head)", labels, key="atlas_head", bind="query-params",
                          format_func=lambda h: f"{h} · {NAMES[dominant[labels.index(h)]]}")
layer, head = (int(x) for x in head_label.split("."))
i = result.index(layer, head)
masses = result.stats[i, :len(BEHAVIOURS)]
top = int(masses.argmax())
if dominant[i] == "broad":
    st.markdown(f"**Head {head_label}** spreads its attention: no behaviour takes a third of a row on average "
                f"(the largest, {NAMES[BEHAVIOURS[top]]}, takes {masses[top]:.0%}); entropy {result.stats[i, -1]:.2f} nats.")
else:
    st.markdown(f"**Head {head_label}** mostly attends to the **{NAMES[dominant[i]]}**: {masses[top]:.0%} of each row on "
                f"average over {result.tokens:,} tokens (entropy {result.stats[i, -1]:.2f} nats).")
left, right = st.columns(2)
with left:
    lab_ui.chart(influence_figures.head_behaviour(result, layer, head), key="atlas_behaviour")
with right:
    st.markdown("**Its most typical sentences** (closest to its average behaviour):")
    typical = result.typical(layer, head, 3)
    st.markdown("\n".join(f"{n}. {html.escape(result.sentences[s])}" for n, s in enumerate(typical, start=1)))
    st.page_link("pages/run_experiments.py", label=f"Remove head {head_label} on the Experiments page", icon="🧪",
                 query_params={"experiment": "Ablate heads", "heads": head_label})
    st.caption("The Experiments page removes it while your own text (in the sidebar) runs, and shows what changes.")
example = result.sentences[typical[0]]
shown = lab_ui.compute(loaded, "atlas_example", (example, mask), lambda: analyze(loaded, example, mask_types=(mask,)).compact(),
                       spinner=None)
lab_ui.chart(figures.attention_heatmap(shown.tokens, shown.runs[mask].attention(layer, head),
                                       title=f"head {head_label} on its most typical sentence ({mask})"), key="atlas_example")

with st.expander("Every head, one behaviour at a time"):
    stat = st.selectbox("Behaviour", STATS, format_func=NAMES.get, key="atlas_stat", bind="query-params")
    lab_ui.chart(influence_figures.behaviour_grid(result, stat), key="atlas_grid")
    frame = pd.DataFrame([{"head": labels[k], "dominant": NAMES[dominant[k]],
                           **{NAMES[s]: round(float(result.stats[k, n]), 4) for n, s in enumerate(STATS)}}
                          for k in range(len(labels))])
    st.dataframe(frame, hide_index=True, width="stretch", height=300)
    st.download_button("Download the atlas (JSON)", data=lambda: json.dumps(result.to_dict()), file_name="bertlab-atlas.json",
                       mime="application/json", on_click="ignore", key="atlas_json", icon=":material/download:")
