import streamlit as st

import bertlab
import lab_ui
from bertlab import compare, figures, metrics

lab_ui.header(
    "Compare models",
    "Two checkpoints read the same text (the sidebar's): how each splits it into WordPieces (cased vs "
    "uncased, another vocabulary), what each guesses at a `[MASK]`, one head of attention in each, and how "
    "alike the two models' vectors of one word are, layer by layer. Both models are loaded once per server "
    "and shared by every session.",
    "where the tokenizations part ways (a cased model keeps capitals, a multilingual one splits English "
    "words more), whether the guesses agree, and, for a fine-tune and its base, the layers where the "
    "fine-tune moved away from where it started.",
)

first = (st.session_state.get("model") or bertlab.DEFAULT_MODEL).strip()
if "model_b" not in st.session_state and "model_b" not in st.query_params:
    # a second model that differs from the one that really runs (offline, bert-base-uncased is MiniLM): MiniLM's
    # trained weights beside BERT-base's shape with random ones is a comparison a class can read
    running = lab_ui.model_or_none(first, show=False)
    running = running.info.name if running is not None else first
    st.session_state.model_b = next((m for m in (bertlab.PACKAGED_MODEL, lab_ui.MECHANICS_MODEL, "random:bert-mini")
                                     if m != running and lab_ui.allowed(m)), bertlab.PACKAGED_MODEL)
current = st.session_state.get("model_b") or st.query_params.get("model_b")
options = lab_ui.MODELS + ["random:bert-mini"] + ([current] if current and current not in lab_ui.MODELS + ["random:bert-mini"] else [])
second = st.selectbox(
    "Second model", options, key="model_b", accept_new_options=True, bind="query-params",
    help="Compared with the sidebar's model on the sidebar's text. " + lab_ui.MODEL_HELP,
)
st.caption(
    f"Memory: one copy of each model per server, shared by every session; at most {lab_ui.MODEL_SLOTS} models "
    "at once (the two compared, the packaged MiniLM and one more; the least recently used is dropped), e.g. "
    "two BERT-base checkpoints take about 2 × 440 MB in float32, two BERT-large about 2 × 1.3 GB. Their "
    "analyses share the app's one result cache (BERTLAB_CACHE_MB)."
)

models = [lab_ui.model_or_none(first), lab_ui.model_or_none(second)]
if None in models:
    st.info("Choose another model (for example 'minilm', which needs no network).")
    st.stop()
names = (models[0].info.name, models[1].info.name)
results = [lab_ui.analysis(loaded) for loaded in models]
for loaded in models:
    if loaded.info.notice:
        st.warning(loaded.info.notice, icon="📦")

st.subheader("Tokens")
columns = st.columns(2)
for column, loaded, result in zip(columns, models, results):
    info, tokens = loaded.info, result.tokens
    column.markdown(f"**{info.name}** · {info.layers} layers · {info.heads} heads · hidden {info.hidden_size}")
    column.html(figures.token_chips(result.encoding))
    column.caption(
        f"{len(tokens)} tokens · {sum(t.continuation for t in tokens)} `##` pieces · {sum(t.unknown for t in tokens)} [UNK] · "
        f"{'cased' if info.cased else 'uncased' if info.cased is False else 'casing unknown'}"
    )

st.subheader("Masked LM")
masks_a, masks_b = results[0].mask_positions, results[1].mask_positions
if not masks_a:
    st.info("Type [MASK] in the text to compare the two models' guesses.")
else:
    columns = st.columns(2)
    for side, (column, loaded, result) in enumerate(zip(columns, models, results)):
        with column:
            if "mlm" not in loaded.info.heads_available:
                st.info(f"**{loaded.info.name}** has no masked-LM head. {loaded.info.description}")
                continue
            for n, position in enumerate(result.mask_positions, start=1):
                lab_ui.chart(
                    figures.prediction_bars(result.predictions(position), f"{loaded.info.name}: [MASK] {n} (position {position})"),
                    key=f"compare_mlm_{side}_{n}",
                )

st.subheader("Attention")
columns = st.columns(2)
windows, picked = [], []
for side, (column, loaded, result) in enumerate(zip(columns, models, results)):
    with column:
        layer, head = lab_ui.layer_head(result, prefix=f"{'ab'[side]}_")
        windows.append(lab_ui.token_window(result.tokens, prefix=f"{'ab'[side]}_"))
        picked.append((column, result.bidirectional.attention(layer, head), f"{loaded.info.name}: layer {layer}, head {head}"))
tops = [figures.shared_zmax([weights], window) for (_, weights, _), window in zip(picked, windows)]
for side, ((column, weights, title), result, window) in enumerate(zip(picked, results, windows)):
    with column:  # one colour scale for both models' heads
        lab_ui.chart(figures.attention_heatmap(result.tokens, weights, title=title, window=window, zmax=max(tops)),
                     key=f"compare_attention_{side}")

st.subheader("One word in both models")
window_a = windows[0]
words = [t for t in results[0].tokens if not t.special]
if not words:
    st.stop()
# past WINDOW_TOKENS words, the pills offer the first model's window (512 pills would fill a phone many times)
shown = [i for i, t in enumerate(words) if window_a is None or window_a.start <= t.position < window_a.stop]
window_words = slice(shown[0], shown[-1] + 1) if window_a is not None and shown else None
position = words[lab_ui.token_picker("Word", words, key="compare_word", default=0, window=window_words,
                                     help="A word of the text, found in the second model by its characters.")].position
comparison = lab_ui.guarded(lambda: compare.compare_word(results[0], results[1], position))
st.caption(
    f"“{comparison.word}” is {' '.join(comparison.pieces[0])} in {names[0]} and {' '.join(comparison.pieces[1])} in {names[1]} "
    "(a word in several pieces is the mean of its pieces)."
)
if comparison.cosine is not None:
    lab_ui.chart(figures.word_cosine_by_layer(comparison.cosine, comparison.word, names, comparison.kind), key="compare_cosine")
    st.caption(
        "Both hidden sizes match, so the vectors can be compared directly, layer by layer up to the shallower model. "
        "The cosine means something when one checkpoint descends from the other (a fine-tune and its base, a "
        "distillation started from it): unrelated models share no basis, and theirs stays near 0."
    )
else:
    st.caption(
        f"The hidden sizes differ ({models[0].info.hidden_size} vs {models[1].info.hidden_size}), so the two models' "
        "vectors live in different spaces and cannot be compared directly. Instead, in each model, how far the words "
        f"after “{comparison.word}” move it: its vector with both sides seen against its vector with only the left, "
        "layer by layer. Pick another word above."
    )
    curves = {}
    for loaded, result in zip(models, results):
        segment, start, end = compare.word_span(results[0].encoding, position)
        pieces = compare.pieces_at(result.encoding, segment, start, end)
        both, left = (result.runs[kind].hidden_states[:, pieces].mean(1) for kind in ("bidirectional", "causal"))
        curves[loaded.info.name] = 1.0 - metrics.cosine(both, left)
    lab_ui.chart(figures.word_context_by_layer(curves, comparison.word), key="compare_context")
for note in results[1].notes:  # the second model's notes; the first's come with its JSON download
    if note != models[1].info.notice:
        st.caption(f"ℹ️ {names[1]}: {note}")
lab_ui.notes(results[0])
