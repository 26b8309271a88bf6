""""What to notice" under a chart, measured from the data the chart draws.

A lesson's text must hold for the model on screen: trained BERT, the offline MiniLM and random weights draw
different pictures, so every sentence here is computed from the same arrays the figure builders get (and
names what is drawn: the longest bar, the darkest cell, the value at the end of a line). Pure functions; the
guided lesson (pages/guided_lesson.py) shows them.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .analysis import Embeddings, Prediction
from .senses import Senses
from .tokens import Encoding, Token

Window = slice


def _q(text: str) -> str:
    return f"“{text}”"


def tokens(encoding: Encoding) -> str:
    """Which words split into pieces, and the special tokens, in this text."""
    toks = encoding.tokens
    words: list[list[str]] = []
    for t in toks:
        if t.continuation and words:
            words[-1].append(t.text)
        elif not t.special:
            words.append([t.text])
    split = [" ".join(w) for w in words if len(w) > 1]
    specials = [f"{t.text} at {t.position}" for t in toks if t.special]
    unknown = sum(t.unknown for t in toks)
    said = f"{len(toks)} tokens here. " + (
        f"{len(split)} word(s) split into pieces: {', '.join(_q(s) for s in split[:4])}{' …' if len(split) > 4 else ''}. "
        if split else "No word is split: every word is in the vocabulary whole. ")
    said += f"The model adds {', '.join(specials)}."
    if unknown:
        said += f" {unknown} character(s) it cannot spell became [UNK]."
    return said


def embeddings(toks: Sequence[Token], e: Embeddings, window: Window | None = None) -> str:
    """The bar chart of vector lengths: which part is longest where, and what LayerNorm does to the sums."""
    w = window or slice(None)
    shown = list(toks)[w]
    from .figures import embedding_parts

    lengths = {name: np.linalg.norm(value[w], axis=-1) for name, value in embedding_parts(e)}
    said = ""
    if "position" in lengths:
        position = lengths["position"]
        top = int(np.argmax(position))
        others = np.delete(position, top)
        said = (f"the position vector of {_q(shown[top].text)} (position {shown[top].position}) is the longest of its kind, "
                f"{position[top]:.2f}" + (f", against {others.mean():.2f} on average for the other tokens" if others.size else "") + "; ")
    token = lengths["token"]
    said += f"the token vectors run from {token.min():.2f} to {token.max():.2f}. "
    summed = lengths["sum"]
    normed = next((v for name, v in lengths.items() if name.startswith("LayerNorm")), None)
    if normed is None:
        return said + f"The sums measure {summed.min():.1f}–{summed.max():.1f} and go to the first layer as they are."
    said += (f"The sums measure {summed.min():.1f}–{summed.max():.1f}; after LayerNorm, {normed.min():.1f}–{normed.max():.1f}: "
             f"LayerNorm rescales every token's vector to variance 1, then applies its own learned scale.")
    return said


def attention(toks: Sequence[Token], attentions: np.ndarray, row: np.ndarray) -> str:
    """The all-heads grid and one head's row: how many heads attend along the diagonal next to it, how many park
    their weight on [CLS]/[SEP], and how sharp the row worked out below is."""
    a = np.asarray(attentions, dtype=np.float32)  # (layer, head, query, key)
    layers, heads, n, _ = a.shape
    neighbour = (np.diagonal(a, offset=1, axis1=2, axis2=3).sum(-1) + np.diagonal(a, offset=-1, axis1=2, axis2=3).sum(-1)) / max(n, 1)
    special = [t.position for t in toks if t.special]
    parked = a[..., special].sum(-1).mean(-1) if special else np.zeros((layers, heads))
    total = layers * heads
    said = (f"{int((neighbour >= 0.5).sum())} of these {total} heads put half or more of each row on the previous or next token "
            f"(a diagonal beside the middle), and {int((parked >= 0.5).sum())} put half or more on [CLS] or [SEP] (dark columns at "
            f"the edges), where spreading evenly would give them {min(2, n - 1) / max(n, 1):.0%} and {len(special) / max(n, 1):.0%}. ")
    order = np.argsort(row)[::-1]
    top = order[: min(3, len(order))]
    said += (f"In the row worked out below, the top key, {_q(toks[int(order[0])].text)}, takes {row[order[0]]:.0%} "
             f"and the {len(top)} largest {row[top].sum():.0%} (an even row would give each key {1 / max(len(row), 1):.0%}).")
    return said


def layers(toks: Sequence[Token], shares: dict[str, np.ndarray], window: Window | None = None) -> str:
    """The two share heatmaps: the darkest cell of each, and how large a typical update is."""
    w = window or slice(None)
    shown = list(toks)[w]
    parts = []
    for name, label in (("attention", "attention"), ("ffn", "feed-forward")):
        z = np.asarray(shares[name])[:, w]
        layer, position = np.unravel_index(int(np.argmax(z)), z.shape)
        parts.append(f"{label}: largest for {_q(shown[position].text)} in layer {layer} ({z.max():.2f}), "
                     f"half the cells below {np.median(z):.2f}")
    return ("the colour runs from 0 (the sublayer adds nothing: the token passes as it was) through 0.5 (the update is as "
            "long as the token's vector) to 1 (the update drowns it). " + "; ".join(parts) + ".")


def mlm(position: int, predictions: dict[str, list[Prediction]]) -> str:
    """The top guesses for one [MASK] under each mask, as the bars show them."""
    said = []
    for kind, preds in predictions.items():
        if preds:
            said.append(f"{kind}: {_q(preds[0].token)} with probability {preds[0].prob:.2f}")
    return (f"the top guess for the [MASK] at position {position}, " + "; ".join(said) + ". With trained weights the "
            "bidirectional guesses fit the words on both sides; the causal ones see only the left.")


def masking(toks: Sequence[Token], distance: np.ndarray, window: Window | None = None) -> str:
    """The two masks and the divergence heatmap: where the hidden states move apart most."""
    w = window or slice(None)
    shown = list(toks)[w]
    z = np.asarray(distance)[:, w]
    state, position = np.unravel_index(int(np.argmax(z)), z.shape)
    where = "the embeddings" if state == 0 else f"layer {state - 1}"
    first = float(np.asarray(distance)[0].max())
    return (f"the causal mask is a triangle: nothing above the diagonal. Below, the darkest cell is {_q(shown[position].text)} "
            f"after {where} (1 − cosine = {z.max():.3f}); at the embeddings every token is the same under both masks "
            f"(largest {first:.1e}), because a mask acts only inside attention.")


def word_sense(result: Senses, pairs: Sequence[tuple[int, int]]) -> str:
    """The cosine curves of the sentence pairs drawn, read at their last layer, under each mask."""
    last = result.layers - 1
    said = []
    for i, j in pairs:
        values = ", ".join(f"{kind} {sim[last, i, j]:.3f}" for kind, sim in result.similarity.items())
        said.append(f"S{i + 1} vs S{j + 1}: {values}")
    causal = result.similarity.get("causal")
    same_left = ""
    if causal is not None and pairs:
        i, j = pairs[0]
        low = float(causal[:, i, j].min())
        same_left = (f" Under the causal mask, S{i + 1} and S{j + 1} share everything left of “{result.target}”, so their "
                     f"cosine stays at {low:.3f} or above at every layer.") if low > 0.999 else ""
    return ("after the last layer, " + "; ".join(said) + "." + same_left +
            " Bidirectionally the words after the target can pull two uses apart; how far depends on the weights.")


def nsp(probability: float) -> str:
    """The NSP head's answer for the pair in the sidebar."""
    verdict = "IsNext" if probability >= 0.5 else "NotNext"
    return (f"for your pair the head says {verdict}: P(IsNext) = {probability:.3f}. With trained weights a real "
            "continuation usually scores higher than an unrelated sentence; change the second sentence and compare.")
