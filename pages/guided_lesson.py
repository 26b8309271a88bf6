import re
from typing import Callable

import streamlit as st

import bertlab
import lab_families
import lab_ui
from bertlab import attention_views, explain, figures, inside, notice
from bertlab import corpus as corpora

STEPS = [
    "Tokens",
    "Three embeddings",
    "Attention",
    "Layers",
    "Masked LM",
    "Bidirectional vs causal",
    "BERT vs GPT",
    "Word sense",
    "Next sentence",
]
BANK = lab_families.BANK
MAIN = "lesson_main"  # the key of the container of each step's main chart (tests/test_classroom.py measures it)
PROJECTOR_CSS = """<style>
/* On a projector (1280 × 720) the step's chart must start on the first screen: the step's name, Back/Next and
   the step pills take two short rows above it. */
.st-key-lesson_top h1 { font-size: 2.4rem !important; padding: 0.2rem 0 !important; }
.st-key-step button { min-height: 2.2rem !important; padding: 0.1rem 0.5rem !important; }
.st-key-step button p { font-size: 0.88rem !important; }  /* nine steps in one row at 1280 px */
.st-key-lesson_top [data-testid=stProgress] p { font-size: 1.1rem !important; font-weight: 400 !important; }
.st-key-lesson_notice [data-testid=stAlert] p { font-size: 1.05rem !important; line-height: 1.45 !important; }
</style>"""

presenting = lab_ui.presenting()
loaded = lab_ui.model()
# The step comes from the link or the Back/Next buttons; seeded here, not by the widget's default, which
# Streamlit warns about when the buttons set the same key through Session State.
if "step" not in st.session_state and "step" not in st.query_params:
    st.session_state["step"] = STEPS[0]

INTRO = (
    "BERT (Devlin et al., 2018) is a stack of Transformer **encoder** layers: BERT-base has 12 layers, hidden "
    "size 768, 12 attention heads and a 3072-wide feed-forward block (110M parameters); BERT-large has 24, "
    "1024, 16 and 4096 (340M). It reads at most 512 positions. Each step below runs on the text in the "
    "sidebar, live. " + lab_ui.sizes_sentence()
)


def go(to: int) -> None:
    st.session_state.step = STEPS[to]
    st.session_state["_lesson_scroll"] = True


def nav(back, forward, index: int, where: str = "") -> None:
    """Back and Next (`where` keeps the buttons' keys apart: a projector has them at the top and the bottom)."""
    if index > 0:
        back.button("← Back", key=f"lesson_back{where}", on_click=go, args=(index - 1,))
    if index < len(STEPS) - 1:
        forward.button("Next →", key=f"lesson_next{where}", on_click=go, args=(index + 1,))


def with_head(head: str):
    """The model for a step that needs a pre-training head: the sidebar's, or, when it has none, random weights
    for this step only (a toggle beside the explanation of what is missing, which is also the way back)."""
    if head in loaded.info.heads_available:
        return loaded
    offer = lab_ui.mechanics_offer(loaded)
    use = offer is not None and st.toggle(
        f"Run this step on {offer} (random weights)", key=f"lesson_random_{head}",
        help=f"Only this step: the rest of the lesson stays on {lab_ui.running_name(loaded)}.")
    if use and not presenting:  # on a projector the step's line above says it, and the first screen is for the chart
        st.caption(f"🎲 This step runs on **{offer}**; the rest of the lesson on **{lab_ui.running_name(loaded)}**. Turn the "
                   f"switch off to come back to {loaded.info.name}.")
    return lab_ui.model(offer) if use else None


HEADS = {"Masked LM": "mlm", "Next sentence": "nsp"}  # the steps that need a pre-training head

with st.container(key="lesson_top"):
    if presenting:  # a projector's first screen is for the step: its name and Back/Next in one row, then its chart
        st.html(PROJECTOR_CSS)
        head, back_top, next_top = st.columns([6, 1.4, 1.4], vertical_alignment="center")
        title = head.empty()
    else:
        title = st.empty()
        st.markdown(INTRO)
    step = st.pills("Step", STEPS, key="step", bind="query-params", label_visibility="collapsed" if presenting else "visible") or STEPS[0]
    index = STEPS.index(step)
    bar = st.empty()
    # None: the step's head is missing (a decoder's Masked LM step guesses the next token instead)
    decoder_step = step == "Masked LM" and "lm" in loaded.info.heads_available
    step_model = with_head(HEADS[step]) if step in HEADS and not decoder_step else loaded
    running = lab_ui.running_name(loaded) if step_model in (None, loaded) else f"{step_model.info.name} (random weights, this step only)"
    bar.progress((index + 1) / len(STEPS), text=f"Step {index + 1} of {len(STEPS)}: {step} · running {running}")
    if presenting:
        title.title(f"{index + 1} · {step}")
        nav(back_top, next_top, index, "_top")
    else:
        title.title("A guided lesson: BERT from text to meaning")
