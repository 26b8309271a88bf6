"""Benchmark text of an exact length: shared by the engine's bench (bertlab.bench) and the app's
(labtools.appbench), which import it from here so that neither imports the other."""

from __future__ import annotations

WORDS = (
    "the students asked why the model could see both sides of every word while the other saw only the "
    "left side and so they typed new sentences into the laboratory to watch attention move between layers "
    "and heads as the teacher explained masked language modelling with examples from banks rivers and fish"
).split()


def text_of(tokens: int, mask: bool = True) -> str:
    """A sentence of exactly `tokens` WordPieces, [CLS] and [SEP] included (all WORDS are single pieces)."""
    words = [WORDS[i % len(WORDS)] for i in range(tokens - 2)]
    if mask:
        words[len(words) // 2] = "[MASK]"
    return " ".join(words)
