"""Inside a head (query · key · value, step by step) and inside a layer (the post-norm residual stream).

Both are computed on demand for what a view asks (one layer and head; one mask), never in every analysis.

A head's steps are recomputed for teaching from the layer's input hidden state, which the analysis already
holds, by calling that layer's *own* query, key and value projections (no copied weights, no second
forward pass); tests prove the resulting weights equal the model's own attention weights. The layer
decomposition comes from one hooked run of the encoder (bertlab.hooks): x, the attention sublayer's output A,
LayerNorm(A + x), the feed-forward output F, and LayerNorm(F + h), exactly as the model computed them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from . import hooks, masks
from .analysis import Analysis
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

    @property
    def qk(self) -> np.ndarray:
        """(token, d_head) q ⊙ k per key: the terms whose sum is each score (bertviz's neuron view)."""
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
        both = torch.from_numpy(np.concatenate([self.queries, self.k]))[None]
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
        }


def _attention_module(loaded: LoadedModel, layer: int) -> torch.nn.Module:
    block = hooks.layers_of(loaded)[layer]
    return block.attention.self if loaded.info.family == "bert" else block.attention


def _projections(loaded: LoadedModel, layer: int) -> tuple[torch.nn.Module, torch.nn.Module, torch.nn.Module]:
    module = _attention_module(loaded, layer)
    if loaded.info.family == "bert":
        return module.query, module.key, module.value
    return module.q_lin, module.k_lin, module.v_lin


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
    """softmax(q·kᵀ/√d + mask) for one query of one head, step by step, from the layer's input hidden state
    (held by the analysis) through that layer's own query, key and value projections."""
    length = len(analysis.tokens)
    _check(loaded, layer, head, query, length, mask)
    x = analysis.runs[mask].hidden_tensor[layer].to(loaded.device, loaded.dtype)  # where it is: no host round trip
    d_head = loaded.info.hidden_size // loaded.info.heads
    part = slice(head * d_head, (head + 1) * d_head)
    with loaded.lock, torch.inference_mode():  # no other run's hooks may fire on these projections
        q, k, v = [proj(x)[:, part].float() for proj in _projections(loaded, layer)]
    scores = k @ q[query]
    scaled = scores / math.sqrt(d_head)
    blocked = ~torch.from_numpy(masks.allowed(mask, length).numpy()[query]).to(scores.device)
    weights = torch.softmax(scaled.masked_fill(blocked, -math.inf), dim=-1)
    output = weights @ v
    host = lambda t: t.detach().cpu().numpy()  # noqa: E731
    return HeadSteps(
        layer=layer, head=head, query=query, mask=mask, tokens=[t.text for t in analysis.tokens],
        q=host(q[query]), k=host(k), v=host(v), queries=host(q), scores=host(scores), scaled=host(scaled),
        blocked=host(blocked), weights=host(weights), output=host(output),
    )


@dataclass
class LayerSteps:
    """Every layer, sublayer by sublayer, for every token under one mask (BERT is post-norm:
    h = LayerNorm(A + x), out = LayerNorm(F + h)). Views read norms, shares and neurons; the vectors
    themselves are kept only when asked for (at 512 tokens of BERT-base they are ~94 MB)."""

    mask: str
    tokens: list[str]
    layer_norms: dict[str, np.ndarray]
    """(layer, token) vector lengths of x ('input'), A ('attention'), h ('after_attention'), F ('ffn') and the output."""
    activations: np.ndarray
    """(layer, token, ffn) the feed-forward activations after GELU (float16)."""
    recomposition_error: float
    """Largest |LayerNorm(F + h) − the layer's output| over every layer, the LayerNorm being the model's own module."""
    vectors: dict[str, np.ndarray] | None = None
    """(layer, token, hidden) x, A, h, F and the output, with the same names as `layer_norms`, when asked for."""

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
            layers.append({
                "layer": layer,
                **{key: np.round(norms[name][layer].astype(np.float64), 6).tolist() for key, name in keys.items()},
                "top_neurons": [
                    [{"neuron": int(i), "activation": round(float(a), 6)} for i, a in zip(row_ids, row_values)]
                    for row_ids, row_values in zip(ids, values)
                ],
            })
        return {"mask": self.mask, "tokens": self.tokens, "layers": layers}


LAYER_POINTS = ("in", "attn.out", "attn.norm", "ffn.act", "ffn.out", "out")


def _norm_modules(loaded: LoadedModel, layer: int) -> tuple[torch.nn.Module, torch.nn.Module]:
    block = hooks.layers_of(loaded)[layer]
    if loaded.info.family == "bert":
        return block.attention.output.LayerNorm, block.output.LayerNorm
    return block.sa_layer_norm, block.output_layer_norm


def layer_steps(loaded: LoadedModel, encoding: Encoding, mask: str = "bidirectional", vectors: bool = False) -> LayerSteps:
    """One hooked run of one row under `mask`, keeping each sublayer's output at every layer (as norms;
    the vectors too with `vectors=True`)."""
    _check(loaded, 0, 0, None, len(encoding), mask)
    attention_mask = masks.stacked((mask,), len(encoding), loaded.dtype)
    names = [f"layer.{layer}.{p}" for layer in range(loaded.info.layers) for p in LAYER_POINTS]
    _, cache = hooks.run(loaded, encoding.input_ids, encoding.token_type_ids, attention_mask, capture=names)

    def stack(point: str) -> torch.Tensor:
        return torch.stack([cache[f"layer.{layer}.{point}"][0] for layer in range(loaded.info.layers)]).float()

    parts = {"input": stack("in"), "attention": stack("attn.out"), "after_attention": stack("attn.norm"),
             "ffn": stack("ffn.out"), "output": stack("out")}
    with torch.inference_mode():
        error = max(
            float((_norm_modules(loaded, layer)[1](cache[f"layer.{layer}.ffn.out"][0] + cache[f"layer.{layer}.attn.norm"][0]).float()
                   - parts["output"][layer]).abs().max())
            for layer in range(loaded.info.layers)
        )
    return LayerSteps(
        mask=mask, tokens=[t.text for t in encoding.tokens],
        layer_norms={name: t.norm(dim=-1).cpu().numpy() for name, t in parts.items()},
        activations=stack("ffn.act").cpu().numpy().astype(np.float16), recomposition_error=error,
        vectors={name: t.cpu().numpy() for name, t in parts.items()} if vectors else None,
    )