if st.session_state.pop("_lesson_scroll", False):
    # after Back/Next (at the bottom of a long step) the new step opens at the top of the page, where the line
    # naming the running model and the step's chart are
    st.html(
        f"<script>/* {step} */ (function () {{ var h = document.querySelector('[data-testid=stMainBlockContainer] h1');"
        " for (var e = h; e; e = e.parentElement) { if (e.scrollTop) e.scrollTop = 0; } window.scrollTo(0, 0); })();</script>",
        unsafe_allow_javascript=True,
    )


def lay_out(explanation: str, noticed: str, main: Callable[[], None], model=None) -> None:
    """One step: its explanation, what to notice (measured), and its main chart. On a projector the chart comes
    first, with what to notice beside it, and the explanation folds away below; elsewhere the text leads."""
    model = model or loaded
    # random weights for this step only (the banner at the top speaks for the sidebar's model)
    random = model is not loaded and model.info.name.startswith(lab_ui.RANDOM_PREFIX)

    def notes() -> None:
        if random:
            st.caption(lab_ui.RANDOM_NOTE.format(name=model.info.name, title=model.info.title or 'BERT'))
        st.info(f"**What to notice:** {noticed}", icon="👀")

    if presenting:
        left, right = st.columns([2, 1])
        with left, st.container(key=MAIN):
            main()
        with right, st.container(key="lesson_notice"):
            notes()
        with st.expander("About this step"):
            st.markdown(explanation)
    else:
        st.markdown(explanation)
        notes()
        with st.container(key=MAIN):
            main()


result = lab_ui.analysis(loaded)
tokens = result.tokens
info = loaded.info
BERT = info.family == "bert"

if step == "Tokens":
    lay_out(
        (f"A fixed vocabulary of **WordPieces** (30,522 in the uncased English model{lab_ui.in_this_model('vocab_size')}) covers any text: a word it "
         "does not hold whole is split, and continuation pieces start with `##`. The input is framed as `[CLS]` A "
         "`[SEP]` (B `[SEP]`).") if BERT else explain.tokenization(info, loaded.tokenizer.cls_token, loaded.tokenizer.sep_token),
        notice.tokens(result.encoding),
        lambda: st.html(figures.token_chips(result.encoding)),
    )
elif step == "Three embeddings":
    window = lab_ui.token_window(tokens)
    e = result.embeddings
    lay_out(
        ("Each token becomes the sum of three learned vectors, a **token** embedding, a **segment** (A/B) "
         "embedding and a **position** embedding (one per position up to 512), followed by LayerNorm. The bars are "
         "each vector's length.") if BERT else explain.embeddings(info, e.steps) + " The bars are each vector's length.",
        notice.embeddings(tokens, e, window),
        lambda: lab_ui.chart(figures.embedding_norms(tokens, e, window), key="lesson_norms"),
    )
    recomputed = figures.embedding_formula(e)
    if e.max_abs_diff <= 1e-5:
        st.caption(f"Checked: {recomputed} equals the model's own embedding output "
                   f"(largest difference {e.max_abs_diff:.1e}).")
    else:
        st.error(f"{recomputed} differs from the model's own embedding output by up to "
                 f"{e.max_abs_diff:.2e}: this checkpoint's embedding layer does more than BERT's three lookups and "
                 "LayerNorm, so the parts drawn above do not add up to what its first layer reads.")
elif step == "Attention":
    layer, query = loaded.info.layers // 2, (result.mask_positions or [min(1, len(tokens) - 1)])[0]
    steps = lab_ui.compute(loaded, "head", (lab_ui.encoding_key(result.encoding), layer, 0, query, "bidirectional"),
                           lambda: inside.head_steps(loaded, result, layer, 0, query), spinner=None)
    lay_out(
        ("" if BERT or info.positions == "absolute" else explain.scores(info) + " ")
        + "In every layer, each of the heads computes softmax(QKᵀ/√d): a row of weights per token over all tokens, "
        "summing to 1, and mixes the tokens' values by them. Above, all heads of all layers at once (rows: layers, "
        "columns: heads, darker = more weight); below, one head's row worked out step by step with the layer's own "
        "query and key projections.",
        notice.attention(tokens, result.bidirectional.attentions, steps.weights),
        lambda: lab_ui.image(attention_views.thumbnails(result.bidirectional.attention_layers), key="lesson-all-heads",
                             alt=f"Attention of all {loaded.info.layers * loaded.info.heads} heads, rows layers 0 to "
                                 f"{loaded.info.layers - 1}, columns heads 0 to {loaded.info.heads - 1}"),
    )
    lab_ui.chart(figures.head_steps_chart(tokens, steps, lab_ui.token_window(tokens)), key="lesson_head_steps")
    st.page_link("pages/inside_a_head.py", label="Inside a head: pick any layer, head and token", icon="🔍")
