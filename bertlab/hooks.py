"""Named points inside the encoder, captured or edited for one run (TransformerLens' `run_with_cache` and
`run_with_hooks`, on the checkpoint's own modules).

Every intermediate a view may ask about has a stable dotted name:

    embed.token  embed.segment  embed.position  embed.out
    layer.L.in                       the layer's input hidden state x            (batch, token, hidden)
    layer.L.attn.q / .k / .v         query, key, value projections               (batch, head, token, d_head)
    layer.L.attn.mask                the additive mask the softmax sees          (batch, 1, query, key)
    layer.L.attn.pattern             the attention weights                       (batch, head, query, key)
    layer.L.attn.context             weights · V, per head, before the output projection (batch, head, token, d_head)
    layer.L.attn.out                 the attention sublayer's output A, before the residual (batch, token, hidden)
    layer.L.attn.norm                LayerNorm(A + x)                            (batch, token, hidden)
    layer.L.ffn.act                  the feed-forward activations after GELU     (batch, token, ffn)
    layer.L.ffn.out                  the feed-forward output F, before the residual (batch, token, hidden)
    layer.L.out                      the layer's output LayerNorm(F + h)         (batch, token, hidden)

BERT and DistilBERT name their modules differently; `POINT_MODULES` maps both to these names, so nothing
downstream knows which family ran. A run keeps every batch row, captures only the names asked for (detached,
on the device they were computed on), and applies `Intervention`s, small objects that edit one named point
on chosen rows; all hooks are removed when the run ends, whatever happens.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Sequence

import torch

from .errors import InputError, ResourceError
from .loading import LoadedModel
from .policy import model_slot

EMBED_POINTS = ("embed.token", "embed.segment", "embed.position", "embed.out")
LAYER_POINTS = (
    "in", "attn.q", "attn.k", "attn.v", "attn.mask", "attn.pattern", "attn.context", "attn.out", "attn.norm",
    "ffn.act", "ffn.out", "out",
)
EDITABLE = ("in", "attn.q", "attn.k", "attn.v", "attn.mask", "attn.context", "attn.out", "attn.norm", "ffn.act", "ffn.out", "out")
"""Points an intervention may edit. (The pattern is computed inside the attention function, so it is edited
through `attn.mask`, which is what decides it.)"""

_LAYER_NAME = re.compile(r"^layer\.(\d+)\.(.+)$")

# Where each point lives, per family: (module path from the layer, hook kind). "out": the module's output;
# "in": the module's first positional input; "mask": the `attention_mask` keyword of the attention module;
# "pattern": the second element of the attention module's output.
POINT_MODULES: dict[str, dict[str, tuple[str, str]]] = {
    "bert": {
        "in": ("", "in"),
        "attn.q": ("attention.self.query", "out"),
        "attn.k": ("attention.self.key", "out"),
        "attn.v": ("attention.self.value", "out"),
        "attn.mask": ("attention.self", "mask"),
        "attn.pattern": ("attention.self", "pattern"),
        "attn.context": ("attention.output.dense", "in"),
        "attn.out": ("attention.output.dense", "out"),
        "attn.norm": ("attention.output.LayerNorm", "out"),
        "ffn.act": ("output.dense", "in"),
        "ffn.out": ("output.dense", "out"),
        "out": ("output.LayerNorm", "out"),
    },
    "distilbert": {
        "in": ("", "in"),
        "attn.q": ("attention.q_lin", "out"),
        "attn.k": ("attention.k_lin", "out"),
        "attn.v": ("attention.v_lin", "out"),
        "attn.mask": ("attention", "mask"),
        "attn.pattern": ("attention", "pattern"),
        "attn.context": ("attention.out_lin", "in"),
        "attn.out": ("attention.out_lin", "out"),
        "attn.norm": ("sa_layer_norm", "out"),
        "ffn.act": ("ffn.lin2", "in"),
        "ffn.out": ("ffn.lin2", "out"),
        "out": ("output_layer_norm", "out"),
    },
}
_PER_HEAD = ("attn.q", "attn.k", "attn.v", "attn.context")
"""Points stored (batch, token, heads · d_head) by the model and shown per head: (batch, head, token, d_head)."""


def layers_of(loaded: LoadedModel) -> torch.nn.ModuleList:
    """The encoder's layer stack (BERT: encoder.layer, DistilBERT: transformer.layer)."""
    encoder = loaded.encoder
    return encoder.encoder.layer if loaded.info.family == "bert" else encoder.transformer.layer


