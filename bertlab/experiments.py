"""Experiments on a live BERT: ablate heads, knock out attention edges, run under another mask, rank heads
by how much a prediction needs them, and attribute a prediction to the input tokens.

Each experiment is interventions (bertlab.hooks) on named points, in one batched pass whose row 0 is the
unmodified run of the same text and whose other rows are modified, so "before" and "after" come from the
same pass and any difference is the intervention's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

import numpy as np
import torch

from . import hooks, masks, metrics
from .analysis import Prediction
from .errors import InputError, ResourceError
from .loading import LoadedModel
from .tokens import Encoding


@dataclass
class MaskEffect:
    """One [MASK]'s top-k before and after, and how much the original top token lost."""

    position: int
    before: list[Prediction]
    after: list[Prediction]
    log_prob_before: float
    """log P(the original top token) without the intervention."""
    log_prob_after: float
    """log P(the same token) with it."""

    @property
    def change(self) -> float:
        return self.log_prob_after - self.log_prob_before

    def to_dict(self) -> dict:
        return {
            "position": self.position,
            "before": [p.to_dict() for p in self.before],
            "after": [p.to_dict() for p in self.after],
            "log_prob_change": self.change,
        }


@dataclass
class Effect:
    """An experiment against the unmodified run of the same text."""

    kind: str
    """'ablate', 'knockout' or 'mask'."""
    what: dict
    """What was done: {"heads": [[l, h], ...], "mode": ...}, {"edges": [[q, k], ...], "layers": [...]}, {"mask": ...}."""
    tokens: list[str]
    mlm: list[MaskEffect]
    hidden_cosine: np.ndarray
    """(layer + 1, token): cosine between the hidden states before and after; row 0 is the embedding output."""
    attentions: np.ndarray | None = field(default=None, repr=False)
    """(2, layer, head, query, key) float16 weights before and after, when asked for."""
    allowed: np.ndarray | None = field(default=None, repr=False)
    """(query, key) the base mask of the modified row."""

    @property
    def nbytes(self) -> int:
        return self.hidden_cosine.nbytes + (0 if self.attentions is None else self.attentions.nbytes)

    def to_dict(self) -> dict:
        """The JSON contract of `python -m bertlab ablate|knockout --json`."""
        return {
            **self.what,
            "tokens": self.tokens,
            "mlm": [m.to_dict() for m in self.mlm],
            "hidden_cosine": np.round(self.hidden_cosine.astype(np.float64), 6).tolist(),
        }


def _heads_by_layer(loaded: LoadedModel, heads: Iterable[tuple[int, int]]) -> dict[int, list[int]]:
    by_layer: dict[int, list[int]] = {}
    info = loaded.info
    for layer, head in heads:
        if not 0 <= layer < info.layers or not 0 <= head < info.heads:
            raise InputError(f"Head {layer}.{head} does not exist: '{info.name}' has layers 0-{info.layers - 1} and heads 0-{info.heads - 1}.")
        by_layer.setdefault(layer, []).append(head)
    return by_layer


def _mlm_log_probs(loaded: LoadedModel, last_hidden: torch.Tensor, positions: list[int]) -> torch.Tensor:
    """(row, position, vocab) log-probabilities, with vocabulary logits only at the positions read."""
    with torch.inference_mode():
        return torch.log_softmax(loaded.mlm_head(last_hidden[:, positions]).float(), dim=-1)


def _top(loaded: LoadedModel, log_probs: torch.Tensor, top_k: int) -> list[Prediction]:
    values, ids = log_probs.exp().topk(min(top_k, log_probs.shape[-1]))
    pieces = loaded.tokenizer.convert_ids_to_tokens(ids.tolist())
    return [Prediction(piece, int(i), float(v)) for piece, i, v in zip(pieces, ids.tolist(), values.tolist())]


