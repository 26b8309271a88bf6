import re

import streamlit as st

import lab_ui
from bertlab import attention_views, figures, inside
from bertlab import corpus as corpora

STEPS = [
    "Tokens",
    "Three embeddings",
    "Attention",
    "Layers",
    "Masked LM",
    "Bidirectional vs causal",
    "Word sense",
    "Next sentence",
]
BANK = ["I went to the bank to deposit money.", "I went to the bank to catch some fish.", "The river bank was very scenic."]

st.title("A guided lesson: BERT from text to meaning")
INTRO = (
    "BERT (Devlin et al., 2018) is a stack of Transformer **encoder** layers: BERT-base has 12 layers, hidden "
    "size 768, 12 attention heads and a 3072-wide feed-forward block (110M parameters); BERT-large has 24, "
    "1024, 16 and 4096 (340M). It reads at most 512 positions. Each step below runs on the text in the "
    "sidebar, live. " + lab_ui.sizes_sentence()
)
if lab_ui.presenting():  # a projector's first screen is for the step, not the introduction
    with st.expander("About BERT and the model running here"):
        st.markdown(INTRO)
else:
    st.markdown(INTRO)
step = st.pills("Step", STEPS, key="step", default=STEPS[0], bind="query-params") or STEPS[0]
index = STEPS.index(step)
st.progress((index + 1) / len(STEPS), text=f"Step {index + 1} of {len(STEPS)}: {step}")  # the step's title
if st.session_state.pop("_lesson_scroll", False):
    # after Back/Next (at the bottom of a long step) the next step's title comes into view, not its end;
    # the margin keeps it below Streamlit's fixed header
    st.html(
        f"<script>/* {step} */ (function () {{ var bar = document.querySelector('[data-testid=stProgress]');"
        " if (bar) { bar.style.scrollMarginTop = '5rem'; bar.scrollIntoView({block: 'start'}); } })();</script>",
        unsafe_allow_javascript=True,
    )


def explain(text: str, notice: str) -> None:
    st.markdown(text)
    st.info(f"**What to notice:** {notice}", icon="👀")


result = lab_ui.analysis()
tokens = result.tokens
loaded = lab_ui.model()

if step == "Tokens":
    explain(
        f"A fixed vocabulary of **WordPieces** (30,522 in the uncased English model{lab_ui.in_this_model('vocab_size')}) covers any text: a word it "
        "does not hold whole is split, and continuation pieces start with `##`. The input is framed as `[CLS]` A "
        "`[SEP]` (B `[SEP]`).",
        "which words split into pieces, and the special tokens the model adds around your text.",
    )
    st.html(figures.token_chips(result.encoding))
elif step == "Three embeddings":
    explain(
        "Each token becomes the sum of three learned vectors, a **token** embedding, a **segment** (A/B) "
        "embedding and a **position** embedding (one per position up to 512), followed by LayerNorm.",
        f"the sum after LayerNorm equals the model's own embedding output (largest difference here: "
        f"{result.embeddings.max_abs_diff:.1e}).",
    )
    lab_ui.chart(figures.embedding_norms(tokens, result.embeddings, lab_ui.token_window(tokens)), key="lesson_norms")
elif step == "Attention":
    layer, query = loaded.info.layers // 2, (result.mask_positions or [min(1, len(tokens) - 1)])[0]
    steps = lab_ui.compute(loaded, "head", (lab_ui.encoding_key(result.encoding), layer, 0, query, "bidirectional"),
                           lambda: inside.head_steps(loaded, result, layer, 0, query), spinner=None)
    explain(
        "In every layer, each of the heads computes softmax(QKᵀ/√d): a row of weights per token over all tokens, "
        "summing to 1, and mixes the tokens' values by them. Here are all heads of all layers at once, then one "
        "head's row worked out step by step with the layer's own query and key projections.",
        "heads with a sharp diagonal (attending to the previous or next token), and heads whose weight collects "
        "on `[CLS]` or `[SEP]` (a column of dark tiles): trained BERTs have both. In the steps, the softmax turns "
        f"the largest scaled scores into the largest weights. {lab_ui.top_share(tokens, steps.weights)}",
    )
    lab_ui.image(attention_views.thumbnails(result.bidirectional.attentions), key="lesson-all-heads")
    lab_ui.chart(figures.head_steps_chart(tokens, steps, lab_ui.token_window(tokens)), key="lesson_head_steps")
    st.page_link("pages/inside_a_head.py", label="Inside a head: pick any layer, head and token", icon="🔍")
elif step == "Layers":
    explain(
        "A layer is attention then a feed-forward block, each wrapped **post-norm**: h = LayerNorm(A + x), then "
        "out = LayerNorm(F + h). The residual `+ x` keeps each token's vector, and each block adds an update to it.",
        "each cell is how large a sublayer's update is next to the stream it joins, for this text: near 0 the "
        "token passes almost unchanged, near 0.5 the update is as large as the token itself.",
    )
    layers = lab_ui.compute(loaded, "layers", (lab_ui.encoding_key(result.encoding), "bidirectional"),
                            lambda: inside.layer_steps(loaded, result.encoding), spinner="Running BERT with hooks on every sublayer…")
    lab_ui.chart(figures.sublayer_shares(tokens, layers.shares(), lab_ui.token_window(tokens)), key="lesson_layers")
    st.page_link("pages/residual_stream.py", label="Layers and the residual stream: norms per token, feed-forward neurons", icon="🥞")
