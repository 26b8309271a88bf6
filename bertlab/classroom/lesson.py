"""The guided lesson's steps as a class follows them: a short summary for the phone, and a check per step with
hints that come one at a time. Answers are computed from the live analysis of the class's text where they
can be (how many tokens, which key a head weights most, BERT's top guess, which keys the causal mask blocks,
whether "bank" is the same vector under the causal mask); the rest are facts of BERT's design."""

from __future__ import annotations

import numpy as np

from ..analysis import Analysis
from ..loading import LoadedModel
from ..senses import senses
from ..tokens import encode

STEPS = ("Tokens", "Three embeddings", "Attention", "Layers", "Masked LM", "Bidirectional vs causal", "BERT vs GPT", "Word sense",
         "Next sentence")
"""The guided lesson's steps, in its order (pages/guided_lesson.py; a test keeps the two lists equal)."""
SUMMARIES = {
    "Tokens": "BERT reads WordPieces: words it does not hold whole are split into pieces (## marks a continuation), "
              "framed as [CLS] A [SEP] (B [SEP]).",
    "Three embeddings": "Each token starts as the sum of three learned vectors, token + segment + position, then LayerNorm.",
    "Attention": "In every layer each head turns softmax(QKᵀ/√d) into a row of weights per token, and mixes the tokens' values by them.",
    "Layers": "A layer is attention then a feed-forward block, each added to the residual stream and normalised (post-norm).",
    "Masked LM": "Pre-training task 1: some tokens become [MASK] and BERT predicts them from both sides.",
    "Bidirectional vs causal": "BERT's mask lets every token see both sides; a GPT-style causal mask lets it see only its left.",
    "BERT vs GPT": "GPT-2 was trained to predict the next token: it reads left to right by design, so “bank” in two "
                   "sentences that share their start is the same vector, whatever follows; BERT reads both sides.",
    "Word sense": "Context changes a word's vector layer by layer: “bank” of money and “bank” of a river drift apart.",
    "Next sentence": "Pre-training task 2: does sentence B follow sentence A? Segment ids tell BERT which sentence a token is in.",
}
BANK = ("I went to the bank to deposit money.", "I went to the bank to catch some fish.")
"""The lesson's pair with the same left context (pages/guided_lesson.py)."""


