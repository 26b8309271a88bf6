"""Does attention explain? Six measures of how much each input token influences one position P, side by side,
with their agreement measured.

    attention             the last layer's attention row of P, averaged over heads
    rollout               row P of attention rollout through every layer (bertlab.metrics.rollout)
    norm                  norm-based attention (Kobayashi et al., 2020): ‖Σ_h α^h_{P,j} (x_j W_V^h + b_V^h) W_O^h‖,
                          what token j really adds to P's attention output, from the layer's own value and
                          output projections
    value_zeroing         (Mohebbi et al., 2023): token j's value vectors zeroed in every head of a layer; the
                          cosine distance of that layer's output at P to the unmodified one
    occlusion             token j replaced by the mask token (specials kept): the drop in log P(target) at P with
                          an MLM head, else the cosine distance of P's last hidden state
    integrated_gradients  Captum's, as `experiments.attribute` computes it (without an MLM head: of the cosine
                          between P's last hidden state and its unmodified value)

Each is normalized to sum 1 over the tokens (absolute values where signed), and every pair is compared by
Spearman's rank correlation over the tokens every measure can score. Everything runs on the model's own
modules through bertlab.hooks, in a few batched passes: one plain row (attention, rollout, norm), n + 1 rows
for value zeroing at every layer at once, one row per ordinary token for occlusion, and Captum's batched steps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from . import experiments, hooks, masks, metrics
from .atlas import Stopped
from .errors import InputError
from .loading import LoadedModel
from .tokens import Encoding

METHODS = ("attention", "rollout", "norm", "value_zeroing", "occlusion", "integrated_gradients")
LAYERED = ("attention", "norm", "value_zeroing")
"""Measures that exist at every layer (the page's layer slider): the last layer's is the one in `methods`."""
NAMES = {
    "attention": "attention", "rollout": "rollout", "norm": "norm-based", "value_zeroing": "value zeroing",
    "occlusion": "occlusion", "integrated_gradients": "integrated gradients",
}


@dataclass
class Influence:
    """Six measures of how much each input token influences position `position`."""

    position: int
    token: str
    """The token at P."""
    target: str | None
    """The token whose log-probability occlusion and integrated gradients explain (the MLM head's top guess at P,
    or the one asked for); None without an MLM head (they then explain P's last hidden state)."""
    tokens: list[str]
    mask: str
    """The mask every run used: the one the model was trained with (causal for a decoder)."""
    methods: dict[str, np.ndarray]
    """METHODS -> (token,) normalized: non-negative, summing to 1 (all zeros when a measure is 0 everywhere)."""
    raw: dict[str, np.ndarray]
    """METHODS -> (token,) before normalization (occlusion and integrated gradients signed)."""
    layers: dict[str, np.ndarray]
    """LAYERED -> (layer, token), each layer's row normalized like `methods`."""
    compared: list[int]
    """The positions Spearman's ρ is computed over: ordinary tokens (not [CLS], [SEP], [MASK], ...) that P may see."""
    spearman: dict[str, dict[str, float | None]]
    """method -> method -> ρ over `compared` (None where a measure is constant there or fewer than 3 tokens)."""
    replacement: str
    """What occlusion puts in place of a token."""
    explained: str
    """What occlusion and integrated gradients measure, in words."""
    completeness: dict | None = None
    """Integrated gradients: {"sum", "expected", "relative_error", ...} (Captum's convergence check)."""
    special: list[bool] = field(default_factory=list)

    def to_dict(self) -> dict:
        """The JSON contract of `bertlab influence --json`."""
        return {
            "position": self.position,
            "token": self.token,
            "target": self.target,
            "tokens": self.tokens,
            "methods": {m: _rounded(v) for m, v in self.methods.items()},
            "spearman": {m: {m2: None if r is None else round(r, 6) for m2, r in row.items()} for m, row in self.spearman.items()},
            "mask": self.mask,
            "compared": self.compared,
            "layers": {m: [_rounded(row) for row in v] for m, v in self.layers.items()},
            "raw": {m: _rounded(v) for m, v in self.raw.items()},
            "replacement": self.replacement,
            "explained": self.explained,
            "completeness": self.completeness,
            "disagreement": disagreement(self),
        }


def _rounded(values: np.ndarray) -> list[float]:
    return np.round(np.asarray(values, dtype=np.float64), 6).tolist()


def normalized(scores: np.ndarray | torch.Tensor, axis: int = -1) -> np.ndarray:
    """|scores| / Σ|scores| along `axis` (zeros where the sum is 0: a measure that sees no influence says so)."""
    x = np.abs(np.asarray(scores, dtype=np.float64))
    total = x.sum(axis=axis, keepdims=True)
    return np.divide(x, total, out=np.zeros_like(x), where=total > 0)


# --- Spearman's ρ, by hand -------------------------------------------------------------------------
# numpy has no rank correlation and scipy is not a dependency: average ranks for ties, then Pearson of the ranks
# (the textbook definition, as scipy.stats.spearmanr computes it).


def ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 0..n-1 of `x`, tied values sharing the mean of their ranks."""
    x = np.asarray(x, dtype=np.float64)
    order = np.argsort(x, kind="mergesort")
    rank = np.empty(len(x), dtype=np.float64)
    rank[order] = np.arange(len(x))
    _, inverse = np.unique(x, return_inverse=True)
    return (np.bincount(inverse, weights=rank) / np.bincount(inverse))[inverse]


def spearman(a: np.ndarray, b: np.ndarray) -> float | None:
    """Spearman's rank correlation of a and b; None when either is constant or there are fewer than 3 values."""
    if len(a) < 3:
        return None
    ra, rb = ranks(a), ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denominator = float(np.sqrt((ra**2).sum() * (rb**2).sum()))
    if denominator == 0:
        return None
    return float((ra * rb).sum() / denominator)


def spearman_matrix(methods: dict[str, np.ndarray], positions: list[int]) -> dict[str, dict[str, float | None]]:
    chosen = {m: np.asarray(v)[positions] for m, v in methods.items()}
    return {m: {m2: spearman(chosen[m], chosen[m2]) for m2 in chosen} for m in chosen}


# --- the measures ----------------------------------------------------------------------------------


def output_projection(loaded: LoadedModel, layer: int) -> torch.Tensor:
    """(heads · d_head, hidden): the attention output projection's weight as `context @ W` (no bias), from the
    layer's own module: nn.Linear stores (out, in), GPT-2's Conv1D (in, out)."""
    module = loaded.layers[layer].get_submodule(loaded.adapter.points["attn.out"].path)
    weight = module.weight
    if isinstance(module, torch.nn.Linear):
        return weight.T
    from transformers.pytorch_utils import Conv1D

    if isinstance(module, Conv1D):
        return weight
    raise InputError(f"bertlab cannot read the attention output projection of '{loaded.info.name}' ({type(module).__name__}).")


def norm_based(loaded: LoadedModel, attentions: torch.Tensor, values: torch.Tensor, position: int) -> torch.Tensor:
    """(layer, token): ‖Σ_h α^h_{P,j} v^h_j W_O^h‖ at every layer, where v^h_j = x_j W_V^h + b_V^h is the value
    vector the model computed (its `attn.v` point) and W_O^h head h's rows of the output projection: the vector
    token j adds to P's attention output, whose sum over j is that output less the projection's bias.
    `attentions` (layer, head, query, key), `values` (layer, head, token, d_head)."""
    out = []
    for layer in range(attentions.shape[0]):
        weighted = attentions[layer, :, position, :, None].float() * values[layer].float()  # (head, token, d_head)
        context = weighted.transpose(0, 1).reshape(values.shape[2], -1)  # (token, heads · d_head), heads in order
        out.append((context @ output_projection(loaded, layer).float()).norm(dim=-1))
    return torch.stack(out)


def _row_budget(loaded: LoadedModel, length: int, rows: int) -> int:
    """Rows per forward pass for `rows` rows, within experiments.ROW_BUDGET attention cells. Not cut into
    experiments.CHUNKS passes as integrated gradients' steps are: those steps already make progress move (the
    value-zeroing and occlusion passes each cost about a quarter of them), and on a CPU eight small passes cost up
    to several times one batched pass."""
    return max(1, min(rows, experiments.ROW_BUDGET // (loaded.info.heads * length * length)))


def zeroing_rows(loaded: LoadedModel, length: int) -> int:
    """Rows per value-zeroing pass: the unmodified row and at least one token."""
    return max(2, _row_budget(loaded, length, length + 1))


def value_zeroing(loaded: LoadedModel, encoding: Encoding, position: int, mask: str,
                  step: Callable[[], None] | None = None) -> torch.Tensor:
    """(layer, token): for each layer l and token j, token j's value vectors zeroed in every head of layer l
    alone, and 1 − cosine(layer l's output at P, its unmodified output at P).

    Every (layer, token) in one batched pass of n + 1 rows (chunked within ROW_BUDGET): row 0 is the unmodified
    run, row 1 + j zeroes token j's values in every layer, and at each layer's input every row is reset to row
    0's, so what layer l outputs in row 1 + j is layer l on the unmodified stream with only its own values of j
    zeroed. (The layers after l in that row are not wasted: they are layer l + 1's measurement.)"""
    n, layers = len(encoding), loaded.info.layers
    chunk = zeroing_rows(loaded, n)
    outputs = torch.empty(layers, n + 1, loaded.info.hidden_size, dtype=torch.float64)
    todo = list(range(n))
    while todo:
        js, todo = todo[: chunk - 1], todo[chunk - 1:]
        rows = len(js) + 1
        keep = torch.ones(rows, n)
        keep[torch.arange(1, rows), js] = 0
        seen: dict[int, torch.Tensor] = {}

        def zero(v: torch.Tensor) -> torch.Tensor:  # (row, head, token, d_head)
            return v * keep.to(v.device, v.dtype)[:, None, :, None]

        def record(layer: int):
            def read(x: torch.Tensor) -> torch.Tensor:
                seen[layer] = x[:, position].double().cpu()
                return x
            return read

        interventions = []
        for layer in range(layers):
            interventions += [
                hooks.Intervention(f"layer.{layer}.in", lambda x: x[:1].expand_as(x).contiguous()),
                hooks.Intervention(f"layer.{layer}.attn.v", zero),
                hooks.Intervention(f"layer.{layer}.out", record(layer)),
            ]
        attention_mask = masks.stacked((mask,), n, loaded.dtype).expand(rows, -1, -1, -1)
        hooks.run(loaded, encoding.input_ids.expand(rows, -1), encoding.token_type_ids.expand(rows, -1), attention_mask,
                  interventions=interventions)
        for layer in range(layers):
            outputs[layer, 0] = seen[layer][0]
            outputs[layer, [j + 1 for j in js]] = seen[layer][1:]
        if step:
            step()
    return cosine_distance(outputs[:, 1:], outputs[:, :1])


def cosine_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """1 − cosine along the last axis, in float64: a token that barely moves P has a distance of 1e-5 or less,
    which float32's cosine (±1e-7 near 1) would blur by a percent."""
    return 1 - torch.nn.functional.cosine_similarity(a.double(), b.double(), dim=-1, eps=1e-30)


def replacement_id(loaded: LoadedModel) -> tuple[int, str]:
    """What occlusion puts in place of a token, and how to say it: the mask token; a decoder has none (GPT-2),
    so a single space, the nearest thing to an empty slot that keeps every position; else the unknown token."""
    tokenizer = loaded.tokenizer
    if tokenizer.mask_token_id is not None:
        return tokenizer.mask_token_id, f"{tokenizer.mask_token} (the mask token)"
    space = tokenizer(" ", add_special_tokens=False)["input_ids"]
    if len(space) == 1:
        piece = tokenizer.convert_ids_to_tokens(space[0])
        return space[0], f"“{piece}”, a single space ({loaded.info.title} has no mask token)"
    if tokenizer.unk_token_id is not None:
        return tokenizer.unk_token_id, f"{tokenizer.unk_token} ({loaded.info.title} has no mask token)"
    raise InputError(f"'{loaded.info.name}' has no mask token and no token to occlude with.")


def occlusion(loaded: LoadedModel, encoding: Encoding, position: int, mask: str, target_id: int | None,
              replace_with: int, step: Callable[[], None] | None = None) -> torch.Tensor:
    """(token,): each ordinary token replaced by `replace_with` (specials kept: they score 0), one row per token
    plus the unmodified row, batched within ROW_BUDGET. With `target_id`: log P(target at P) unmodified minus
    occluded (> 0: the token helped); without: 1 − cosine of P's last hidden state to its unmodified value."""
    n = len(encoding)
    occluded = [t.position for t in encoding.tokens if not t.special]
    ids = encoding.input_ids.expand(len(occluded) + 1, -1).clone()
    ids[torch.arange(1, len(occluded) + 1), occluded] = replace_with
    chunk = _row_budget(loaded, n, ids.shape[0])
    read = []
    for start in range(0, ids.shape[0], chunk):
        part = ids[start:start + chunk]
        attention_mask = masks.stacked((mask,), n, loaded.dtype).expand(part.shape[0], -1, -1, -1)
        out, _ = hooks.run(loaded, part, encoding.token_type_ids.expand(part.shape[0], -1), attention_mask)
        hidden = out.last_hidden_state[:, position]
        if target_id is None:
            read.append(hidden.double().cpu())
        else:
            with torch.inference_mode():
                read.append(torch.log_softmax(loaded.mlm_head(hidden).float(), dim=-1)[:, target_id].cpu())
        if step:
            step()
    values = torch.cat(read)
    if target_id is None:
        change = cosine_distance(values[1:], values[:1])
    else:
        change = values[0] - values[1:]
    scores = torch.zeros(n, dtype=torch.float64)
    scores[occluded] = change.double()
    return scores


def _ig_hidden(loaded: LoadedModel, encoding: Encoding, position: int, mask: str, reference: torch.Tensor,
               steps: int, progress: Callable[[int, int], None] | None = None) -> tuple[np.ndarray, dict]:
    """Integrated gradients without an MLM head: of f(input) = cosine(P's last hidden state, its unmodified value),
    on the word-embedding layer with Captum, from experiments.attribute's baseline (every token that is not
    [CLS], [SEP] or [MASK] replaced by the padding token)."""
    from captum.attr import LayerIntegratedGradients

    n = len(encoding)
    device = loaded.device
    tokenizer = loaded.tokenizer
    segments = encoding.token_type_ids.to(device)
    grid = masks.stacked((mask,), n, torch.float32)
    reference = reference.to(device).float()

    done = [0]

    def f(input_ids: torch.Tensor) -> torch.Tensor:
        rows = input_ids.shape[0]
        out, _ = hooks.run(loaded, input_ids, segments.expand(rows, -1), grid.expand(rows, -1, -1, -1), grad=True)
        if progress and torch.is_grad_enabled():  # Captum's steps (the completeness check's rows are not steps)
            done[0] = min(steps, done[0] + rows)
            progress(done[0], steps)
        return torch.nn.functional.cosine_similarity(out.last_hidden_state[:, position].float(), reference[None], dim=-1)

    ids = encoding.input_ids.to(device)
    keep = sorted({tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.mask_token_id} - {None})
    kept = torch.isin(ids, torch.tensor(keep, device=device, dtype=ids.dtype)) if keep else torch.zeros_like(ids, dtype=torch.bool)
    baseline = torch.where(kept, ids, torch.full_like(ids, tokenizer.pad_token_id))
    rows = max(1, min(steps, experiments.ROW_BUDGET // (3 * loaded.info.heads * n * n), steps // experiments.CHUNKS))
    with loaded.lock, torch.enable_grad():
        ig = LayerIntegratedGradients(f, loaded.word_embeddings)
        attributions, delta = ig.attribute(ids, baselines=baseline, n_steps=steps, internal_batch_size=rows,
                                           return_convergence_delta=True)
        with torch.inference_mode():
            expected = float(f(ids)[0] - f(baseline)[0])
    total = float(attributions.sum())
    completeness = {"sum": total, "expected": expected, "relative_error": abs(total - expected) / max(abs(expected), 1e-9),
                    "delta": float(delta.abs().max())}
    return attributions.sum(-1)[0].detach().float().cpu().numpy(), completeness


def influence(loaded: LoadedModel, encoding: Encoding, position: int | None = None, token: str | None = None,
              steps: int = 32, *, progress: Callable[[int, int], None] | None = None,
              should_stop: Callable[[], bool] | None = None) -> Influence:
    """The six measures for position P (default: the first [MASK]) under the mask the model was trained with.
    `token`: the token whose probability occlusion and integrated gradients explain (default: the MLM head's top
    guess at P); ignored without an MLM head. `progress(done, total)` after each batched pass and each of
    integrated gradients' steps (and with 0 first); it may raise bertlab.Stopped to end the work there, and
    `should_stop()` is asked at the same points: a True answer raises `Stopped`."""
    n = len(encoding)
    if position is None:
        if not encoding.mask_positions:
            raise InputError("Name the position to explain (--position P; 0 is the first token), or put [MASK] in the text.")
        position = encoding.mask_positions[0]
    if not 0 <= position < n:
        raise InputError(f"Position {position} is outside the input: tokens are 0-{n - 1}.")
    if not 1 <= steps <= 512:
        raise InputError("Steps must be between 1 and 512.")
    mask = loaded.info.mask_as_trained
    layers = loaded.info.layers
    tokenizer = loaded.tokenizer
    has_mlm = loaded.mlm_head is not None
    occluded_rows = sum(not t.special for t in encoding.tokens) + 1
    total = (1 + -(-n // (zeroing_rows(loaded, n) - 1)) + steps
             + -(-occluded_rows // _row_budget(loaded, n, occluded_rows)))
    done = [0]

    def step(count: int = 1) -> None:
        """`count` more steps done: say so, and stop here if asked."""
        if count == 0 and done[0]:
            return
        done[0] += count
        if progress:
            progress(done[0], total)
        if should_stop and done[0] < total and should_stop():
            raise Stopped(done[0], total, "steps")

    def ig_step(ig_done: int, ig_total: int) -> None:
        """Integrated gradients' own progress (interpolation steps), as steps of the whole."""
        step(ig_done - ig_seen[0])
        ig_seen[0] = ig_done

    ig_seen = [0]
    step(0)

    # one plain row: every layer's attention and value vectors, P's last hidden state
    out, cache = hooks.run(loaded, encoding.input_ids, encoding.token_type_ids, masks.stacked((mask,), n, loaded.dtype),
                           capture=[f"layer.{layer}.attn.v" for layer in range(layers)], internals=True)
    attentions = torch.stack([a[0] for a in out.attentions]).float()  # (layer, head, query, key)
    values = torch.stack([cache[f"layer.{layer}.attn.v"][0] for layer in range(layers)])  # (layer, head, token, d_head)
    last = out.last_hidden_state[0, position].detach().float()
    with torch.inference_mode():
        per_layer_attention = attentions[:, :, position].mean(1)  # (layer, key)
        roll = metrics.rollout(attentions)[-1, position]
        norms = norm_based(loaded, attentions, values, position)
    step()
    zeroing = value_zeroing(loaded, encoding, position, mask, step)

    replace_with, replacement = replacement_id(loaded)
    completeness = None
    if has_mlm:
        attribution = experiments.attribute(loaded, encoding, position, token, steps=steps, progress=ig_step)
        target = attribution.target
        target_id = tokenizer.convert_tokens_to_ids(target)
        ig, completeness = attribution.scores, attribution.completeness
        explained = f"log P(“{target}”) at position {position}"
    else:
        target, target_id = None, None
        ig, completeness = _ig_hidden(loaded, encoding, position, mask, last, steps, ig_step)
        explained = f"the cosine of position {position}'s last hidden state to its unmodified value"
    step(steps - ig_seen[0])  # whatever of the steps integrated gradients did not report
    occluded = occlusion(loaded, encoding, position, mask, target_id, replace_with, step)

    raw = {
        "attention": per_layer_attention[-1].cpu().numpy(),
        "rollout": roll.cpu().numpy(),
        "norm": norms[-1].cpu().numpy(),
        "value_zeroing": zeroing[-1].cpu().numpy(),
        "occlusion": occluded.cpu().numpy(),
        "integrated_gradients": np.asarray(ig, dtype=np.float64),
    }
    methods = {m: normalized(raw[m]) for m in METHODS}
    visible = masks.allowed(mask, n)[position]
    compared = [t.position for t in encoding.tokens if not t.special and bool(visible[t.position])]
    return Influence(
        position=position,
        token=encoding.tokens[position].text,
        target=target,
        tokens=[t.text for t in encoding.tokens],
        mask=mask,
        methods=methods,
        raw={m: np.asarray(v, dtype=np.float64) for m, v in raw.items()},
        layers={"attention": normalized(per_layer_attention.cpu().numpy()), "norm": normalized(norms.cpu().numpy()),
                "value_zeroing": normalized(zeroing.cpu().numpy())},
        compared=compared,
        spearman=spearman_matrix(methods, compared),
        replacement=replacement,
        explained=explained,
        completeness=completeness,
        special=[t.special for t in encoding.tokens],
    )


def disagreement(result: Influence) -> str:
    """Where the measures agree and where they do not, in one or two sentences measured on this input: which
    token each measure puts first, and the least and most agreeing pairs by Spearman's ρ."""
    tokens, compared = result.tokens, result.compared
    if not compared:
        return "No ordinary token is visible from this position, so the measures have nothing to rank."
    tops = {m: compared[int(np.argmax(v[compared]))] for m, v in result.methods.items() if v[compared].sum() > 0}
    by_top: dict[int, list[str]] = {}
    for m, top in tops.items():
        by_top.setdefault(top, []).append(NAMES[m])
    if len(by_top) == 1:
        (top, names), = by_top.items()
        first = f"All {len(names)} measures put “{tokens[top]}” ({top}) first among the ordinary tokens"
    else:
        groups = sorted(by_top.items(), key=lambda item: -len(item[1]))
        first = "The measures disagree on which ordinary token mattered most: " + "; ".join(
            f"{_join(names)} {'put' if len(names) > 1 else 'puts'} “{tokens[top]}” ({top}) first" for top, names in groups)
    pairs = [(r, a, b) for i, a in enumerate(METHODS) for b in METHODS[i + 1:]
             if (r := result.spearman.get(a, {}).get(b)) is not None]
    if not pairs:
        return first + f" (too few tokens ({len(compared)}) to rank-correlate them)."
    low, high = min(pairs), max(pairs)
    return (f"{first}. Over the {len(compared)} ordinary tokens position {result.position} can see, "
            f"{NAMES[low[1]]} and {NAMES[low[2]]} agree least (Spearman ρ = {low[0]:+.2f}) and "
            f"{NAMES[high[1]]} and {NAMES[high[2]]} most (ρ = {high[0]:+.2f}).")


def _join(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


__all__ = ["Influence", "LAYERED", "METHODS", "disagreement", "influence", "norm_based", "normalized", "occlusion",
           "output_projection", "ranks", "replacement_id", "spearman", "value_zeroing"]
