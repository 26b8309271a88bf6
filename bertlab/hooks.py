"""Named points inside the model, captured or edited for one run (TransformerLens' `run_with_cache` and
`run_with_hooks`, on the checkpoint's own modules).

Every intermediate a view may ask about has a stable dotted name:

    embed.token  embed.segment  embed.position  embed.out
    layer.L.in                       the layer's input hidden state x            (batch, token, hidden)
    layer.L.attn.q / .k / .v         query, key, value projections               (batch, head, token, d_head)
    layer.L.attn.mask                the additive mask the softmax sees          (batch, 1, query, key)
    layer.L.attn.pattern             the attention weights                       (batch, head, query, key)
    layer.L.attn.context             weights · V, per head, before the output projection (batch, head, token, d_head)
    layer.L.attn.out                 the attention sublayer's output A, before the residual (batch, token, hidden)
    layer.L.mid                      the stream between the sublayers, h: LayerNorm(A + x) where the family is
                                     post-norm (BERT), x + A where it is pre-norm (ModernBERT, GPT-2)
    layer.L.ffn.act                  the feed-forward activations (after GELU; ModernBERT: the gated product)
    layer.L.ffn.out                  the feed-forward output F, before the residual (batch, token, hidden)
    layer.L.out                      the layer's output: LayerNorm(F + h) post-norm, h + F pre-norm

Each family names its modules differently; its adapter (`bertlab.families`, `loaded.adapter.points`) says
which module is behind each name, so nothing downstream knows which family ran. A run keeps every batch row,
captures only the names asked for (detached, on the device they were computed on), and applies
`Intervention`s, small objects that edit one named point on chosen rows; all hooks are removed when the run
ends, whatever happens. Where one module serves several layers (ALBERT shares one layer's weights), its hook
counts its calls within the run to know which layer it is in.

The mask: the model itself gets only which tokens are padding; every layer's attention module is handed the
run's mask (`attention_mask`, one additive (query, key) matrix per row) by a hook, AND-ed with the layer's own
local window where the family has one (ModernBERT), in the form that module takes (additive, or DeBERTa's
keep-mask). So "bidirectional", "causal" or a drawn mask mean the same for every family, a decoder included.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Sequence

import torch

from .errors import InputError, ResourceError
from .families import fused
from .loading import LoadedModel
from .policy import model_slot

EMBED_POINTS = ("embed.token", "embed.segment", "embed.position", "embed.out")
LAYER_POINTS = (
    "in", "attn.q", "attn.k", "attn.v", "attn.mask", "attn.pattern", "attn.context", "attn.out", "mid",
    "ffn.act", "ffn.out", "out",
)
EDITABLE = ("in", "attn.q", "attn.k", "attn.v", "attn.mask", "attn.context", "attn.out", "mid", "ffn.act", "ffn.out", "out")
"""Points an intervention may edit. (The pattern is computed inside the attention function, so it is edited
through `attn.mask`, which is what decides it.)"""

_LAYER_NAME = re.compile(r"^layer\.(\d+)\.(.+)$")
_PER_HEAD = ("attn.q", "attn.k", "attn.v", "attn.context")
"""Points stored (batch, token, heads · d_head) by the model and shown per head: (batch, head, token, d_head)."""


def embedding_modules(loaded: LoadedModel) -> dict[str, torch.nn.Module]:
    """The embedding lookups this checkpoint has (a family may lack segments or positions) and the module whose
    output is the embedding output, by point name."""
    spec = loaded.adapter.embedding
    parts = {name: loaded.module(path) for name, path in spec.parts.items()}
    parts["embed.out"] = loaded.module(spec.out)
    return {name: module for name, module in parts.items() if module is not None}


def point_names(loaded: LoadedModel) -> list[str]:
    """Every name a run of this model can capture."""
    names = [n for n in EMBED_POINTS if n in embedding_modules(loaded)]
    return names + [f"layer.{layer}.{p}" for layer in range(loaded.info.layers) for p in LAYER_POINTS]


def parse(loaded: LoadedModel, name: str) -> tuple[int | None, str]:
    """`layer.3.attn.q` -> (3, 'attn.q'); `embed.token` -> (None, 'embed.token'); unknown names say what exists."""
    if name in EMBED_POINTS:
        if name not in embedding_modules(loaded):
            raise InputError(f"'{loaded.info.name}' has no {name.split('.')[1]} embeddings.")
        return None, name
    match = _LAYER_NAME.match(name)
    if match and match.group(2) in LAYER_POINTS:
        layer = int(match.group(1))
        if layer >= loaded.info.layers:
            raise InputError(f"Layer {layer} does not exist: '{loaded.info.name}' has layers 0-{loaded.info.layers - 1}.")
        return layer, match.group(2)
    raise InputError(
        f"Unknown point '{name}'. Points are {', '.join(EMBED_POINTS)} and layer.L.<{'|'.join(LAYER_POINTS)}>."
    )


def _split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    batch, tokens, width = x.shape
    return x.view(batch, tokens, heads, width // heads).transpose(1, 2)


def _merge_heads(x: torch.Tensor) -> torch.Tensor:
    batch, heads, tokens, d_head = x.shape
    return x.transpose(1, 2).reshape(batch, tokens, heads * d_head)


@dataclass(frozen=True)
class Intervention:
    """Edit one named point for one run: `edit` receives the point's tensor for the chosen rows (in the
    shape listed in this module's docstring) and returns its replacement, same shape. `rows=None`: all rows."""

    point: str
    edit: Callable[[torch.Tensor], torch.Tensor]
    rows: tuple[int, ...] | None = None
    label: str = ""

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        if self.rows is None:
            return self.edit(x)
        x = x.clone()
        index = torch.tensor(self.rows, device=x.device)
        x[index] = self.edit(x[index])
        return x


