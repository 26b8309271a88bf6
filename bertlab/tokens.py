"""Text to tokens (WordPiece, byte-level BPE or SentencePiece pieces, as the model's own tokenizer cuts them),
with everything a learner asks about each piece."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import re

import torch

from .errors import InputError
from .loading import LoadedModel
from .policy import policy


@dataclass(frozen=True)
class Token:
    """One piece as the model sees it. `start`/`end` index into the text of its own segment (A or B)."""

    text: str
    id: int
    segment: int
    position: int
    start: int
    end: int
    special: bool
    continuation: bool
    """Not the first piece of its word (WordPiece's `##` pieces; a byte-level or SentencePiece piece with no
    word-start mark), read from the tokenizer's own word boundaries."""
    unknown: bool
    display: str = ""
    """The piece as a person reads it: byte-level bytes decoded ('ĠcafÃ©' -> 'Ġcafé'), the marker kept."""

    @property
    def shown(self) -> str:
        return self.display or self.text

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
    mask_id: int | None = None
    """The tokenizer's mask token id ([MASK], RoBERTa's <mask>); None for a decoder, which has none."""

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def labels(self) -> list[str]:
        return [t.label for t in self.tokens]

    @property
    def mask_positions(self) -> list[int]:
        return [t.position for t in self.tokens if self.mask_id is not None and t.id == self.mask_id]


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


TYPED_MASK = "[MASK]"
"""What a learner types for a blank, whatever the model's own mask token is (RoBERTa's is <mask>)."""


def _own_masks(text: str, mask_token: str | None) -> tuple[str, list[tuple[int, int, int]]]:
    """`text` with every typed [MASK] written as the tokenizer's own mask token, and the replacements made as
    (start in the new text, length there, length typed), so offsets can be mapped back to what was typed."""
    if not mask_token or mask_token == TYPED_MASK or TYPED_MASK not in text:
        return text, []
    pieces, spans, at = [], [], 0
    for part in re.split(f"({re.escape(TYPED_MASK)})", text):
        if part == TYPED_MASK:
            spans.append((at, len(mask_token), len(TYPED_MASK)))
            part = mask_token
        pieces.append(part)
        at += len(part)
    return "".join(pieces), spans


def _typed_offset(offset: int, spans: list[tuple[int, int, int]], end: bool) -> int:
    """A character offset in the tokenizer's text, as an offset in the typed text."""
    shift = 0
    for start, own, typed in spans:
        if offset <= start:
            break
        if offset < start + own:  # inside a mask token: its start or end in the typed text
            return start + shift + (typed if end else 0)
        shift += typed - own
    return offset + shift


def _display(tokenizer, piece: str, marker: str) -> str:
    """A byte-level piece with its bytes decoded, the word-start marker kept in front; other pieces as they are."""
    if marker != "Ġ":
        return piece
    text = tokenizer.convert_tokens_to_string([piece])
    if "\ufffd" in text:  # part of a character's bytes: the raw piece says more
        return piece
    return ("Ġ" + text[1:]) if text.startswith(" ") else text


def encode(loaded: LoadedModel, text: str, pair: str | None = None, max_length: int | None = None) -> Encoding:
    """Tokenize like the model's pre-training input ([CLS] A [SEP] (B [SEP]) for BERT, <s> A </s></s> B </s> for
    RoBERTa, no frame for GPT-2), truncated to the model's positions. A typed [MASK] is the model's own mask
    token, whatever it is called."""
    check_text(text)
    pair = check_text(pair, "The second sentence") if pair and pair.strip() else None
    tokenizer = loaded.tokenizer
    max_length = min(max_length or loaded.max_length, loaded.max_length)
    own_text, text_spans = _own_masks(text, tokenizer.mask_token)
    own_pair, pair_spans = _own_masks(pair, tokenizer.mask_token) if pair else (None, [])
    full = tokenizer(own_text, own_pair, add_special_tokens=True, truncation=False, verbose=False)
    untruncated = len(full["input_ids"])
    truncated = untruncated > max_length
    enc = tokenizer(
        own_text,
        own_pair,
        add_special_tokens=True,
        truncation="longest_first" if truncated else False,
        max_length=max_length if truncated else None,
        return_offsets_mapping=True,
        return_token_type_ids=True,
        return_special_tokens_mask=True,
        verbose=False,
    )
    ids = enc["input_ids"]
    structural = {tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id, tokenizer.mask_token_id,
                  tokenizer.bos_token_id, tokenizer.eos_token_id} - {None}
    specials = [bool(flag) or int(i) in structural for flag, i in zip(enc["special_tokens_mask"], ids)]
    if all(flag and int(i) != tokenizer.mask_token_id for flag, i in zip(specials, ids)):  # a frame, nothing in it
        raise InputError("The text has no tokens once tokenized: type some words.")
    pieces = tokenizer.convert_ids_to_tokens(ids)  # the vocabulary's own strings (enc.tokens() can carry a stripped space)
    sequence_ids = enc.sequence_ids()
    words = enc.word_ids()
    segments = enc["token_type_ids"] if loaded.info.has_segments else [0 if s in (0, None) else 1 for s in sequence_ids]
    marker = loaded.info.pieces

    def continues(i: int) -> bool:
        if specials[i]:
            return False
        if marker == "##":
            return pieces[i].startswith("##")
        return i > 0 and words[i] is not None and words[i] == words[i - 1] and sequence_ids[i] == sequence_ids[i - 1]

    def typed(i: int, start: int, end: int) -> tuple[int, int]:
        spans = pair_spans if sequence_ids[i] == 1 else text_spans
        return _typed_offset(start, spans, False), _typed_offset(end, spans, True)

    tokens = tuple(
        Token(
            text=piece,
            id=int(token_id),
            segment=int(segment),
            position=i,
            start=typed(i, start, end)[0],
            end=typed(i, start, end)[1],
            special=specials[i],
            continuation=continues(i),
            unknown=int(token_id) == tokenizer.unk_token_id,
            display=piece if specials[i] else _display(tokenizer, piece, marker),
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
        mask_id=tokenizer.mask_token_id,
    )


def with_masks(loaded: LoadedModel, encoding: Encoding, positions: tuple[int, ...] | list[int]) -> Encoding:
    """The same input with the chosen tokens replaced by the mask token, as a learner would type [MASK]."""
    mask_id = loaded.tokenizer.mask_token_id
    if mask_id is None:
        raise InputError(f"'{loaded.info.name}' has no mask token: a decoder predicts the next token instead of filling a blank.")
    chosen = set(positions)
    bad = [p for p in chosen if not 0 <= p < len(encoding) or encoding.tokens[p].special and encoding.tokens[p].id != mask_id]
    if bad:
        raise InputError(f"Cannot mask position(s) {sorted(bad)}: only ordinary tokens can be masked.")
    ids = encoding.input_ids.clone()
    ids[0, sorted(chosen)] = mask_id
    tokens = tuple(
        replace(t, text=loaded.tokenizer.mask_token, display="", id=mask_id, special=True, continuation=False, unknown=False)
        if t.position in chosen else t
        for t in encoding.tokens
    )
    return replace(encoding, tokens=tokens, input_ids=ids)
