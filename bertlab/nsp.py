"""Next sentence prediction for one first sentence and several second sentences, in one padded batch.

NSP was trained on pairs where B really followed A half of the time and was a random sentence from elsewhere
the other half; a real continuation beside a random one is that setup, and the comparison a class wants.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from . import hooks, masks
from .corpus import shipped_corpus
from .errors import InputError, MissingHeadError
from .loading import LoadedModel
from .tokens import check_text
from .transfer import to_host

MAX_SECONDS = 16
"""Second sentences scored at once (a class compares a handful; the batch grows with each)."""


@dataclass(frozen=True)
class NextSentence:
    first: str
    seconds: tuple[str, ...]
    is_next: np.ndarray
    """P(IsNext) for each second sentence, in order."""
    truncated: tuple[bool, ...]
    """Whether the pair was cut to the model's positions."""


def next_sentence(loaded: LoadedModel, first: str, seconds: Sequence[str]) -> NextSentence:
    """P(IsNext) of each `seconds[i]` after `first`: [CLS] A [SEP] B [SEP] for every B as one padded batch
    (padding keys never seen, so each row equals its own unpadded run), then the model's own pooler and NSP head."""
    if loaded.nsp_head is None:
        raise MissingHeadError(f"'{loaded.info.name}' has no next-sentence-prediction head, so there is no IsNext probability.")
    first = check_text(first, "The first sentence")
    seconds = tuple(check_text(s, "A second sentence") for s in seconds)
    if not seconds or len(seconds) > MAX_SECONDS:
        raise InputError(f"Give between 1 and {MAX_SECONDS} second sentences (got {len(seconds)}).")
    batch = loaded.tokenizer(
        [first] * len(seconds), list(seconds), padding=True, truncation="longest_first", max_length=loaded.max_length,
        return_tensors="pt", return_overflowing_tokens=False,
    )
    length = batch["input_ids"].shape[1]
    allowed = masks.allowed("bidirectional", length, batch["attention_mask"])
    out, _ = hooks.run(loaded, batch["input_ids"], batch.get("token_type_ids"), masks.additive(allowed, loaded.dtype),
                       valid=batch["attention_mask"])
    with torch.inference_mode():
        probs = torch.softmax(loaded.nsp_head(out.pooler_output).float(), -1)[:, 0]
    full = [len(ids) for ids in loaded.tokenizer([first] * len(seconds), list(seconds), verbose=False)["input_ids"]]
    return NextSentence(first, seconds, to_host(probs), tuple(n > loaded.max_length for n in full))


def random_sentence(avoid: Sequence[str] = (), seed: int = 0) -> str:
    """A sentence from the shipped corpus (33 words' senses, written for bertlab): a stand-in for NSP's
    "random sentence from another document". The same seed gives the same sentence, so a link reproduces it."""
    pool = [s for s in dict.fromkeys(shipped_corpus().sentences) if s not in set(avoid)]
    return random.Random(seed).choice(pool)