def compare(
    loaded: LoadedModel,
    encoding: Encoding,
    interventions: Sequence[hooks.Intervention] = (),
    *,
    base: str = "bidirectional",
    after_mask: torch.Tensor | None = None,
    kind: str = "ablate",
    what: dict | None = None,
    top_k: int = 5,
    attentions: bool = False,
) -> Effect:
    """Row 0: the unmodified run under `base`; row 1: the same text under `after_mask` (default: `base`)
    with `interventions` applied (their `rows` must be (1,)). One forward pass for both."""
    if any(i.rows != (1,) for i in interventions):
        raise ValueError("compare() edits row 1 only: row 0 is the unmodified run.")
    length = len(encoding)
    before = masks.allowed(base, length)
    after = before if after_mask is None else after_mask.bool()
    if after.shape != (length, length):
        raise InputError(f"The mask must be {length} × {length} (one row and column per token), not {tuple(after.shape)}.")
    if not after.any(-1).all():
        raise InputError("Every token must be allowed to see at least one token: a row with nothing to attend to has no softmax.")
    attention_mask = masks.additive(torch.stack([before, after]), loaded.dtype)
    out, _ = hooks.run(loaded, encoding.input_ids.expand(2, -1), encoding.token_type_ids.expand(2, -1), attention_mask,
                       interventions=interventions, internals=True)
    hidden = torch.stack(out.hidden_states, dim=1)  # (row, layer + 1, token, hidden)
    mlm = []
    positions = encoding.mask_positions if loaded.mlm_head is not None else []
    if positions:
        log_probs = _mlm_log_probs(loaded, hidden[:, -1], positions)
        for j, position in enumerate(positions):
            top = int(log_probs[0, j].argmax())
            mlm.append(MaskEffect(position, _top(loaded, log_probs[0, j], top_k), _top(loaded, log_probs[1, j], top_k),
                                  float(log_probs[0, j, top]), float(log_probs[1, j, top])))
    weights = None
    if attentions:
        weights = torch.stack(out.attentions, dim=1).to(torch.float16).cpu().numpy()
    return Effect(
        kind=kind, what=what or {}, tokens=[t.text for t in encoding.tokens], mlm=mlm,
        hidden_cosine=metrics.cosine(hidden[0], hidden[1]), attentions=weights, allowed=after.numpy(),
    )


def ablate(
    loaded: LoadedModel, encoding: Encoding, heads: Sequence[tuple[int, int]], mode: str = "zero", *,
    top_k: int = 5, attentions: bool = False,
) -> Effect:
    """Remove heads (zero their output, or replace it by its mean over tokens) and compare."""
    by_layer = _heads_by_layer(loaded, heads)
    interventions = [hooks.ablate_heads(layer, hs, mode, rows=[1]) for layer, hs in sorted(by_layer.items())]
    what = {"heads": sorted([list(h) for h in set(map(tuple, heads))]), "mode": mode}
    return compare(loaded, encoding, interventions, kind="ablate", what=what, top_k=top_k, attentions=attentions)


def ablate_senses(loaded: LoadedModel, target: str, sentences: list[str], heads: Sequence[tuple[int, int]], mode: str = "zero"):
    """The word-sense comparison with heads removed (every sentence, both masks, in one pass): compare its
    similarities with `senses()` of the same sentences."""
    from .senses import senses

    by_layer = _heads_by_layer(loaded, heads)
    return senses(loaded, target, sentences, interventions=[hooks.ablate_heads(layer, hs, mode) for layer, hs in sorted(by_layer.items())])