def _ablate(context: torch.Tensor, ablated: torch.Tensor, mode: str) -> torch.Tensor:
    """context (batch, head, token, d_head) with the heads marked in `ablated` (batch, head) removed: zeroed,
    or replaced by their mean over tokens."""
    keep = (~ablated).to(context.dtype)[:, :, None, None]
    replacement = torch.zeros_like(context) if mode == "zero" else context.mean(dim=2, keepdim=True).expand_as(context)
    return context * keep + replacement * (1 - keep)


def _check_mode(mode: str) -> None:
    if mode not in ("zero", "mean"):
        raise InputError(f"Unknown ablation mode '{mode}': choose zero or mean.")


def ablate_heads(layer: int, heads: Iterable[int], mode: str = "zero", rows: Sequence[int] | None = None) -> Intervention:
    """Remove heads of one layer from its output: their slice of the context (the output projection's input)
    becomes zero, or its mean over tokens. transformers 5 has no `head_mask` argument; this edits what the
    model's own output projection reads, which is what `head_mask` used to zero."""
    chosen = sorted(set(heads))
    _check_mode(mode)

    def edit(context: torch.Tensor) -> torch.Tensor:  # (batch, head, token, d_head)
        ablated = torch.zeros(context.shape[:2], dtype=torch.bool, device=context.device)
        ablated[:, chosen] = True
        return _ablate(context, ablated, mode)

    return Intervention(f"layer.{layer}.attn.context", edit, None if rows is None else tuple(rows), f"{mode} L{layer} H{chosen}")


def ablate_by_row(layer: int, ablated: torch.Tensor, mode: str = "zero") -> Intervention:
    """A different set of heads per batch row: `ablated[row, head]` (bool). One hook serves every row, so
    ranking all heads is one batched pass instead of a loop of passes."""
    _check_mode(mode)
    return Intervention(f"layer.{layer}.attn.context", lambda context: _ablate(context, ablated.to(context.device), mode),
                        label=f"{mode} L{layer} per row")


def restrict_attention(layer: int, allowed: torch.Tensor, rows: Sequence[int] | None = None) -> Intervention:
    """Block attention edges in one layer: keys not `allowed[query, key]` (bool, (query, key) or
    (row, query, key)) get the mask's most negative value, so their softmax weight is exactly 0. Edges the
    run's mask already blocks stay blocked."""

    def edit(mask: torch.Tensor) -> torch.Tensor:  # (batch, 1, query, key), additive
        grid = allowed.to(mask.device)
        grid = grid.view(1, 1, *grid.shape[-2:]) if grid.dim() == 2 else grid.unsqueeze(1)
        return mask.masked_fill(~grid, torch.finfo(mask.dtype).min)

    return Intervention(f"layer.{layer}.attn.mask", edit, None if rows is None else tuple(rows), f"mask L{layer}")


@dataclass
class Cache:
    """The captured points of one run, by name, on the device they were computed on (move with `.cpu()`
    only what a view reads)."""

    tensors: dict[str, torch.Tensor] = field(default_factory=dict)

    def __getitem__(self, name: str) -> torch.Tensor:
        try:
            return self.tensors[name]
        except KeyError:
            raise KeyError(f"'{name}' was not captured in this run; ask for it in `capture`.") from None

    def __contains__(self, name: str) -> bool:
        return name in self.tensors

    def names(self) -> list[str]:
        return list(self.tensors)


