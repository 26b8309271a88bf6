"""Inside a head (query · key · value, step by step) and inside a layer (the residual stream, post-norm or
pre-norm as the family computes it).

Both are computed on demand for what a view asks (one layer and head; one mask), never in every analysis.

A head's steps are recomputed for teaching from the layer's input hidden state, which the analysis already
holds, by calling that layer's *own* modules (its query, key and value projections; the norm before them for a
pre-norm family; DeBERTa's relative-position projections; ModernBERT's rotary embedding), no copied weights
and no second forward pass; the family's adapter says how (bertlab.families). Tests prove the resulting weights
equal the model's own attention weights. The layer decomposition comes from one hooked run (bertlab.hooks): x,
the attention sublayer's output A, the stream between the sublayers h, the feed-forward output F, and the
layer's output, exactly as the model computed them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from . import hooks, masks
from .analysis import Analysis
from .families import default_head_terms
from .errors import InputError
from .loading import LoadedModel
from .senses import pca2
from .tokens import Encoding

STEPS = ("scores", "scaled", "masked", "weights")
"""A head's steps in order: q·k, ÷√d_head, + the mask, softmax."""


@dataclass
class HeadSteps:
    """One query token's way through one head (the names a learner walks through, in order)."""

    layer: int
    head: int
    query: int
    mask: str
    tokens: list[str]
    q: np.ndarray
    """(d_head,) this token's query vector."""
    k: np.ndarray
    """(token, d_head) every token's key vector."""
    v: np.ndarray
    """(token, d_head) every token's value vector."""
    queries: np.ndarray
    """(token, d_head) every token's query vector (for the query/key projection)."""
    scores: np.ndarray
    """(token,) q·k for each key."""
    scaled: np.ndarray
    """(token,) q·k / √d_head."""
    blocked: np.ndarray
    """(token,) bool: keys the mask hides from this query."""
    weights: np.ndarray
    """(token,) softmax of the masked scores: blocked keys exactly 0, the rest sum to 1."""
    output: np.ndarray
    """(d_head,) this head's output for the query: weights · V."""
    scale: float = 0.0
    """What q·k is multiplied by: 1/√d_head (DeBERTa: 1/√(3·d_head))."""
    terms: dict[str, np.ndarray] | None = None
    """(token,) each part of the score before scaling, where the family splits it (DeBERTa: content→content,
    content→position, position→content); they sum to `scores`."""
    q_rotated: np.ndarray | None = None
    """(d_head,) the query after the rotation by its position (ModernBERT's rotary positions)."""
    k_rotated: np.ndarray | None = None
    """(token, d_head) every key after the rotation by its position."""
    queries_rotated: np.ndarray | None = None
    window: int | None = None
    """±w: this layer's queries see only keys this close (ModernBERT's local layers); None: every key."""

    @property
    def qk(self) -> np.ndarray:
        """(token, d_head) q ⊙ k per key: the terms whose sum is each score (bertviz's neuron view); after the
        rotation where there is one, since those vectors make the score."""
        if self.q_rotated is not None:
            return self.q_rotated[None, :] * self.k_rotated
        return self.q[None, :] * self.k

    @property
    def masked(self) -> np.ndarray:
        """(token,) the scaled scores with the mask added; NaN where blocked (a blocked key has no score)."""
        return np.where(self.blocked, np.nan, self.scaled)

    @property
    def mixture(self) -> np.ndarray:
        """(token, d_head) each key's weighted value: the rows that sum to the output."""
        return self.weights[:, None] * self.v

    def projection(self) -> np.ndarray:
        """(2 · token, 2): every query, then every key, on the first two principal components of both
        together (as AttentionViz does), so a query lands near the keys it attends to."""
        queries, keys = (self.queries_rotated, self.k_rotated) if self.q_rotated is not None else (self.queries, self.k)
        both = torch.from_numpy(np.concatenate([queries, keys]))[None]
        return pca2(both)[0].numpy()

    def to_dict(self) -> dict:
        """The JSON contract of `python -m bertlab head --json`."""
        rows = lambda a: np.round(a.astype(np.float64), 6).tolist()  # noqa: E731
        return {
            "layer": self.layer,
            "head": self.head,
            "query": self.query,
            "mask": self.mask,
            "tokens": self.tokens,
            "q": rows(self.q),
            "k": rows(self.k),
            "v": rows(self.v),
            "scores": rows(self.scores),
            "scaled": rows(self.scaled),
            "masked": [None if b else round(float(s), 6) for s, b in zip(self.scaled, self.blocked)],
            "weights": rows(self.weights),
            "output": rows(self.output),
            "scale": self.scale,
            "terms": None if not self.terms else {name: rows(t) for name, t in self.terms.items()},
            "q_rotated": None if self.q_rotated is None else rows(self.q_rotated),
            "k_rotated": None if self.k_rotated is None else rows(self.k_rotated),
            "window": self.window,
        }