def knockout(
    loaded: LoadedModel, encoding: Encoding, edges: Sequence[tuple[int, int]], layers: Iterable[int] | None = None, *,
    top_k: int = 5, attentions: bool = False,
) -> Effect:
    """Block query→key edges (the query may not see the key) in the chosen layers (default: all) and compare."""
    length = len(encoding)
    layers = sorted(set(range(loaded.info.layers) if layers is None else layers))
    if not layers or not all(0 <= layer < loaded.info.layers for layer in layers):
        raise InputError(f"Layers must be within 0-{loaded.info.layers - 1}.")
    allowed = torch.ones(length, length, dtype=torch.bool)
    for q, k in edges:
        if not (0 <= q < length and 0 <= k < length):
            raise InputError(f"Edge {q}:{k} is outside the input: tokens are 0-{length - 1}.")
        allowed[q, k] = False
    if not allowed.any(-1).all():
        raise InputError("Every token must keep at least one key it may attend to.")
    interventions = [hooks.restrict_attention(layer, allowed, rows=[1]) for layer in layers]
    what = {"edges": sorted([list(e) for e in set(map(tuple, edges))]), "layers": layers}
    return compare(loaded, encoding, interventions, kind="knockout", what=what, top_k=top_k, attentions=attentions)


def with_mask(loaded: LoadedModel, encoding: Encoding, allowed: torch.Tensor, name: str = "custom", *,
              top_k: int = 5, attentions: bool = False) -> Effect:
    """The same weights under another mask (a preset from masks.preset, or any bool matrix), against BERT's
    bidirectional mask."""
    return compare(loaded, encoding, after_mask=allowed, kind="mask", what={"mask": name}, top_k=top_k, attentions=attentions)


