"""Word sense: one word's vector in several sentences, layer by layer, under both masks.

All sentences and both masks go through the encoder as one padded batch (sentence-major within
each mask), so the comparison costs a single forward pass.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from . import hooks, masks
from .metrics import cosine_matrix
from .errors import InputError, TargetNotFoundError
from .loading import LoadedModel
from .policy import policy
from .tokens import check_text



@dataclass
class Senses:
    target: str
    sentences: list[str]
    pieces: list[list[str]]
    """The WordPieces of the target in each sentence (pooled by their mean when more than one)."""
    spans: list[tuple[int, int]]
    """Token positions [start, end) of the target in each sentence."""
    vectors: dict[str, np.ndarray]
    """Mask type -> (layer + 1, sentence, hidden)."""
    similarity: dict[str, np.ndarray]
    """Mask type -> (layer + 1, sentence, sentence) cosine similarity."""
    projection: dict[str, np.ndarray]
    """Mask type -> (layer + 1, sentence, 2): each layer's vectors on their first two principal components."""

    @property
    def layers(self) -> int:
        return next(iter(self.vectors.values())).shape[0]

    def to_dict(self) -> dict:
        return {
            "target": self.target,
            "sentences": self.sentences,
            "pieces": self.pieces,
            "layers": self.layers,
            **{kind: sim.round(6).tolist() for kind, sim in self.similarity.items()},
        }


def find_word(text: str, word: str, lowercase: bool) -> tuple[int, int] | None:
    """Character span of the first whole-word occurrence of `word` in `text`."""
    flags = re.IGNORECASE if lowercase else 0
    match = re.search(rf"(?<!\w){re.escape(word)}(?!\w)", text, flags) or (
        None if lowercase else re.search(rf"(?<!\w){re.escape(word)}(?!\w)", text, re.IGNORECASE)
    )
    return match.span() if match else None


def lowercases(tokenizer) -> bool:
    """Does the tokenizer fold case (then 'Bank' and 'bank' are the same word to it)?"""
    return bool(getattr(tokenizer, "do_lower_case", False)) or tokenizer("A")["input_ids"] == tokenizer("a")["input_ids"]


def tokenize(loaded: LoadedModel, sentences: list[str]):
    """A padded batch with character offsets, so a word's characters map to its WordPieces."""
    return loaded.tokenizer(
        sentences, padding=True, truncation=True, max_length=loaded.max_length, return_offsets_mapping=True, return_tensors="pt"
    )


def token_span(batch, row: int, chars: tuple[int, int]) -> tuple[int, int] | None:
    """Token positions [start, end) of the WordPieces covering characters `chars` in one row of a
    `tokenize` batch; None when truncation cut them off."""
    offsets = batch["offset_mapping"][row].tolist()
    special = batch["attention_mask"][row] == 0
    hit = [j for j, (a, b) in enumerate(offsets) if b > a and a < chars[1] and b > chars[0] and not special[j]]
    return (hit[0], hit[-1] + 1) if hit else None


def pool(hidden: torch.Tensor, spans: list[tuple[int, int]]) -> torch.Tensor:
    """(row, layer + 1, token, hidden) -> (row, layer + 1, hidden): a word split into several
    WordPieces is one vector, the mean of its pieces, at every layer."""
    return torch.stack([hidden[i, :, a:b].mean(1) for i, (a, b) in enumerate(spans)])


def hidden_under_masks(loaded: LoadedModel, batch, mask_types: tuple[str, ...], interventions: Sequence = ()) -> torch.Tensor:
    """Every layer's hidden states (embedding output first) for a padded batch of sentences, repeated once per
    mask type in one forward pass (mask-major rows; padding keys never seen): (mask · row, layer + 1, token, hidden)."""
    length = batch["input_ids"].shape[1]
    attention_mask = torch.cat([masks.additive(masks.allowed(kind, length, batch["attention_mask"]), loaded.dtype) for kind in mask_types])
    out, _ = hooks.run(
        loaded,
        batch["input_ids"].repeat(len(mask_types), 1),
        batch.get("token_type_ids", torch.zeros_like(batch["input_ids"])).repeat(len(mask_types), 1),
        attention_mask,
        valid=batch["attention_mask"].repeat(len(mask_types), 1),
        interventions=interventions,
        internals=True,
    )
    return torch.stack(out.hidden_states, dim=1).float()


def senses(
    loaded: LoadedModel, target: str, sentences: list[str], mask_types: tuple[str, ...] = masks.MASK_TYPES,
    interventions: Sequence = (),
) -> Senses:
    """Vectors of `target` at every layer in every sentence, and how similar they are (with `interventions`,
    bertlab.hooks edits applied to every row: the same comparison with heads removed, say)."""
    target = check_text(target, "The target word").strip()
    sentences = [s for s in (s.strip() for s in sentences) if s]
    if len(sentences) < 2:
        raise InputError("Word sense compares a word across sentences: give at least two sentences.")
    limit = policy().max_sentences
    if len(sentences) > limit:
        raise InputError(f"This server compares at most {limit} sentences at once (got {len(sentences)}).")
    for sentence in sentences:
        check_text(sentence, "A sentence")
    tokenizer = loaded.tokenizer
    lowercase = lowercases(tokenizer)
    batch = tokenize(loaded, sentences)
    spans, pieces = [], []
    for i, sentence in enumerate(sentences):
        chars = find_word(sentence, target, lowercase)
        if chars is None:
            raise TargetNotFoundError(f"'{target}' does not occur in sentence {i + 1}: \"{sentence}\".")
        span = token_span(batch, i, chars)
        if span is None:
            raise TargetNotFoundError(f"'{target}' in sentence {i + 1} was cut off by truncation at {loaded.max_length} tokens.")
        spans.append(span)
        pieces.append(tokenizer.convert_ids_to_tokens(batch["input_ids"][i, span[0] : span[1]].tolist()))

    n = batch["input_ids"].shape[0]
    hidden = hidden_under_masks(loaded, batch, mask_types, interventions)  # (mask * sentence, layer + 1, token, hidden)
    pooled = pool(hidden, spans * len(mask_types))
    pooled = pooled.view(len(mask_types), n, hidden.shape[1], -1).transpose(1, 2)  # (mask, layer + 1, sentence, hidden)

    vectors, similarity, projection = {}, {}, {}
    for m, kind in enumerate(mask_types):
        v = pooled[m]
        vectors[kind] = v.cpu().numpy()
        similarity[kind] = cosine_matrix(v).cpu().numpy()
        projection[kind] = pca2(v).cpu().numpy()
    return Senses(target, sentences, pieces, spans, vectors, similarity, projection)


def pca2(v: torch.Tensor) -> torch.Tensor:
    """(layer, sentence, hidden) -> (layer, sentence, 2) on each layer's first two principal components."""
    centred = v - v.mean(1, keepdim=True)
    u, s, _ = torch.linalg.svd(centred, full_matrices=False)
    coords = u[..., :2] * s[..., None, :2]
    if coords.shape[-1] < 2:
        coords = torch.nn.functional.pad(coords, (0, 2 - coords.shape[-1]))
    return coords