elif step == "Layers":
    layers = lab_ui.compute(loaded, "layers", (lab_ui.encoding_key(result.encoding), "bidirectional"),
                            lambda: inside.layer_steps(loaded, result.encoding), spinner="Running {model} with hooks on every sublayer…")
    window = lab_ui.token_window(tokens)
    shares = layers.shares()
    lay_out(
        ("A layer is attention then a feed-forward block, each wrapped **post-norm**: h = LayerNorm(A + x), then "
         "out = LayerNorm(F + h). The residual `+ x` keeps each token's vector, and each block adds an update to it. "
         if BERT else explain.layer(info) + " ")
        + "Each cell is ‖update‖ / (‖update‖ + ‖stream‖) for one layer and token.",
        notice.layers(tokens, shares, window),
        lambda: lab_ui.chart(figures.sublayer_shares(tokens, shares, window), key="lesson_layers"),
    )
    st.page_link("pages/residual_stream.py", label="Layers and the residual stream: norms per token, feed-forward neurons", icon="🥞")
elif step == "Masked LM" and decoder_step:
    position = max(0, len(tokens) // 2 - 1)
    entry = result.next_token[position]
    actual = entry["actual"]
    lay_out(
        f"Pre-training task 1 of BERT is to fill blanks. **{info.name}** is a decoder: it was trained to guess the **next** "
        "token from the ones before it, and has no blank to fill. The bars are its guesses after one word of your text.",
        f"after “{tokens[position].shown}” its top guess is “{entry['top'][0].token}” ({entry['top'][0].prob:.2f})"
        + (f"; the real next token, “{tokens[position + 1].shown}”, got {actual.prob:.3f}." if actual else ".")
        + " The next step puts this beside BERT.",
        lambda: lab_ui.chart(figures.prediction_bars({"next token": entry["top"]}, f"after “{tokens[position].shown}”"),
                             key="lesson_next_token"),
    )
    st.page_link("pages/masked_lm.py", label="Every position's next-token guess, beside BERT filling the blank", icon="🎭")
elif step == "Masked LM":
    explanation = ("Pre-training task 1, the **masked language model**: 15% of tokens are chosen; 80% of those become "
                   "`[MASK]`, 10% a random token, 10% stay as they are, and BERT predicts the originals, using both sides.")
    if step_model is None:
        lay_out(explanation, f"{loaded.info.name} has no masked-LM head, so it cannot guess a [MASK]: the machinery of the "
                "guess is shown with random weights (the switch above), for this step only.",
                lambda: lab_ui.missing_head(loaded, "mlm", offer=False))
    else:
        masked = lab_ui.analysis(step_model)
        if not masked.mask_positions:
            lay_out(explanation, "put `[MASK]` in the text (the sidebar's Text box): the bars show the model's guesses for it.",
                    lambda: st.info("Type [MASK] somewhere in the text to see the guesses."), step_model)
        else:
            first = masked.mask_positions[0]

            def guesses() -> None:
                for position in masked.mask_positions:
                    lab_ui.chart(figures.prediction_bars(masked.predictions(position), f"[MASK] at position {position}"),
                                 key=f"lesson_mlm{position}")

            lay_out(explanation, notice.mlm(first, masked.predictions(first)), guesses, step_model)
elif step == "Bidirectional vs causal":
    window = lab_ui.token_window(tokens)
    divergence = result.divergence()

    def masks() -> None:
        left, right = st.columns(2)
        with left:
            lab_ui.chart(figures.mask_matrix(tokens, result.bidirectional.allowed, "bidirectional", window), key="lesson_bi")
        with right:
            lab_ui.chart(figures.mask_matrix(tokens, result.causal.allowed, "causal", window), key="lesson_causal")

    lay_out(
        "BERT's mask lets every token see both sides. A GPT-style **causal** mask lets a token see only the left. "
        "The same weights run under both masks here; the heatmap below the masks is how far apart each token's "
        "hidden states end up, layer by layer.",
        notice.masking(tokens, divergence, window),
        masks,
    )
    lab_ui.chart(figures.divergence_heatmap(tokens, divergence, window), key="lesson_div")
elif step == "BERT vs GPT":
    encoder = loaded if info.mask_as_trained == "bidirectional" else lab_ui.model(bertlab.PACKAGED_MODEL)
    decoder = lab_ui.model(lab_families.decoder_name())
    sentences = BANK
    bert_senses = lab_ui.senses(encoder, "bank", sentences)
    gpt_senses = lab_ui.compute(decoder, "senses_causal", ("bank", tuple(sentences)),
                                lambda: bertlab.senses(decoder, "bank", sentences, mask_types=("causal",)),
                                spinner="Running {model} on every sentence…")
    same_gpt = gpt_senses.similarity["causal"][:, 0, 1]
    same_bert = bert_senses.similarity["bidirectional"][:, 0, 1]
    lay_out(
        f"The previous step ran **{encoder.info.name}**'s own weights under a causal mask: that isolates the mask, but no "
        f"model was ever trained that way. **{decoder.info.name}** was: a decoder, trained to predict the next token, "
        "reads left to right by design. The charts put it beside the encoder on the seeds' sentences: the cosine of "
        "“bank” in two sentences after every layer.",
        f"in S1 and S2 everything before “bank” is the same, so {decoder.info.name}, which never sees what comes after, gives "
        f"“bank” the same vector in both (cosine {same_gpt.min():.3f} at every layer), as does {encoder.info.name} under a "
        f"causal mask; {encoder.info.name} as trained sees “deposit money” and “catch some fish” and pulls them apart "
        f"(down to {same_bert.min():.2f}).",
        lambda: lab_families.bert_vs_gpt(encoder, decoder, "lesson_gpt", probe=False),
    )
    if decoder.info.name.startswith(lab_ui.RANDOM_PREFIX):
        st.caption(lab_ui.RANDOM_NOTE.format(name=decoder.info.name, title=decoder.info.title))
    st.page_link("pages/bidirectional_vs_causal.py", label="BERT beside GPT, with the corpus sense probe of both", icon="↔️")
elif step == "Word sense":
    sentences = BANK + [t for t in [st.session_state.get("text", "").strip()] if t not in BANK and re.search(r"\bbank\b", t, re.I)]
    sense = lab_ui.senses(loaded, "bank", sentences)
    # the pairs the text talks about: money vs fish (same left context), money vs river (different senses)
    pairs = [(0, 1), (0, 2)] + [(0, i) for i in range(len(BANK), len(sentences))]
    floor = min(0.0, min(float(s[:, i, j].min()) for s in sense.similarity.values() for i, j in pairs))

    def curves() -> None:
        for col, (i, j) in zip(st.columns(len(pairs)), pairs):
            with col:
                lab_ui.chart(figures.similarity_by_layer(sense, i, j, floor=floor), key=f"lesson_sense_{i}_{j}")
        st.caption("  \n".join(f"S{i}: {sentence}" + (" (your text)" if i > len(BANK) else "")
                                for i, sentence in enumerate(sentences, start=1)))

    lay_out(
        "Because every layer mixes in context, the vector for a word depends on its sentence: “bank” of money "
        "and “bank” of a river can drift apart, layer by layer. Each chart is the cosine of “bank” in two "
        "sentences after every layer, under both masks.",
        notice.word_sense(sense, pairs),
        curves,
    )
    shipped = corpora.shipped_corpus()
    st.markdown(
        f"Over many sentences: for each of the {len(shipped):,} sentences of bertlab's corpus "
        f"({len(shipped.vocabulary)} ambiguous words, two senses each), is the nearest other sentence with the same "
        "word of the same sense? That **sense probe** shows the layer where the model separates senses, and what the "
        "causal mask costs: half the sentences settle the sense only after the word."
    )
    corpus_index = lab_ui.corpus_index(loaded, shipped)
    sense_probe = corpora.probe(corpus_index)
    lab_ui.chart(figures.probe_curve(sense_probe), key="lesson_probe")
    st.info(f"**What to notice in the probe:** {sense_probe.describe()} The dashed line is always guessing the more "
            "common sense.", icon="👀")
else:
    explanation = ("Pre-training task 2, **next sentence prediction**: for half the pairs B really followed A (IsNext), for "
                   "half it was a random sentence. A head on the pooled `[CLS]` vector predicts which. BERT was "
                   "pre-trained on BooksCorpus (800M words) and English Wikipedia (2,500M words).")
    if step_model is None:
        lay_out(explanation, f"{loaded.info.name} has no next-sentence head, so it cannot score a pair: the machinery is "
                "shown with random weights (the switch above), for this step only.",
                lambda: lab_ui.missing_head(loaded, "nsp", offer=False))
    else:
        scored = lab_ui.analysis(step_model)
        if scored.nsp is None or not scored.encoding.pair:
            lay_out(explanation, "add a second sentence in the sidebar (segment B): the head scores whether it follows the first.",
                    lambda: st.info("Add a second sentence in the sidebar to see P(IsNext)."), step_model)
        else:
            def gauge() -> None:
                lab_ui.chart(figures.nsp_gauge(scored.nsp), key="lesson_nsp")
                st.metric("P(IsNext)", f"{scored.nsp:.3f}")

            lay_out(explanation, notice.nsp(scored.nsp), gauge, step_model)

back_bottom, _, next_bottom = st.columns([1, 4, 1])
nav(back_bottom, next_bottom, index)