@dataclass(eq=False)
class _Target:
    """One hook on one module: the layers it serves in call order (one, or every layer for a shared module) and,
    per layer, the point it is there."""

    module: torch.nn.Module
    kind: str
    chunk: int | None
    serves: list[int]
    names: dict[int, tuple[str, str]] = field(default_factory=dict)
    calls: int = 0
    armed: bool | None = None
    """For a point that is only a module's first call within an enclosing module's call (Point.first_in): set
    when the enclosing module starts, cleared by that first call; None: every call counts."""

    def layer(self) -> int:
        """Which layer this call is: a shared module is called once per layer it serves, in order, every pass."""
        layer = self.serves[self.calls % len(self.serves)]
        self.calls += 1
        return layer


@contextlib.contextmanager
def hooked(
    loaded: LoadedModel, capture: Iterable[str] = (), interventions: Iterable[Intervention] = (),
    mask: torch.Tensor | None = None, keep: str | None = None,
) -> Iterator[Cache]:
    """Install capture and intervention hooks for the runs inside the `with`, remove them after. `mask`
    ((batch, 1, query, key), additive) is handed to every layer's attention module, with the layer's local
    window where it has one; `keep` names one captured point stored with its autograd graph (the last layer's
    output, which heads read)."""
    cache = Cache()
    heads = loaded.info.heads
    adapter = loaded.adapter
    edits: dict[str, list[Intervention]] = {}
    for intervention in interventions:
        layer, point = parse(loaded, intervention.point)
        if layer is None or point not in EDITABLE:
            raise InputError(f"'{intervention.point}' cannot be edited; editable: layer.L.<{'|'.join(EDITABLE)}>.")
        edits.setdefault(intervention.point, []).append(intervention)
    wanted = set(capture)
    for name in wanted:
        parse(loaded, name)

    def view(point: str, x: torch.Tensor) -> torch.Tensor:
        return _split_heads(x, heads) if point in _PER_HEAD else x

    def unview(point: str, x: torch.Tensor) -> torch.Tensor:
        return _merge_heads(x) if point in _PER_HEAD else x

    def edited(name: str, point: str, x: torch.Tensor) -> torch.Tensor:
        if name in edits:
            y = view(point, x)
            for intervention in edits[name]:
                y = intervention.apply(y)
            x = unview(point, y)
        if name in wanted:
            cache.tensors[name] = view(point, x) if name == keep else view(point, x).detach()
        return x

    layers = loaded.layers
    serves: dict[int, list[int]] = {}
    for layer, block in enumerate(layers):
        serves.setdefault(id(block), []).append(layer)
    windows = loaded.info.windows
    targets: dict[tuple, _Target] = {}
    arming: list[tuple[torch.nn.Module, _Target]] = []
    for layer, block in enumerate(layers):
        for point in LAYER_POINTS:
            name = f"layer.{layer}.{point}"
            if name not in wanted and name not in edits and not (point == "attn.mask" and (mask is not None or layer in windows)):
                continue
            spec = adapter.points[point]
            module = block.get_submodule(spec.path) if spec.path else block
            key = (id(module), spec.kind, spec.chunk)
            if key not in targets:
                targets[key] = _Target(module, spec.kind, spec.chunk, serves[id(block)], armed=None if spec.first_in is None else False)
                if spec.first_in is not None:
                    arming.append((block.get_submodule(spec.first_in), targets[key]))
            targets[key].names[layer] = (name, point)

    def masked(layer: int, given: torch.Tensor | None, hidden: torch.Tensor) -> torch.Tensor:
        """The additive mask this layer's softmax sees: the run's (or, without one, the model's), within the
        layer's local window."""
        x = mask if mask is not None else given
        if x is None:  # nothing blocked: an all-zero additive mask, so an edit has something to edit
            x = hidden.new_zeros(hidden.shape[0], 1, hidden.shape[1], hidden.shape[1])
        if layer in windows:
            positions = torch.arange(x.shape[-1], device=x.device)
            inside = (positions[None, :] - positions[:, None]).abs() <= windows[layer]
            x = x.masked_fill(~inside, torch.finfo(x.dtype).min)
        return x

    handles = []
    try:
        for name, module in embedding_modules(loaded).items():
            if name in wanted:
                handles.append(module.register_forward_hook(
                    lambda _m, _a, out, name=name: cache.tensors.__setitem__(name, out.detach())
                ))
        for enclosing, target in arming:
            handles.append(enclosing.register_forward_pre_hook(lambda _m, _a, target=target: setattr(target, "armed", True)))
        for target in targets.values():
            handles.append(_register(target, edited, cache, masked, adapter.mask_format))
        yield cache
    finally:
        for handle in handles:
            handle.remove()