def embedding_modules(loaded: LoadedModel) -> dict[str, torch.nn.Module]:
    emb = loaded.embeddings
    parts = {"embed.token": emb.word_embeddings, "embed.position": emb.position_embeddings, "embed.out": emb}
    if loaded.info.has_segments:
        parts["embed.segment"] = emb.token_type_embeddings
    return parts


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


def _locate(loaded: LoadedModel, layer: int, point: str) -> tuple[torch.nn.Module, str]:
    path, kind = POINT_MODULES[loaded.info.family][point]
    module = layers_of(loaded)[layer]
    return (module.get_submodule(path) if path else module), kind


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


@contextlib.contextmanager
def hooked(
    loaded: LoadedModel, capture: Iterable[str] = (), interventions: Iterable[Intervention] = ()
) -> Iterator[Cache]:
    """Install capture and intervention hooks for the runs inside the `with`, remove them after."""
    cache = Cache()
    heads = loaded.info.heads
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
            cache.tensors[name] = view(point, x).detach()
        return x

    handles = []
    try:
        for name, module in embedding_modules(loaded).items():
            if name in wanted:
                handles.append(module.register_forward_hook(
                    lambda _m, _a, out, name=name: cache.tensors.__setitem__(name, out.detach())
                ))
        for layer in range(loaded.info.layers):
            for point in LAYER_POINTS:
                name = f"layer.{layer}.{point}"
                if name not in wanted and name not in edits:
                    continue
                module, kind = _locate(loaded, layer, point)
                handles.append(_register(module, kind, name, point, edited, cache))
        yield cache
    finally:
        for handle in handles:
            handle.remove()


def _register(module: torch.nn.Module, kind: str, name: str, point: str, edited, cache: Cache):
    if kind == "out":
        return module.register_forward_hook(lambda _m, _a, out: edited(name, point, out))
    if kind == "in":
        return module.register_forward_pre_hook(lambda _m, args: (edited(name, point, args[0]), *args[1:]))
    if kind == "mask":
        def pre(_m, args, kwargs):
            mask = kwargs.get("attention_mask")
            if mask is None:  # nothing blocked: an all-zero additive mask, so an edit has something to edit
                hidden = args[0]
                mask = hidden.new_zeros(hidden.shape[0], 1, hidden.shape[1], hidden.shape[1])
            kwargs["attention_mask"] = edited(name, point, mask)
            return args, kwargs

        return module.register_forward_pre_hook(pre, with_kwargs=True)
    # the pattern: the attention module returns (output, weights)
    return module.register_forward_hook(lambda _m, _a, out: cache.tensors.__setitem__(name, out[1].detach()))


def run(
    loaded: LoadedModel,
    input_ids: torch.Tensor,
    token_type_ids: torch.Tensor | None,
    attention_mask: torch.Tensor,
    *,
    capture: Iterable[str] = (),
    interventions: Iterable[Intervention] = (),
    internals: bool = False,
    grad: bool = False,
):
    """One forward pass of the encoder (no heads) on a batch with 4D additive masks, capturing and editing
    named points. `internals` also asks the model for its own attentions and hidden states (every layer);
    `grad` keeps autograd on (attribution). Returns (the model's output, the Cache)."""
    device = loaded.device
    kwargs = {"input_ids": input_ids.to(device), "attention_mask": attention_mask.to(device, loaded.dtype)}
    if loaded.info.has_segments and token_type_ids is not None:
        kwargs["token_type_ids"] = token_type_ids.to(device)
    try:
        with model_slot(), loaded.lock, (contextlib.nullcontext() if grad else torch.inference_mode()):
            with hooked(loaded, capture, interventions) as cache:
                out = loaded.encoder(**kwargs, output_attentions=internals, output_hidden_states=internals, return_dict=True)
        return out, cache
    except torch.OutOfMemoryError as err:
        if device.type == "cuda":
            torch.cuda.empty_cache()
        raise ResourceError(
            f"The {device.type.upper()} ran out of memory for {input_ids.shape[0]} x {input_ids.shape[1]} tokens. "
            "Try a shorter text, fewer sentences, or the CPU (Device in the sidebar, --device cpu)."
        ) from err