@dataclass
class Importance:
    """How much one prediction needs each head: the drop in log P(top token) when that head alone is removed."""

    position: int
    token: str
    log_prob: float
    drop: np.ndarray
    """(layer, head): log P(token) unablated minus log P(token) with that head ablated; > 0: the head helped."""
    mode: str = "zero"

    def top_heads(self, k: int = 5) -> list[tuple[int, int, float]]:
        order = np.argsort(-self.drop, axis=None)[:k]
        return [(int(i // self.drop.shape[1]), int(i % self.drop.shape[1]), float(self.drop.flat[i])) for i in order]

    def to_dict(self) -> dict:
        """The JSON contract of `python -m bertlab importance --json`."""
        return {"position": self.position, "token": self.token, "log_prob": self.log_prob, "mode": self.mode,
                "drop": np.round(self.drop.astype(np.float64), 6).tolist()}


ROW_BUDGET = 2**25
"""Attention cells (rows × heads × tokens²) per forward pass in head importance: at 512 tokens the rows go in
small chunks, so memory stays bounded."""
CHUNKS = 8
"""Long work goes in at least this many chunks (rows of a batch; interpolation steps), so its progress moves and
a Stop (a progress callback raising Stopped) ends it within one chunk; BERT-base's 145 rows at 32 tokens run as
9 passes of 18 rows or fewer, each still one batched pass."""

Progress = Callable[[int, int], None]
"""progress(done, total) after each chunk; it may raise bertlab.Stopped to end the work there."""


def _chunk(rows: int, budget_rows: int) -> int:
    return max(1, min(rows, budget_rows, rows // CHUNKS))


def head_importance(loaded: LoadedModel, encoding: Encoding, position: int, mode: str = "zero",
                    progress: Progress | None = None) -> Importance:
    """Every head ablated alone, one row each (BERT-base: 144 rows plus the unablated one), in batched chunks."""
    loaded.require("mlm")
    length = len(encoding)
    if not 0 <= position < length:
        raise InputError(f"Position {position} is outside the input: tokens are 0-{length - 1}.")
    if mode not in ("zero", "mean"):
        raise InputError(f"Unknown ablation mode '{mode}': choose zero or mean.")
    layers, heads = loaded.info.layers, loaded.info.heads
    rows = 1 + layers * heads
    chunk = _chunk(rows, ROW_BUDGET // (heads * length * length))
    log_probs = []
    if progress:
        progress(0, rows)
    for start in range(0, rows, chunk):
        batch = range(start, min(rows, start + chunk))
        # table[r, layer, head]: is this head ablated in row r? row 0 ablates nothing; row 1 + l·H + h ablates (l, h)
        table = torch.zeros(len(batch), layers, heads, dtype=torch.bool)
        for i, row in enumerate(batch):
            if row:
                table[i, (row - 1) // heads, (row - 1) % heads] = True
        interventions = [hooks.ablate_by_row(layer, table[:, layer], mode) for layer in range(layers) if table[:, layer].any()]
        attention_mask = masks.additive(masks.allowed("bidirectional", length), loaded.dtype).expand(len(batch), -1, -1, -1)
        out, _ = hooks.run(loaded, encoding.input_ids.expand(len(batch), -1), encoding.token_type_ids.expand(len(batch), -1),
                           attention_mask, interventions=interventions)
        log_probs.append(_mlm_log_probs(loaded, out.last_hidden_state, [position])[:, 0])
        if progress:
            progress(batch.stop, rows)
    log_probs = torch.cat(log_probs)  # (row, vocab)
    top = int(log_probs[0].argmax())
    values = log_probs[:, top]
    return Importance(
        position=position, token=loaded.tokenizer.convert_ids_to_tokens(top), log_prob=float(values[0]),
        drop=(values[0] - values[1:]).view(layers, heads).cpu().numpy(), mode=mode,
    )


@dataclass
class Attribution:
    """How much each input token contributed to one prediction (Captum)."""

    tokens: list[str]
    target: str
    """What is explained: the token predicted at a position, or 'IsNext'."""
    method: str
    scores: np.ndarray
    """(token,) attribution of each input token (summed over the embedding dimensions)."""
    baseline: str
    completeness: dict | None = None
    """Integrated gradients: {"sum": Σ scores, "expected": f(input) − f(baseline), "relative_error": ...}."""

    def to_dict(self) -> dict:
        """The JSON contract of `python -m bertlab attribute --json`."""
        return {"tokens": self.tokens, "target": self.target, "method": self.method, "baseline": self.baseline,
                "scores": np.round(self.scores.astype(np.float64), 6).tolist(), "completeness": self.completeness}


METHODS = ("integrated_gradients", "grad_x_input")
BASELINE = ("every token that is not [CLS], [SEP] or [MASK] replaced by [PAD] (segments and positions kept): "
            "the text with its words removed")


def attribute(
    loaded: LoadedModel, encoding: Encoding, position: int | None = None, token: str | None = None,
    method: str = "integrated_gradients", steps: int = 32, progress: Progress | None = None,
) -> Attribution:
    """Attribute log P(token at `position`) (or P(IsNext) when position is None) to the input tokens'
    word embeddings, with Captum's LayerGradientXActivation or LayerIntegratedGradients on the model's own
    word-embedding layer. The function explained is log P for a [MASK] (its completeness is what Captum's
    convergence delta measures) and P(IsNext) for NSP."""
    from captum.attr import LayerGradientXActivation, LayerIntegratedGradients

    if method not in METHODS:
        raise InputError(f"Unknown method '{method}': choose one of {', '.join(METHODS)}.")
    if not 1 <= steps <= 512:
        raise InputError("Steps must be between 1 and 512.")
    length = len(encoding)
    tokenizer = loaded.tokenizer
    if position is None:
        loaded.require("nsp")
        target_id, target = None, "IsNext"
    else:
        loaded.require("mlm")
        if not 0 <= position < length:
            raise InputError(f"Position {position} is outside the input: tokens are 0-{length - 1}.")
        if token is None:
            with torch.inference_mode():
                out, _ = hooks.run(loaded, encoding.input_ids, encoding.token_type_ids, masks.stacked(("bidirectional",), length, loaded.dtype))
            target_id = int(_mlm_log_probs(loaded, out.last_hidden_state, [position])[0, 0].argmax())
        else:
            target_id = vocabulary_id(loaded, token)
        target = tokenizer.convert_ids_to_tokens(target_id)

    device = loaded.device
    segments = encoding.token_type_ids.to(device)
    mask = masks.stacked(("bidirectional",), length, torch.float32)

    done = [0]
    total = steps if method == "integrated_gradients" else 1

    def f(input_ids: torch.Tensor) -> torch.Tensor:
        n = input_ids.shape[0]
        out, _ = hooks.run(loaded, input_ids, segments.expand(n, -1), mask.expand(n, -1, -1, -1), grad=True)
        if progress and torch.is_grad_enabled():  # Captum's passes (the completeness check's two rows are not steps)
            done[0] = min(total, done[0] + n)
            progress(done[0], total)
        if target_id is None:
            return torch.softmax(loaded.nsp_head(out.pooler_output).float(), dim=-1)[:, 0]
        return torch.log_softmax(loaded.mlm_head(out.last_hidden_state[:, position]).float(), dim=-1)[:, target_id]

    keep = {tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.mask_token_id} - {None}
    ids = encoding.input_ids.to(device)
    baseline = torch.where(torch.isin(ids, torch.tensor(sorted(keep), device=device)), ids, torch.full_like(ids, tokenizer.pad_token_id))
    layer = loaded.word_embeddings
    # the interpolation steps run as batches, as many rows a pass as ROW_BUDGET allows (a backward pass keeps
    # each layer's attention), so 512 tokens stay within memory
    rows = _chunk(steps, ROW_BUDGET // (3 * loaded.info.heads * length * length))
    try:
        # Captum's hook on the shared embedding layer would rewrite any other thread's run: hold the model's lock
        with loaded.lock, torch.enable_grad():
            if method == "grad_x_input":
                attributions = LayerGradientXActivation(f, layer).attribute(ids)
                completeness = None
            else:
                ig = LayerIntegratedGradients(f, layer)
                attributions, delta = ig.attribute(ids, baselines=baseline, n_steps=steps, internal_batch_size=rows,
                                                   return_convergence_delta=True)
                with torch.inference_mode():
                    expected = float(f(ids)[0] - f(baseline)[0])
                total = float(attributions.sum())
                completeness = {"sum": total, "expected": expected,
                                "relative_error": abs(total - expected) / max(abs(expected), 1e-9), "delta": float(delta.abs().max())}
    except torch.OutOfMemoryError as err:
        raise ResourceError(f"Attribution of {length} tokens ran out of memory on the {device.type.upper()}: try fewer steps or a shorter text.") from err
    scores = attributions.sum(-1)[0].detach().float().cpu().numpy()
    return Attribution(tokens=[t.text for t in encoding.tokens], target=target, method=method, scores=scores,
                       baseline="" if method == "grad_x_input" else BASELINE, completeness=completeness)


def vocabulary_id(loaded: LoadedModel, word: str) -> int:
    """The id of a word typed as one piece: as typed (lower-cased for an uncased vocabulary), or with the
    tokenizer's word-start mark (RoBERTa's 'Ġdog', SentencePiece's '▁dog'), as the piece after a space is."""
    tokenizer = loaded.tokenizer
    word = word.strip()
    typed = word.lower() if getattr(tokenizer, "do_lower_case", False) or loaded.info.cased is False else word
    vocabulary = tokenizer.get_vocab()
    for piece in (typed, f"{loaded.info.pieces}{typed}" if loaded.info.pieces != "##" else typed):
        if piece in vocabulary:
            return vocabulary[piece]
    raise InputError(f"'{word}' is not a single piece of this model's vocabulary.")


def allowed_or_raise(loaded: LoadedModel, encoding: Encoding, name: str, *, window: int = 2, token: int = 0) -> torch.Tensor:
    """A named mask for this input, with a clear message for bad parameters."""
    try:
        return masks.preset(name, len(encoding), segments=encoding.token_type_ids, window=window, token=token)
    except ValueError as err:
        raise InputError(str(err)) from err


__all__ = [
    "Attribution", "Effect", "Importance", "MaskEffect", "METHODS", "ablate", "allowed_or_raise", "attribute", "compare",
    "head_importance", "knockout", "with_mask",
]
