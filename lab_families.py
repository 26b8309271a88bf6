"""Views a page shows in place of BERT's where another family runs, and BERT beside GPT: GPT-2's next-token
guesses (the Masked LM page on a decoder), ELECTRA's replaced-token detection (on its discriminator), and the
comparison of an encoder with a decoder on the same sentences (the Bidirectional vs causal page and the lesson).

Streamlit-side, like lab_ui: every number comes from the engine (bertlab.analysis, bertlab.compare, bertlab.corpus).
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import streamlit as st

import bertlab
import lab_ui
from bertlab import compare, figures
from bertlab import corpus as corpora
from bertlab.loading import RANDOM_PREFIX

BANK = ["I went to the bank to deposit money.", "I went to the bank to catch some fish.", "The river bank was very scenic."]
"""The seeds' sentences: 1 and 2 share everything before "bank"; 3 is the other sense."""


def fill_model() -> bertlab.LoadedModel | None:
    """An encoder with an MLM head to fill blanks beside a decoder: BERT-base where this server can load it, else
    its shape with random weights (labelled so where it is shown)."""
    for name in (bertlab.DEFAULT_MODEL, lab_ui.MECHANICS_MODEL):
        if lab_ui.allowed(name):
            loaded = lab_ui.model_or_none(name, show=False)
            if loaded is not None and "mlm" in loaded.info.heads_available:
                return loaded
    return None


def decoder_name() -> str:
    """GPT-2 where this server can load it, else GPT-2 small's shape with random weights."""
    loaded = lab_ui.model_or_none(lab_ui.DECODER, show=False) if lab_ui.allowed(lab_ui.DECODER) else None
    return lab_ui.DECODER if loaded is not None else f"{RANDOM_PREFIX}{lab_ui.DECODER}"


