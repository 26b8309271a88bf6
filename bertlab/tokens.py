"""Text to WordPiece tokens, with everything a learner asks about each piece."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import torch

from .errors import InputError
from .loading import LoadedModel
from .policy import policy


@dataclass(frozen=True)
class Token:
    """One WordPiece as BERT sees it. `start`/`end` index into the text of its own segment (A or B)."""

    text: str
    id: int
    segment: int
    position: int
    start: int
    end: int
    special: bool
    continuation: bool
    unknown: bool

    @property
    def label(self) -> str:
        """A label unique within the sentence (plotly merges repeated category labels)."""
        return f"{self.position}:{self.text}"

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Encoding:
    """The tokens of one input, and the tensors the model is run on."""

    text: str
    pair: str | None
    tokens: tuple[Token, ...]
    input_ids: torch.Tensor
    token_type_ids: torch.Tensor
    truncated: bool
    untruncated_length: int

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def labels(self) -> list[str]:
        return [t.label for t in self.tokens]

    @property
    def mask_positions(self) -> list[int]:
        return [t.position for t in self.tokens if t.text == "[MASK]"]


def check_text(text: str | None, what: str = "The text") -> str:
    if text is None or not text.strip():
        raise InputError(f"{what} is empty: type a sentence to analyse.")
    limit = policy().max_chars
    if len(text) > limit:
        raise InputError(
            f"{what} has {len(text):,} characters; this server accepts up to {limit:,} "
            f"(BERT reads at most 512 tokens, roughly 2,000 characters of English)."
        )
    return text


def encode(loaded: LoadedModel, text: str, pair: str | None = None) -> Encoding:
    """Tokenize like BERT's pre-training input: [CLS] A [SEP] (B [SEP]), truncated to the model's positions."""
    check_text(text)
    pair = check_text(pair, "The second sentence") if pair and pair.strip() else None
    tokenizer = loaded.tokenizer
    max_length = loaded.max_length
    full = tokenizer(text, pair, add_special_tokens=True, truncation=False, verbose=False)
    untruncated = len(full["input_ids"])
    truncated = untruncated > max_length
    enc = tokenizer(
        text,
        pair,
        add_special_tokens=True,
        truncation="longest_first" if truncated else False,
        max_length=max_length if truncated else None,
        return_offsets_mapping=True,
        return_token_type_ids=True,
        verbose=False,
    )
    ids = enc["input_ids"]
    if len(ids) <= 2:
        raise InputError("The text has no tokens once tokenized: type some words.")
    pieces = enc.tokens()
    sequence_ids = enc.sequence_ids()
    segments = enc["token_type_ids"] if loaded.info.has_segments else [0 if s in (0, None) else 1 for s in sequence_ids]
    structural = {tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id, tokenizer.mask_token_id}
    tokens = tuple(
        Token(
            text=piece,
            id=int(token_id),
            segment=int(segment),
            position=i,
            start=int(start),
            end=int(end),
            special=int(token_id) in structural,
            continuation=piece.startswith("##"),
            unknown=int(token_id) == tokenizer.unk_token_id,
        )
        for i, (piece, token_id, segment, (start, end)) in enumerate(zip(pieces, ids, segments, enc["offset_mapping"]))
    )
    return Encoding(
        text=text,
        pair=pair,
        tokens=tokens,
        input_ids=torch.tensor([ids]),
        token_type_ids=torch.tensor([enc["token_type_ids"]]),
        truncated=truncated,
        untruncated_length=untruncated,
    )


def with_masks(loaded: LoadedModel, encoding: Encoding, positions: tuple[int, ...] | list[int]) -> Encoding:
    """The same input with the chosen tokens replaced by [MASK], as a learner would type it."""
    mask_id = loaded.tokenizer.mask_token_id
    chosen = set(positions)
    bad = [p for p in chosen if not 0 <= p < len(encoding) or encoding.tokens[p].special and encoding.tokens[p].text != "[MASK]"]
    if bad:
        raise InputError(f"Cannot mask position(s) {sorted(bad)}: only ordinary tokens can be masked.")
    ids = encoding.input_ids.clone()
    ids[0, sorted(chosen)] = mask_id
    tokens = tuple(
        replace(t, text="[MASK]", id=mask_id, special=True, continuation=False, unknown=False) if t.position in chosen else t
        for t in encoding.tokens
    )
    return replace(encoding, tokens=tokens, input_ids=ids)