def _register(target: _Target, edited, cache: Cache, masked, mask_format: str):
    """One hook for a target; each call works out its layer first (so a shared module's count stays right)."""
    module, kind, chunk = target.module, target.kind, target.chunk
    if kind == "out":
        def after(_m, _a, out):
            if target.armed is False:  # a later call within the same pass (DeBERTa's positions): not the point
                return None
            if target.armed:
                target.armed = False
            layer = target.layer()
            if layer not in target.names:
                return None
            name, point = target.names[layer]
            part = fused(out, chunk)
            new = edited(name, point, part)
            if chunk is None:
                return new
            if new is part:  # only read: the fused output stays as it is
                return None
            out = out.clone()
            width = out.shape[-1] // 3
            out[..., chunk * width:(chunk + 1) * width] = new
            return out

        return module.register_forward_hook(after)
    if kind == "in":
        def before(_m, args):
            layer = target.layer()
            if layer not in target.names:
                return None
            return (edited(*target.names[layer], args[0]), *args[1:])

        return module.register_forward_pre_hook(before)
    if kind == "mask":
        def pre(_m, args, kwargs):
            layer = target.layer()
            keyword = "attention_mask" in kwargs or len(args) < 2
            given = kwargs.get("attention_mask") if keyword else args[1]
            if given is not None and given.dtype == torch.bool or mask_format == "keep":
                given = None  # not additive: the run's mask (always given by run()) replaces it
            x = masked(layer, given, args[0])
            if layer in target.names:
                x = edited(*target.names[layer], x)
            if mask_format == "keep":  # DeBERTa fills where this is 0 itself
                x = (x > torch.finfo(x.dtype).min / 2).to(x.dtype)
            if keyword:
                kwargs["attention_mask"] = x
            else:
                args = (args[0], x, *args[2:])
            return args, kwargs

        return module.register_forward_pre_hook(pre, with_kwargs=True)

    def weights(_m, _a, out):  # the pattern: the attention module returns (output, weights)
        layer = target.layer()
        if layer in target.names:
            cache.tensors[target.names[layer][0]] = out[1].detach()

    return module.register_forward_hook(weights)


def run(
    loaded: LoadedModel,
    input_ids: torch.Tensor,
    token_type_ids: torch.Tensor | None,
    attention_mask: torch.Tensor,
    *,
    valid: torch.Tensor | None = None,
    capture: Iterable[str] = (),
    interventions: Iterable[Intervention] = (),
    internals: bool = False,
    grad: bool = False,
):
    """One forward pass of the base model (no heads) on a batch, every layer under `attention_mask` ((batch, 1,
    query, key), additive: bertlab.masks), capturing and editing named points. `valid` (batch, token) marks
    real tokens (1) and padding (0), for the model's own use (DeBERTa zeroes padded embeddings); default: none
    padded. `internals` also asks the model for its own attentions and hidden states (every layer); `grad` keeps
    autograd on (attribution). Returns (the model's output, the Cache).

    For pre-norm families the output's `last_hidden_state` (and the last of `hidden_states`) is the residual
    stream after the last layer, before the final LayerNorm, so every hidden state is the same kind of vector;
    the heads (`loaded.heads`) apply that LayerNorm, as the model's own heads do."""
    device = loaded.device
    adapter = loaded.adapter
    padding = torch.ones(input_ids.shape, dtype=torch.long) if valid is None else valid.long()
    kwargs = {"input_ids": input_ids.to(device), "attention_mask": padding.to(device), **adapter.run_options}
    if loaded.info.has_segments and token_type_ids is not None:
        kwargs["token_type_ids"] = token_type_ids.to(device)
    last = f"layer.{loaded.info.layers - 1}.out" if adapter.final_norm else None
    capture = list(capture) + ([last] if last else [])
    try:
        with model_slot(), loaded.lock, (contextlib.nullcontext() if grad else torch.inference_mode()):
            with hooked(loaded, capture, interventions, mask=attention_mask.to(device, loaded.dtype), keep=last) as cache:
                out = loaded.encoder(**kwargs, output_attentions=internals, output_hidden_states=internals, return_dict=True)
        if last:
            out.last_hidden_state = cache[last]
            if internals:
                out.hidden_states = (*out.hidden_states[:-1], cache[last].detach())
            cache.tensors[last] = cache[last].detach()
        return out, cache
    except torch.OutOfMemoryError as err:
        if device.type == "cuda":
            torch.cuda.empty_cache()
        raise ResourceError(
            f"The {device.type.upper()} ran out of memory for {input_ids.shape[0]} x {input_ids.shape[1]} tokens. "
            "Try a shorter text, fewer sentences, or the CPU (Device in the sidebar, --device cpu)."
        ) from err