def _check(loaded: LoadedModel, layer: int, head: int, query: int | None, length: int, mask: str) -> None:
    info = loaded.info
    if not 0 <= layer < info.layers:
        raise InputError(f"Layer {layer} does not exist: '{info.name}' has layers 0-{info.layers - 1}.")
    if not 0 <= head < info.heads:
        raise InputError(f"Head {head} does not exist: '{info.name}' has heads 0-{info.heads - 1}.")
    if query is not None and not 0 <= query < length:
        raise InputError(f"Token {query} does not exist: the input has tokens 0-{length - 1}.")
    if mask not in masks.MASK_TYPES:
        raise InputError(f"Unknown mask '{mask}': choose one of {', '.join(masks.MASK_TYPES)}.")


def head_steps(loaded: LoadedModel, analysis: Analysis, layer: int, head: int, query: int, mask: str = "bidirectional") -> HeadSteps:
    """softmax(q·k·scale + mask) for one query of one head, step by step, from the layer's input hidden state
    (held by the analysis) through that layer's own modules, as the family computes its scores."""
    length = len(analysis.tokens)
    _check(loaded, layer, head, query, length, mask)
    x = analysis.runs[mask].hidden_tensor[layer].to(loaded.device, loaded.dtype)  # where it is: no host round trip
    terms_of = loaded.adapter.head_terms or default_head_terms
    with loaded.lock, torch.inference_mode():  # no other run's hooks may fire on these modules
        terms = terms_of(loaded, layer, x, head)
    window = loaded.info.windows.get(layer)
    allowed = masks.allowed(mask, length)[query]
    if window is not None:
        allowed &= (torch.arange(length) - query).abs() <= window
    blocked = ~allowed.to(terms.scores.device)
    scaled = terms.scores[query]
    weights = torch.softmax(scaled.masked_fill(blocked, -math.inf), dim=-1)
    host = lambda t: t.detach().float().cpu().numpy()  # noqa: E731
    rotated = terms.rotated
    return HeadSteps(
        layer=layer, head=head, query=query, mask=mask, tokens=[t.text for t in analysis.tokens],
        q=host(terms.q[query]), k=host(terms.k), v=host(terms.v), queries=host(terms.q), scores=host(terms.raw[query]),
        scaled=host(scaled), blocked=blocked.cpu().numpy(), weights=host(weights), output=host(weights @ terms.v),
        scale=terms.scale, terms={name: host(t[query]) for name, t in terms.terms.items()} or None,
        q_rotated=None if rotated is None else host(rotated[0][query]), k_rotated=None if rotated is None else host(rotated[1]),
        queries_rotated=None if rotated is None else host(rotated[0]), window=window,
    )


