"""Numbers derived from a run's tensors: head statistics, attention rollout, cosines.

Each takes tensors or arrays and computes where they are (a GPU tensor stays on the GPU, a numpy array is
viewed as a CPU tensor without a copy), so figure builders only draw and pages only ask.
"""

from __future__ import annotations

import numpy as np
import torch

from .transfer import to_host

HEAD_STATS = ("entropy", "cls", "sep", "self", "distance")
"""Per-head statistics: attention entropy (nats), attention mass on [CLS], on [SEP], on the token
itself, and the mean signed distance (key position - query position) of what a token attends to."""


def as_tensor(x: np.ndarray | torch.Tensor) -> torch.Tensor:
    """A float32 tensor view of an array (no copy for float32 numpy), where it already is."""
    t = torch.from_numpy(np.asarray(x)) if not isinstance(x, torch.Tensor) else x
    return t.float()


def _layers(attn) -> list[torch.Tensor]:
    """Per-layer weights from a stacked (..., layer, head, query, key) tensor or array, or a sequence of layers."""
    if isinstance(attn, (list, tuple)):
        return [as_tensor(a) if not isinstance(a, torch.Tensor) else a for a in attn]
    attn = attn if isinstance(attn, torch.Tensor) else torch.from_numpy(np.asarray(attn))
    return list(attn.unbind(-4))


def head_statistics(attn, specials: dict[str, list[int]]) -> dict[str, torch.Tensor]:
    """Per head averages over query tokens of attention weights, a stacked (..., layer, head, query, key) tensor
    or a sequence of per-layer (..., head, query, key) tensors (as the model returns them: no stacked copy), in
    float32, computed where they are: name -> (..., layer, head)."""
    return {name: torch.stack(values, dim=-2) for name, values in zip(HEAD_STATS, zip(*(_layer_statistics(a, specials) for a in _layers(attn))))}


def _layer_statistics(attn: torch.Tensor, specials: dict[str, list[int]]) -> tuple[torch.Tensor, ...]:
    """HEAD_STATS of one layer's (..., head, query, key) weights. Sums accumulate in float32 without a float32
    copy of the weights."""
    length = attn.shape[-1]
    f32 = torch.float32
    positions = torch.arange(length, dtype=f32, device=attn.device)
    # mean signed distance: sum_k a[q, k]·(k − q) = (a @ positions)[q] − q·sum_k a[q, k], a matrix-vector
    # product instead of a (query, key) temporary the size of the attentions. In float32: a half-precision
    # product of positions up to 511 would round to ±0.25 before the subtraction.
    distance = attn.to(f32) @ positions - positions * attn.sum(-1, dtype=f32)
    return (
        torch.special.entr(attn).sum(-1, dtype=f32).mean(-1),  # −a·ln a, 0 where a = 0
        attn[..., specials["cls"]].sum(-1, dtype=f32).mean(-1),
        attn[..., specials["sep"]].sum(-1, dtype=f32).mean(-1),
        attn.diagonal(dim1=-2, dim2=-1).mean(-1, dtype=f32),
        distance.mean(-1),
    )


def rollout(attn) -> torch.Tensor:
    """Attention rollout (Abnar & Zuidema, 2020) of (layer, head, query, key) weights (or a sequence of
    per-layer (head, query, key) weights): heads averaged, the residual added as identity (0.5·A + 0.5·I), rows
    renormalized, layers chained: out[l] = Â_l ··· Â_0."""
    # (layer, query, key), without a float32 copy of every head
    mixed = torch.stack([layer.mean(0, dtype=torch.float32) for layer in _layers(attn)])
    eye = torch.eye(mixed.shape[-1], dtype=mixed.dtype, device=mixed.device)
    mixed = 0.5 * mixed + 0.5 * eye
    mixed = mixed / mixed.sum(-1, keepdim=True)
    out = torch.empty_like(mixed)
    acc = eye
    for layer in range(mixed.shape[0]):
        acc = mixed[layer] @ acc
        out[layer] = acc
    return out


def cosine(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor) -> np.ndarray:
    """Cosine between matching vectors of a and b (last axis), computed where they are, as float32 numpy."""
    a, b = as_tensor(a), as_tensor(b)
    return to_host(torch.nn.functional.cosine_similarity(a, b, dim=-1, eps=1e-12).clamp(-1, 1))


def cosine_matrix(v: torch.Tensor) -> torch.Tensor:
    """(..., n, hidden) -> (..., n, n) pairwise cosine similarity."""
    unit = torch.nn.functional.normalize(v.float(), dim=-1)
    return (unit @ unit.transpose(-1, -2)).clamp(-1, 1)


def layer_change(hidden_states: np.ndarray | torch.Tensor) -> np.ndarray:
    """1 − cosine(hidden after layer l, before it), (layer, token): how much each block rewrites each token."""
    h = as_tensor(hidden_states)
    return 1 - cosine(h[1:], h[:-1])
