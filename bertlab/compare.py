"""Two checkpoints on the same text: which pieces each makes of a word, and how alike its hidden states are.

Tokenizations differ (cased vs uncased, another vocabulary), so a word is matched by its characters:
the pieces of each tokenization that cover the same characters of the same segment, pooled by their
mean at every layer (as the word-sense view pools a word split into pieces).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .analysis import Analysis, Prediction
from .errors import InputError
from .metrics import cosine
from .tokens import Encoding


@dataclass
class WordComparison:
    """One word of the text in two models."""

    word: str
    pieces: tuple[list[str], list[str]]
    """The word's WordPieces in model A and in model B."""
    cosine: np.ndarray | None
    """(layer + 1,): cosine between the two models' vectors of the word at each layer (0 = embeddings), up to
    the shallower model; None when the hidden sizes differ (the vectors live in different spaces)."""
    kind: str


def word_span(encoding: Encoding, position: int) -> tuple[int, int, int]:
    """(segment, start, end): the characters of the whole word around a token, its `##` pieces included."""
    tokens = encoding.tokens
    if not 0 <= position < len(tokens) or tokens[position].special:
        raise InputError("Pick a word of the text, not [CLS], [SEP] or padding.")
    first = last = position
    while first > 0 and tokens[first].continuation and not tokens[first - 1].special:
        first -= 1
    while last + 1 < len(tokens) and tokens[last + 1].continuation:
        last += 1
    return tokens[position].segment, tokens[first].start, tokens[last].end


def pieces_at(encoding: Encoding, segment: int, start: int, end: int) -> list[int]:
    """Positions of the tokens of `segment` that cover any of the characters [start, end)."""
    return [t.position for t in encoding.tokens if not t.special and t.segment == segment and t.start < end and t.end > start]


def compare_word(a: Analysis, b: Analysis, position: int, kind: str = "bidirectional") -> WordComparison:
    """The word at `position` of A's tokens, found in B by its characters, and its cosine across the models."""
    if a.encoding.text != b.encoding.text or a.encoding.pair != b.encoding.pair:
        raise InputError("Both analyses must be of the same text.")
    segment, start, end = word_span(a.encoding, position)
    in_a, in_b = pieces_at(a.encoding, segment, start, end), pieces_at(b.encoding, segment, start, end)
    source = a.encoding.text if segment == 0 else a.encoding.pair or ""
    if not in_b:
        raise InputError(f"'{source[start:end]}' is cut off in the second model's input (it reads fewer positions).")
    pieces = ([a.tokens[p].text for p in in_a], [b.tokens[p].text for p in in_b])
    hidden_a, hidden_b = a.runs[kind].hidden_states, b.runs[kind].hidden_states
    if hidden_a.shape[-1] != hidden_b.shape[-1]:
        return WordComparison(source[start:end], pieces, None, kind)
    layers = min(hidden_a.shape[0], hidden_b.shape[0])
    vector_a = hidden_a[:layers, in_a].mean(1)  # (layer + 1, hidden): the word as the mean of its pieces
    vector_b = hidden_b[:layers, in_b].mean(1)
    return WordComparison(source[start:end], pieces, cosine(vector_a, vector_b), kind)


@dataclass
class Guess:
    """One model's guess for one word of the text: its top piece, and the probability it gave the real one."""

    top: Prediction
    actual: float


@dataclass
class FillOrNext:
    """One word of the text, guessed two ways: BERT fills a blank there (it sees both sides), GPT guesses it as
    the next token (it sees only what came before)."""

    word: str
    start: int
    encoder: Guess | None
    """The encoder with this word masked alone (mask-each-token): its top guess and P(the word's first piece)."""
    decoder: Guess | None
    """The decoder after the words before it: its top next-token guess and P(the word's first piece); None for the
    first word, which nothing comes before."""

    def to_dict(self) -> dict:
        guess = lambda g: None if g is None else {"top": g.top.to_dict(), "actual": round(g.actual, 6)}  # noqa: E731
        return {"word": self.word, "start": self.start, "encoder": guess(self.encoder), "decoder": guess(self.decoder)}


def fill_and_next(encoder: Analysis, each, decoder: Analysis) -> list[FillOrNext]:
    """Each word of segment A, matched by its first character across the two tokenizations: the encoder's
    mask-each-token guess at its first piece (`each`, a bertlab.mlm.MaskEach under the bidirectional mask) beside
    the decoder's next-token guess made at the piece before it (Analysis.next_token)."""
    if encoder.encoding.text != decoder.encoding.text:
        raise InputError("Both analyses must be of the same text.")
    if decoder.next_token is None:
        raise InputError(f"'{decoder.model.name}' predicts no next token: the second model must be a decoder such as gpt2.")
    scored = dict(zip(each.positions, zip(each.top, np.exp(each.log_probs).tolist())))
    text = encoder.encoding.text
    rows = []
    for token in encoder.tokens:
        if token.special or token.continuation or token.segment != 0:
            continue
        _, start, end = word_span(encoder.encoding, token.position)
        bert = Guess(*scored[token.position]) if token.position in scored else None
        covering = [t for t in decoder.tokens if not t.special and t.segment == 0 and t.start <= start < max(t.end, t.start + 1)]
        gpt = None
        if covering and covering[0].position > 0:
            before = decoder.next_token[covering[0].position - 1]
            gpt = Guess(before["top"][0], before["actual"].prob)
        rows.append(FillOrNext(text[start:end], start, bert, gpt))
    return rows
