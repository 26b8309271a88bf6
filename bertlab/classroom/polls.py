"""What a poll asks and what the model answers, computed from the live engine when the teacher opens it.

Each builder returns `(prompt, spec)`: the spec holds what a phone shows (options, tokens, the sentence) and
what the projector reveals (the model's top-k, the attention row, the mask row, the corpus vote), as plain
JSON for the store. Students' phones never run the model: everything they see is in the spec.

A token is named by its `Token.label`, "position:text" (unique in its sentence), which is also the answer a
student sends when they tap it.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from .. import masks
from ..analysis import Analysis
from ..corpus import CorpusIndex, neighbors, occurrence
from ..errors import InputError, NoMaskError
from ..loading import LoadedModel
from ..mlm import rank_guess
from .base import Poll, group_key

TOP_K = 10
"""The model's guesses shown beside the room's for a fill-the-blank poll."""
NEIGHBORS = 5
"""Corpus contexts that vote on a which-sense poll."""
MASK_KINDS = ("causal", "window", "prefix-lm")
"""Masks a where-does-the-mask-block poll can ask about (bidirectional blocks nothing)."""
MAX_RANKED = 50
"""Distinct guesses ranked at reveal (the most common first); the rest are counted, not ranked."""


def position_of(label: str) -> int:
    """'4:fox' -> 4."""
    return int(str(label).split(":", 1)[0])


def _tokens(analysis: Analysis) -> dict:
    return {"tokens": [t.text for t in analysis.tokens], "options": [t.label for t in analysis.tokens]}


def fill_poll(loaded: LoadedModel, analysis: Analysis, top_k: int = TOP_K) -> tuple[str, dict]:
    """Fill the blank: the first [MASK] of the analysed sentence, and the model's top-k there (bidirectional)."""
    loaded.require("mlm")
    if not analysis.mask_positions:
        raise NoMaskError("The sentence has no [MASK]: type [MASK] where the room should guess a word.")
    position = analysis.mask_positions[0]
    top = analysis.predictions(position)["bidirectional"][:top_k]
    if len(top) < top_k:  # the analysis was run with a smaller top-k: rank them afresh
        top = _top(loaded, analysis, position, top_k)
    sentence = analysis.encoding.text
    return f"Fill the blank: {sentence}", {
        "sentence": sentence,
        "position": position,
        "top": [{"token": p.token, "prob": round(p.prob, 6)} for p in top],
        "correct": [top[0].token] if top else [],
        "vocab_size": loaded.info.vocab_size,
        "model": loaded.info.name,
    }


def _top(loaded: LoadedModel, analysis: Analysis, position: int, top_k: int):
    from ..analysis import _top_predictions

    hidden = analysis.bidirectional.hidden_tensor[-1, position].to(loaded.device, loaded.dtype)
    return _top_predictions(loaded, hidden[None, None], top_k)[0][0]


def rank_guesses(loaded: LoadedModel, analysis: Analysis, poll: Poll, histogram: dict[str, int]) -> dict:
    """At reveal: each distinct guess's rank and probability among all the model's tokens at the blank
    (bertlab.mlm.rank_guess), for the most common MAX_RANKED guesses. Keys are the histogram's."""
    ranks = {}
    for guess in list(histogram)[:MAX_RANKED]:
        try:
            g = rank_guess(loaded, analysis, poll.spec["position"], guess)
        except InputError as err:
            ranks[guess] = {"error": str(err)}
            continue
        ranks[guess] = {"token": g.token, "rank": g.rank, "prob": g.prob, "pieces": g.pieces}
    return {"ranks": ranks}


