import streamlit as st

import lab_families
import lab_ui
from bertlab import figures, rank_guess

running = lab_ui.model()
if "lm" in running.info.heads_available:  # a decoder: no blank to fill, the next token to guess
    lab_families.next_token_view(running)
    st.stop()
if "rtd" in running.info.heads_available:  # ELECTRA's discriminator: which tokens were replaced
    lab_families.replaced_view(running)
    st.stop()
lab_ui.header(
    "Masked language model",
    "BERT was pre-trained to fill in blanks: 15% of the input tokens were chosen, and of those 80% became "
    "`[MASK]`, 10% a random token and 10% stayed unchanged; the **MLM head** (a dense layer, GELU, LayerNorm, "
    "then a projection onto the vocabulary tied to the token embeddings) predicts the original. Type "
    "`[MASK]` in the text or pick tokens to mask below.",
    "how confident the guesses are and whether they fit both sides of the blank (with trained weights they usually do); in the mask-each-token "
    "chart, which words the context makes predictable; in the logit lens, the layer where the answer appears.",
)
loaded = lab_ui.model_with_head("mlm")

base = lab_ui.encoding()
choices = {f"{t.position}:{t.text}": t.position for t in base.tokens if not t.special}
# labels are the options themselves, so the URL holds them (?masked=2:cat) and a link reproduces the view
masked = st.multiselect(
    "Mask these tokens", list(choices), key="masked", bind="query-params",
    help="position:piece. Each chosen token is replaced by [MASK] before the forward pass.",
)
top_k = st.slider("Top-k", 1, 20, 5, key="top_k")
result = lab_ui.analysis(masked=tuple(choices[m] for m in masked if m in choices), top_k=top_k)

predict_first = st.toggle(
    "Predict, then reveal", key="predict", bind="query-params",
    help="Hide BERT's guesses until you have typed yours; then see where your guess ranks.",
)
if not result.mask_positions:
    st.info("There is no [MASK] yet: type [MASK] in the text, or pick tokens to mask above.")
for position in result.mask_positions:
    original = base.tokens[position].text
    label = f"[MASK] at position {position}" + (f" (was “{original}”)" if original != "[MASK]" else "")
    if predict_first:
        guess = st.text_input(f"Your guess for {label}", key=f"guess{position}", placeholder="type a word, then Enter")
        if not guess.strip():
            st.caption("BERT's predictions stay hidden until you guess.")
            continue
        scored = lab_ui.guarded(lambda: rank_guess(loaded, result, position, guess))
        st.success(
            f"“{scored.text}” is BERT's guess number **{scored.rank:,}** of {loaded.info.vocab_size:,} "
            f"(probability {scored.prob:.3f})"
            + (f"; scored by its first WordPiece “{scored.token}”." if scored.pieces > 1 else "."),
            icon="🎯",
        )
    lab_ui.chart(
        figures.prediction_bars(result.predictions(position), label),
        key=f"mlm{position}",
    )

st.subheader("Mask each token")
st.caption(
    "Every ordinary token is masked alone and scored: log P of the original token given the rest "
    f"(pseudo-log-likelihood). It costs one batched pass of {len(choices)} rows, so it runs on request."
)
c1, c2 = st.columns([1, 3])
show_each = c1.toggle("Mask each token", key="mask_each", bind="query-params")
each_kind = c2.radio("Mask type", ["bidirectional", "causal"], horizontal=True, key="each_kind", disabled=not show_each)
if show_each:
    each = lab_ui.mask_each(loaded, result, each_kind)
    lab_ui.chart(figures.mask_each_chart(result.tokens, each, lab_ui.token_window(result.tokens)), key="mask_each_chart")

st.subheader("Logit lens")
default = result.mask_positions[0] if result.mask_positions else next(iter(choices.values()), 0)
position = st.selectbox(
    "Position", [t.position for t in result.tokens], index=default, key="lens_position",
    format_func=lambda p: f"{result.tokens[p].text} (position {p})",
)
lens = lab_ui.logit_lens(loaded, result, position)
lab_ui.chart(figures.logit_lens_chart(lens, f"{result.tokens[position].text} (position {position})"), key="lens")
lab_ui.notes(result)
