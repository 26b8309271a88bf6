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