def next_token_view(loaded: bertlab.LoadedModel) -> None:
    """The Masked LM page on a decoder: at each position, the model's guesses for the token after it, and beside
    them, word by word, an encoder's guesses for a blank at the same spot."""
    lab_ui.header(
        "Next-token prediction",
        f"**{loaded.info.name}** is a decoder: trained to predict the **next** token, causal by design. At every "
        "position it has seen only the tokens before (and the one there), and its head (the final LayerNorm, then the "
        "token embeddings, tied) gives a distribution over the piece that comes next. It has no mask token: there is "
        "no blank to fill. GPT guesses what comes next; BERT fills the blank.",
        "how the guesses sharpen as more of the sentence has been seen, and where the real next token ranks. In the "
        "table below, the same words guessed both ways: BERT sees both sides of the blank, GPT only the left.",
    )
    result = lab_ui.analysis(loaded)
    tokens = result.tokens
    if len(tokens) < 2:
        st.info("Type a longer text: a guess needs a token before the one it guesses.")
        st.stop()
    position = lab_ui.token_picker("After this token (tap one)", tokens[:-1], key="after", default=max(0, len(tokens) // 2 - 1),
                                   help="The model's guesses for the token that comes next.")
    entry = result.next_token[position]
    actual = entry["actual"]
    lab_ui.chart(figures.prediction_bars({"next token": entry["top"]}, f"after “{tokens[position].shown}”: the next token"),
                 key="next_token")
    if actual is not None:
        st.caption(f"What really comes next: “{tokens[position + 1].shown}”, to which the model gave probability "
                   f"{actual.prob:.3f}" + (" (its top guess)." if entry["top"][0].id == actual.id else "."))
    st.subheader("GPT guesses what comes next; BERT fills the blank")
    encoder = fill_model()
    if encoder is None:
        st.info("No encoder with a masked-LM head can be loaded on this server to fill the blanks beside it.")
        return
    encoded = lab_ui.analysis(encoder)
    each = lab_ui.mask_each(encoder, encoded, "bidirectional")
    rows = lab_ui.guarded(lambda: compare.fill_and_next(encoded, each, result))
    table = pd.DataFrame([{
        "word": r.word,
        f"{encoder.info.name}: blank filled with": None if r.encoder is None else r.encoder.top.token,
        "P(the word), BERT": None if r.encoder is None else round(r.encoder.actual, 4),
        f"{loaded.info.name}: next token guessed": None if r.decoder is None else r.decoder.top.token,
        "P(the word), GPT": None if r.decoder is None else round(r.decoder.actual, 4),
    } for r in rows])
    st.dataframe(table, hide_index=True, width="stretch")
    both = [r for r in rows if r.encoder is not None and r.decoder is not None]
    if both:
        ahead = sum(r.encoder.actual > r.decoder.actual for r in both)
        st.caption(f"For {ahead} of {len(both)} words the blank-filler gave the real word more probability than the "
                   "next-token guesser: it also saw the words after it. (The first word has nothing before it for GPT.)")
    lab_ui.random_weights_note(encoder)
    lab_ui.notes(result)


def replaced_view(loaded: bertlab.LoadedModel) -> None:
    """The Masked LM page on ELECTRA's discriminator: P(replaced) for every token, on the text and on a copy with
    one word swapped, so a wrong word lights up."""
    lab_ui.header(
        "Replaced-token detection",
        f"**{loaded.info.name}** is ELECTRA's discriminator. ELECTRA was pre-trained without `[MASK]`: a small generator "
        "(itself a masked LM) replaced some tokens of the text with plausible guesses, and the discriminator learned to "
        "say, for **every** token, whether it was replaced. So it learns from every position, not only the 15% masked.",
        "type a word that does not belong (or pick one below and swap it): with trained weights its bar rises towards 1, "
        "the others stay low.",
    )
    result = lab_ui.analysis(loaded)
    lab_ui.chart(figures.replaced_bars(result.replaced), key="replaced")
    words = [t for t in result.tokens if not t.special and not t.continuation and t.segment == 0]
    if not words:
        return
    c1, c2 = st.columns([2, 1])
    with c1:
        swap = lab_ui.token_picker("Swap this word", words, key="swap_word", default=min(2, len(words) - 1))
    replacement = c2.text_input("for", key="swap_with", placeholder="another word")
    if replacement.strip():
        chosen = result.tokens[swap]
        start, end = compare.word_span(result.encoding, swap)[1:]
        text = result.encoding.text
        swapped = text[:start] + replacement.strip() + text[end:]
        other = lab_ui.compute(loaded, "analysis_swapped", (swapped,), lambda: bertlab.analyze(loaded, swapped).compact())
        lab_ui.chart(figures.replaced_bars(other.replaced, f"with “{chosen.shown}” swapped for “{replacement.strip()}”"),
                     key="replaced_swapped")
        st.caption(f"The sentence now reads: “{swapped}”.")
    lab_ui.notes(result)


# --- BERT beside GPT -------------------------------------------------------------------------------------------


def _pair_cosine(senses: bertlab.Senses, kind: str, i: int, j: int) -> np.ndarray:
    return senses.similarity[kind][:, i, j]


def bert_vs_gpt(encoder: bertlab.LoadedModel, decoder: bertlab.LoadedModel, key: str, probe: bool = True) -> dict:
    """The same sentences in an encoder and a decoder: what each token can see, "bank" in the seeds' sentences
    layer by layer (BERT, BERT under a causal mask, GPT), and the corpus sense probe for both, split by where
    the clue is. Returns the curves drawn (for what-to-notice texts and tests)."""
    text = st.session_state.get("text", "").strip()
    sentences = BANK + ([text] if text and text not in BANK and re.search(r"\bbank\b", text, re.I) else [])
    bert = lab_ui.senses(encoder, "bank", sentences)
    gpt = lab_ui.compute(decoder, "senses_causal", ("bank", tuple(sentences)),
                         lambda: bertlab.senses(decoder, "bank", sentences, mask_types=("causal",)),
                         spinner="Running {model} on every sentence…")
    names = (encoder.info.name, decoder.info.name)
    same_left = {f"{names[0]} (bidirectional)": _pair_cosine(bert, "bidirectional", 0, 1),
                 f"{names[0]} under a causal mask": _pair_cosine(bert, "causal", 0, 1),
                 f"{names[1]} (GPT, causal by design)": _pair_cosine(gpt, "causal", 0, 1)}
    senses = {f"{names[0]} (bidirectional)": _pair_cosine(bert, "bidirectional", 0, 2),
              f"{names[0]} under a causal mask": _pair_cosine(bert, "causal", 0, 2),
              f"{names[1]} (GPT, causal by design)": _pair_cosine(gpt, "causal", 0, 2)}
    left, right = st.columns(2)
    with left:
        lab_ui.chart(figures.sense_curves(same_left, "“bank” in S1 and S2: the same words before it"), key=f"{key}_same")
    with right:
        lab_ui.chart(figures.sense_curves(senses, "“bank” in S1 and S3: money and river"), key=f"{key}_senses")
    st.caption("  \n".join(f"S{i}: {s}" + (" (your text)" if i > len(BANK) else "") for i, s in enumerate(sentences, start=1)))
    drawn = {"same_left": same_left, "senses": senses}
    if probe:
        drawn["probe"] = probe_view(encoder, decoder, key)
    return drawn


def probe_view(encoder: bertlab.LoadedModel, decoder: bertlab.LoadedModel, key: str) -> dict:
    """The corpus sense probe for both models over the sentences whose clue comes only after the word (and, for
    reference, before it)."""
    shipped = corpora.shipped_corpus()
    bert = corpora.probe(lab_ui.corpus_index(encoder, shipped))
    gpt = corpora.probe(lab_ui.corpus_index(decoder, shipped, mask_types=("causal",)))
    curves = {}
    for order, clue in (("after", "clue after the word"), ("before", "clue before it")):
        curves[f"{encoder.info.name}, {clue}"] = bert.by_order[order]["bidirectional"]
        curves[f"{decoder.info.name} (GPT), {clue}"] = gpt.by_order[order]["causal"]
    lab_ui.chart(figures.probe_by_order(curves, bert.baseline, "sense probe over bertlab's corpus: is the nearest other "
                                        "sentence's “bank”, “bat”... of the same sense?"), key=f"{key}_probe")
    best = {name: float(np.max(values[1:])) if len(values) > 1 else float(values[0]) for name, values in curves.items()}
    after = [name for name in curves if "after the word" in name]
    st.caption(f"Where the clue comes only after the word, the best layer of {after[0].split(',')[0]} is right "
               f"{best[after[0]]:.0%} of the time and {after[1].split(',')[0]} {best[after[1]]:.0%} (always guessing "
               f"one sense: {bert.baseline:.0%}). A causal model cannot use what comes after.")
    return curves
