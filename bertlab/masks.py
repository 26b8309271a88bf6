"""The attention masks, as visible objects: comparing them is one of the lessons.

A mask here is a boolean matrix `allowed[query, key]`. The model receives it as a 4D *additive float*
mask (0 where allowed, the dtype's most negative number where blocked), which transformers adds to
the attention scores before the softmax, so blocked weights come out as exact zeros. (A 4D bool mask
would be added as 0/1 and silently leak; the tests prove the zeros.)
"""

from __future__ import annotations

import torch

MASK_TYPES = ("bidirectional", "causal")


def allowed(kind: str, length: int, valid: torch.Tensor | None = None) -> torch.Tensor:
    """`allowed[i, j]`: may the token at position i attend to position j? (padding keys never)."""
    if kind == "bidirectional":
        grid = torch.ones(length, length, dtype=torch.bool)
    elif kind == "causal":
        grid = torch.ones(length, length, dtype=torch.bool).tril()
    else:
        raise ValueError(f"Unknown mask type '{kind}': choose one of {', '.join(MASK_TYPES)}.")
    if valid is None:
        return grid
    return grid.unsqueeze(0) & valid.bool().unsqueeze(1)


def additive(allowed_mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The (batch, 1, query, key) float mask transformers adds to attention scores."""
    if allowed_mask.dim() == 2:
        allowed_mask = allowed_mask.unsqueeze(0)
    blocked = torch.finfo(dtype).min
    return torch.zeros(allowed_mask.shape, dtype=dtype).masked_fill(~allowed_mask, blocked).unsqueeze(1)


def stacked(kinds: tuple[str, ...], length: int, dtype: torch.dtype, valid: torch.Tensor | None = None) -> torch.Tensor:
    """Masks for a batch that repeats the input once per mask type (mask-major order)."""
    parts = [allowed(kind, length, valid) for kind in kinds]
    grids = torch.cat([p if p.dim() == 3 else p.unsqueeze(0) for p in parts])
    return additive(grids, dtype)


PRESETS = ("bidirectional", "causal", "prefix-lm", "window", "blind")
"""Masks beyond the two BERT was trained with, for experiments: prefix-LM (segment A sees all of A, B is
causal), a sliding window of ±w tokens, and 'nobody may see token j'. Any bool matrix works too."""


def preset(kind: str, length: int, *, segments: torch.Tensor | None = None, window: int = 2, token: int = 0) -> torch.Tensor:
    """`allowed[query, key]` for a named mask. prefix-lm: tokens of segment A (and [CLS]) see all of A; each
    token of B sees A and the B tokens up to itself. window: |query - key| <= window. blind: no query sees
    `token` (itself included, unless it is the only key left: a row with no key at all has no softmax)."""
    if kind in MASK_TYPES:
        return allowed(kind, length)
    positions = torch.arange(length)
    if kind == "prefix-lm":
        segment = segments.view(-1)[:length] if segments is not None else torch.zeros(length, dtype=torch.long)
        prefix = segment == 0
        grid = prefix.view(1, -1) | (positions.view(1, -1) <= positions.view(-1, 1))
        return grid
    if kind == "window":
        if window < 0:
            raise ValueError("The window must be 0 or more tokens.")
        return (positions.view(-1, 1) - positions.view(1, -1)).abs() <= window
    if kind == "blind":
        if not 0 <= token < length:
            raise ValueError(f"Token {token} does not exist: the input has tokens 0-{length - 1}.")
        grid = torch.ones(length, length, dtype=torch.bool)
        grid[:, token] = False
        if length == 1:
            grid[0, 0] = True
        return grid
    raise ValueError(f"Unknown mask '{kind}': choose one of {', '.join(PRESETS)}, or give a matrix.")