def check(loaded: LoadedModel, analysis: Analysis, step: int) -> tuple[str, dict]:
    """The check for lesson step `step` on the class's analysed text: (question, spec) with `options` (or none
    for a typed answer), `correct`, `hints` in order, `answer_kind` ('choice', 'token', 'number' or 'text')."""
    name = STEPS[step]
    tokens = analysis.tokens
    spec: dict = {"step": step, "step_name": name, "model": loaded.info.name}
    if name == "Tokens":
        pieces = sum(not t.special for t in tokens)
        question = f"How many tokens does BERT read for “{analysis.encoding.text}”? Count [CLS] and [SEP] too."
        spec |= {"answer_kind": "number", "correct": [str(len(tokens))], "hints": [
            "BERT adds [CLS] before the text and [SEP] after it (and after a second sentence).",
            "A word it does not hold whole is split: each piece, ## pieces included, is a token of its own.",
            f"The text splits into {pieces} pieces before the special tokens are added.",
        ]}
    elif name == "Three embeddings":
        has_segment = "segment" in analysis.embeddings.parts
        right = "token + segment + position" if has_segment else "token + position"
        question = "Which vectors does the model running here add up for each token before its first layer?"
        spec |= {"answer_kind": "choice", "options": ["query + key + value", "token + segment + position", "token + position",
                                                      "token + attention + position"], "correct": [right], "hints": [
            "One vector says which WordPiece it is; one says where it stands.",
            "A third says whether it belongs to sentence A or B (DistilBERT has none).",
        ]}
    elif name == "Attention":
        layer = loaded.info.layers // 2
        query = (analysis.mask_positions or [min(1, len(tokens) - 1)])[0]
        row = np.asarray(analysis.bidirectional.attention(layer, 0, query), dtype=np.float64)
        best = int(row.argmax())
        question = f"Layer {layer}, head 0: which token does “{tokens[query].text}” give the most attention weight?"
        spec |= {"answer_kind": "token", "options": [t.label for t in tokens], "tokens": [t.text for t in tokens],
                 "query": query, "correct": [tokens[best].label], "hints": [
            "The weights of one row sum to 1: look for the largest share.",
            "Many heads put much of their weight on [CLS], [SEP] or a neighbouring token.",
            f"The largest weight is {row[best]:.0%} of the row.",
        ]}
    elif name == "Layers":
        question = "How many encoder layers does the model running here have?"
        spec |= {"answer_kind": "number", "correct": [str(loaded.info.layers)], "hints": [
            "BERT-base has 12 and BERT-large 24; smaller models have fewer.",
            "The line at the top of every page names the running model and its layers.",
        ]}
    elif name == "Masked LM" and "mlm" in loaded.info.heads_available and analysis.mask_positions:
        position = analysis.mask_positions[0]
        top = analysis.predictions(position)["bidirectional"][0]
        question = f"What is the model's top guess for the [MASK] at position {position}?"
        spec |= {"answer_kind": "text", "correct": [top.token], "hints": [
            "The guess must fit the words on both sides of the blank.",
            f"It starts with “{top.token[:1]}”.",
            f"The model gives it {top.prob:.0%}.",
        ]}
    elif name == "Masked LM":
        question = "In pre-training, what share of the tokens does BERT choose to predict?"
        spec |= {"answer_kind": "choice", "options": ["5%", "15%", "50%", "100%"], "correct": ["15%"], "hints": [
            "Few enough that the rest of the sentence is still there to predict from.",
            "Of the chosen ones, 80% become [MASK], 10% a random token and 10% stay as they are.",
        ]}
    elif name == "Bidirectional vs causal":
        query = max(1, (len(tokens) - 1) // 2)
        allowed = analysis.causal.allowed[query]
        question = f"Under the causal mask, tap a token that “{tokens[query].text}” cannot see."
        spec |= {"answer_kind": "token", "options": [t.label for t in tokens], "tokens": [t.text for t in tokens],
                 "query": query, "correct": [t.label for t, a in zip(tokens, allowed) if not a], "hints": [
            "A causal mask lets a token see itself and the tokens to its left.",
            "Every token to its right is blocked: its weight is exactly 0.",
        ]}
    elif name == "BERT vs GPT":
        question = f"GPT-2 reads “{BANK[0]}”. When it computes “bank”, which words can it use?"
        spec |= {"answer_kind": "choice", "options": ["only “bank” and the words before it", "every word of the sentence",
                                                      "only the words after “bank”"],
                 "correct": ["only “bank” and the words before it"], "hints": [
            "GPT-2 was trained to guess the next token, so it must never see the tokens it guesses.",
            "Its mask is causal by design: a token sees itself and its left.",
        ]}
    elif name == "Word sense":
        result = senses(loaded, "bank", list(BANK))
        cosine = float(result.similarity["causal"][-1][0, 1])
        same = cosine > 0.9999
        question = f"Under the causal mask, is “bank” in “{BANK[0]}” the same vector as in “{BANK[1]}”?"
        spec |= {"answer_kind": "choice", "options": ["the same", "different"], "correct": ["the same" if same else "different"],
                 "hints": [
            "Under the causal mask a token sees only what comes before it.",
            "Compare the words before “bank” in the two sentences.",
        ]}
    else:  # Next sentence
        pair = encode(loaded, "I have a pen", "the pen is red")
        first_sep = next(t.position for t in pair.tokens if t.text == "[SEP]" or t.special and t.position > 0)
        segment = pair.tokens[first_sep + 1].segment
        question = "Which segment id do the tokens of the second sentence (B) get?"
        spec |= {"answer_kind": "choice", "options": ["0", "1", "2"], "correct": [str(segment)], "hints": [
            "Sentence A and its [CLS] and first [SEP] get the first id.",
            "Ids count from 0.",
        ]}
    return question, spec