@dataclass
class LayerSteps:
    """Every layer, sublayer by sublayer, for every token under one mask, as the family computes it: post-norm
    (BERT) h = LayerNorm(x + A), out = LayerNorm(h + F); pre-norm (ModernBERT, GPT-2) h = x + A(LayerNorm(x)),
    out = h + F(LayerNorm(h)). Views read norms, shares and neurons; the vectors themselves are kept only when
    asked for (at 512 tokens of BERT-base they are ~94 MB)."""

    mask: str
    tokens: list[str]
    layer_norms: dict[str, np.ndarray]
    """(layer, token) vector lengths of x ('input'), A ('attention'), h ('after_attention'), F ('ffn') and the output."""
    activations: np.ndarray
    """(layer, token, ffn) the feed-forward activations after GELU (float16)."""
    recomposition_error: float
    """Largest difference, over every layer, between h and the output rebuilt from the sublayers with the family's
    formula (post-norm: with the layer's own LayerNorm modules) and what the model computed."""
    vectors: dict[str, np.ndarray] | None = None
    """(layer, token, hidden) x, A, h, F and the output, with the same names as `layer_norms`, when asked for."""
    norm_placement: str = "post"
    windows: dict[int, int] = field(default_factory=dict)
    """Layer -> ±w for local layers (ModernBERT); the others attend globally."""

    def norms(self) -> dict[str, np.ndarray]:
        """(layer, token) vector lengths of x, A, h, F and the output."""
        return self.layer_norms

    def shares(self) -> dict[str, np.ndarray]:
        """(layer, token) how much each sublayer adds to the stream it joins: ‖A‖ / (‖A‖ + ‖x‖) and
        ‖F‖ / (‖F‖ + ‖h‖); 0.5 means the update is as large as the residual it is added to."""
        n = self.layer_norms
        return {
            "attention": n["attention"] / (n["attention"] + n["input"]),
            "ffn": n["ffn"] / (n["ffn"] + n["after_attention"]),
        }

    def top_neurons(self, layer: int, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
        """(token, k) the most active feed-forward neurons of each token in one layer, and their activations."""
        act = torch.from_numpy(self.activations[layer].astype(np.float32))
        values, ids = act.topk(min(k, act.shape[-1]), dim=-1)
        return ids.numpy(), values.numpy()

    def neuron(self, layer: int, neuron: int) -> np.ndarray:
        """(token,) one neuron's activation on every token: which tokens of the text activate it most."""
        if not 0 <= neuron < self.activations.shape[-1]:
            raise InputError(f"Neuron {neuron} does not exist: layers have neurons 0-{self.activations.shape[-1] - 1}.")
        return self.activations[layer, :, neuron].astype(np.float32)

    @property
    def nbytes(self) -> int:
        arrays = [*self.layer_norms.values(), self.activations, *(self.vectors or {}).values()]
        return sum(a.nbytes for a in arrays)

    def to_dict(self) -> dict:
        """The JSON contract of `python -m bertlab layers --json`."""
        norms = self.norms()
        keys = {"input_norm": "input", "attention_norm": "attention", "after_attention_norm": "after_attention",
                "ffn_norm": "ffn", "output_norm": "output"}
        layers = []
        for layer in range(self.activations.shape[0]):
            ids, values = self.top_neurons(layer)
            window = self.windows.get(layer)
            layers.append({
                "layer": layer,
                "norm_placement": self.norm_placement,
                "scope": "global" if window is None else "local",
                **({} if window is None else {"window": window}),
                **{key: np.round(norms[name][layer].astype(np.float64), 6).tolist() for key, name in keys.items()},
                "top_neurons": [
                    [{"neuron": int(i), "activation": round(float(a), 6)} for i, a in zip(row_ids, row_values)]
                    for row_ids, row_values in zip(ids, values)
                ],
            })
        return {"mask": self.mask, "tokens": self.tokens, "layers": layers}


LAYER_POINTS = ("in", "attn.out", "mid", "ffn.act", "ffn.out", "out")


def recompose(loaded: LoadedModel, layer: int, x: torch.Tensor, a: torch.Tensor, f: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(h, out) rebuilt from the layer's input x and its sublayers' outputs A and F (h: the model's own stream
    between them), by the family's formula with the layer's own LayerNorm modules where it is post-norm."""
    if loaded.info.norm_placement == "pre":
        return x + a, h + f
    block = loaded.layers[layer]
    first, second = (block.get_submodule(path) for path in loaded.adapter.norms)
    return first(x + a), second(h + f)


def layer_steps(loaded: LoadedModel, encoding: Encoding, mask: str = "bidirectional", vectors: bool = False) -> LayerSteps:
    """One hooked run of one row under `mask`, keeping each sublayer's output at every layer (as norms;
    the vectors too with `vectors=True`)."""
    _check(loaded, 0, 0, None, len(encoding), mask)
    attention_mask = masks.stacked((mask,), len(encoding), loaded.dtype)
    names = [f"layer.{layer}.{p}" for layer in range(loaded.info.layers) for p in LAYER_POINTS]
    _, cache = hooks.run(loaded, encoding.input_ids, encoding.token_type_ids, attention_mask, capture=names)

    def stack(point: str) -> torch.Tensor:
        return torch.stack([cache[f"layer.{layer}.{point}"][0] for layer in range(loaded.info.layers)]).float()

    parts = {"input": stack("in"), "attention": stack("attn.out"), "after_attention": stack("mid"),
             "ffn": stack("ffn.out"), "output": stack("out")}
    error = 0.0
    with torch.inference_mode():
        for layer in range(loaded.info.layers):
            point = lambda name: cache[f"layer.{layer}.{name}"][0]  # noqa: E731
            h, out = recompose(loaded, layer, point("in"), point("attn.out"), point("ffn.out"), point("mid"))
            error = max(error, float((h.float() - parts["after_attention"][layer]).abs().max()),
                        float((out.float() - parts["output"][layer]).abs().max()))
    return LayerSteps(
        mask=mask, tokens=[t.text for t in encoding.tokens],
        layer_norms={name: t.norm(dim=-1).cpu().numpy() for name, t in parts.items()},
        activations=stack("ffn.act").cpu().numpy().astype(np.float16), recomposition_error=error,
        vectors={name: t.cpu().numpy() for name, t in parts.items()} if vectors else None,
        norm_placement=loaded.info.norm_placement, windows=loaded.info.windows,
    )