def sense_poll(loaded: LoadedModel, index: CorpusIndex, word: str, sentence: str, layer: int, k: int = NEIGHBORS) -> tuple[str, dict]:
    """Which sense? The room picks among the corpus senses of `word`; the model's answer is the vote of the k
    corpus contexts nearest to the word in `sentence` at `layer` (0 = embeddings), bidirectional."""
    query = occurrence(loaded, sentence, word, ("bidirectional",))
    near = neighbors(index, word, query, layer, "bidirectional", k)
    found = index.occurrences(word)
    options = sorted({index.sense(int(i)) for i in found if index.sense(int(i)) is not None})
    if len(options) < 2:
        raise InputError(f"The corpus has fewer than two senses of '{word}': choose another word.")
    return f"Which sense of “{word.strip()}” is this? {sentence.strip()}", {
        "word": word.strip(),
        "sentence": sentence.strip(),
        "layer": near.layer,
        "layers": index.layers,
        "options": options,
        "neighbors": [{"sentence": n.sentence, "sense": n.sense, "cosine": round(n.cosine, 6)} for n in near.neighbors],
        "vote": near.vote,
        "votes": dict(Counter(n.sense for n in near.neighbors if n.sense is not None)),
        "correct": [near.vote] if near.vote else [],
        "model": loaded.info.name,
    }


def head_poll(loaded: LoadedModel, analysis: Analysis, layer: int, head: int, query: int) -> tuple[str, dict]:
    """Which token does this head look at? The room taps a token; the model's answer is the largest weight in
    the head's live attention row for `query` (bidirectional)."""
    info = loaded.info
    if not 0 <= layer < info.layers or not 0 <= head < info.heads:
        raise InputError(f"{info.name} has layers 0–{info.layers - 1} and heads 0–{info.heads - 1}.")
    if not 0 <= query < len(analysis.tokens):
        raise InputError(f"Position {query} is outside the sentence (0–{len(analysis.tokens) - 1}).")
    row = np.asarray(analysis.bidirectional.attention(layer, head, query), dtype=np.float64)
    spec = _tokens(analysis)
    best = int(row.argmax())
    token = analysis.tokens[query].text
    return f"Layer {layer}, head {head}: which token does “{token}” look at most?", {
        **spec,
        "sentence": analysis.encoding.text,
        "layer": layer,
        "head": head,
        "query": query,
        "row": [round(float(w), 6) for w in row],
        "correct": [spec["options"][best]],
        "model": info.name,
    }


def mask_poll(analysis: Analysis, kind: str, query: int, window: int = 2) -> tuple[str, dict]:
    """Where does the mask block? The room taps a token the query cannot see under `kind`; the answer is the
    mask's row (bertlab.masks.preset), the keys whose attention weight the model sets to exactly zero."""
    if kind not in MASK_KINDS:
        raise InputError(f"Choose one of the masks {', '.join(MASK_KINDS)} (the bidirectional mask blocks nothing).")
    n = len(analysis.tokens)
    if not 0 <= query < n:
        raise InputError(f"Position {query} is outside the sentence (0–{n - 1}).")
    allowed = masks.preset(kind, n, segments=analysis.encoding.token_type_ids, window=window)[query]
    blocked = [not bool(a) for a in allowed.tolist()]
    if not any(blocked):
        raise InputError(f"Under the {kind} mask “{analysis.tokens[query].text}” sees every token: pick a token nearer the start.")
    spec = _tokens(analysis)
    what = {"causal": "the causal mask", "window": f"a ±{window}-token window", "prefix-lm": "the prefix-LM mask"}[kind]
    return f"Under {what}, tap a token that “{analysis.tokens[query].text}” cannot see.", {
        **spec,
        "sentence": analysis.encoding.text,
        "kind": kind,
        "window": window,
        "query": query,
        "blocked": blocked,
        "correct": [label for label, b in zip(spec["options"], blocked) if b],
    }


def grade(poll: Poll, answer: str) -> bool | None:
    """Is the answer one the model (or the lesson) counts right? None when the poll has no right answer."""
    correct = poll.spec.get("correct")
    if not correct:
        return None
    if poll.spec.get("answer_kind") == "number":
        try:
            return any(abs(float(answer) - float(c)) < 1e-9 for c in correct)
        except ValueError:
            return False
    given = group_key(poll, " ".join(str(answer).split()))
    return any(given == group_key(poll, c) for c in correct)


def tap_counts(poll: Poll, histogram: dict[str, int]) -> list[int]:
    """The room's taps per token position (token polls)."""
    counts = [0] * len(poll.spec.get("tokens", []))
    for label, count in histogram.items():
        try:
            counts[position_of(label)] += count
        except (ValueError, IndexError):
            continue
    return counts