elif step == "Masked LM":
    explain(
        "Pre-training task 1, the **masked language model**: 15% of tokens are chosen; 80% of those become "
        "`[MASK]`, 10% a random token, 10% stay as they are, and BERT predicts the originals, using both sides.",
        "put `[MASK]` in the text: with trained weights the top guesses fit both the words before and after it.",
    )
    lab_ui.random_weights_note(loaded)
    if "mlm" not in result.model.heads_available:
        lab_ui.missing_head(loaded, "mlm")
    elif not result.mask_positions:
        st.info("Type [MASK] somewhere in the text to see BERT's guesses.")
    for position in result.mask_positions if "mlm" in result.model.heads_available else []:
        lab_ui.chart(
            figures.prediction_bars(result.predictions(position), f"[MASK] at position {position}"),
            key=f"lesson_mlm{position}",
        )
elif step == "Bidirectional vs causal":
    explain(
        "BERT's mask lets every token see both sides. A GPT-style **causal** mask lets a token see only the left. "
        "The same weights run under both masks here.",
        "the causal mask is a triangle; where the hidden states differ most, the right-hand context mattered.",
    )
    window = lab_ui.token_window(tokens)
    left, right = st.columns(2)
    with left:
        lab_ui.chart(figures.mask_matrix(tokens, result.bidirectional.allowed, "bidirectional", window), key="lesson_bi")
    with right:
        lab_ui.chart(figures.mask_matrix(tokens, result.causal.allowed, "causal", window), key="lesson_causal")
    lab_ui.chart(figures.divergence_heatmap(tokens, result.divergence(), window), key="lesson_div")
elif step == "Word sense":
    explain(
        "Because every layer mixes in context, the vector for a word depends on its sentence: “bank” of money "
        "and “bank” of a river drift apart, layer by layer.",
        "under the causal mask the two “I went to the bank …” sentences share the left context, so “bank” is the "
        "same vector (cosine 1.0) at every layer; bidirectionally the words after it pull them apart. In the probe "
        "curve, compare the embeddings with the dashed line (always guessing the more common sense) and the two "
        "masks: half the corpus sentences settle the sense only after the word, where a causal mask cannot look.",
    )
    sentences = BANK + [t for t in [st.session_state.get("text", "").strip()] if t not in BANK and re.search(r"\bbank\b", t, re.I)]
    sense = lab_ui.senses(loaded, "bank", sentences)
    for i, sentence in enumerate(sentences, start=1):
        st.caption(f"S{i}: {sentence}" + (" (your text)" if i > len(BANK) else ""))
    # the pairs the text talks about: money vs fish (same left context), money vs river (different senses)
    pairs = [(0, 1), (0, 2)] + [(0, i) for i in range(len(BANK), len(sentences))]
    for col, (i, j) in zip(st.columns(len(pairs)), pairs):
        with col:
            lab_ui.chart(figures.similarity_by_layer(sense, i, j), key=f"lesson_sense_{i}_{j}")
    st.markdown(
        f"Over many sentences: for each of the {len(corpora.shipped_corpus()):,} sentences of bertlab's corpus "
        "(33 ambiguous words, two senses each), is the nearest other sentence with the same word of the same "
        "sense? That **sense probe** shows the layer where BERT separates senses, and what the causal mask costs."
    )
    corpus_index = lab_ui.corpus_index(loaded, corpora.shipped_corpus())
    sense_probe = corpora.probe(corpus_index)
    lab_ui.chart(figures.probe_curve(sense_probe), key="lesson_probe")
    st.caption(sense_probe.describe())
else:
    explain(
        "Pre-training task 2, **next sentence prediction**: for half the pairs B really followed A (IsNext), for "
        "half it was a random sentence. A head on the pooled `[CLS]` vector predicts which. BERT was pre-trained "
        "on BooksCorpus (800M words) and English Wikipedia (2,500M words).",
        "add a second sentence in the sidebar: with trained weights a real continuation usually scores higher than "
        "an unrelated one.",
    )
    lab_ui.random_weights_note(loaded)
    if result.nsp is None:
        lab_ui.missing_head(loaded, "nsp")
    else:
        st.metric("P(IsNext)", f"{result.nsp:.3f}")
        lab_ui.chart(figures.nsp_gauge(result.nsp), key="lesson_nsp")

def go(to: int) -> None:
    st.session_state.step = STEPS[to]
    st.session_state["_lesson_scroll"] = True


back, _, forward = st.columns([1, 4, 1])
if index > 0:
    back.button("← Back", key="lesson_back", on_click=go, args=(index - 1,))
if index < len(STEPS) - 1:
    forward.button("Next →", key="lesson_next", on_click=go, args=(index + 1,))
