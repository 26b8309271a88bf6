"""Model families as data: what BERT, DistilBERT, RoBERTa, ALBERT, ELECTRA, DeBERTa-v2/v3, ModernBERT and GPT-2
do differently, one `Adapter` per family (one module each in this package).

An adapter is a table and a few facts, in the shape of TransformerLens' architecture adapters: which of the
model's own modules is behind each named point (`bertlab.hooks`), where LayerNorm sits (post: LayerNorm(F(x) + x),
as BERT; pre: x + F(LayerNorm(x)), as ModernBERT and GPT-2), how positions enter (learned absolute, rotary,
relative), which layers attend locally and how far, which embedding lookups the model adds (and whether a
projection follows), which heads a checkpoint of each class can hold, how pieces are marked, and whether layers
share weights. The rest of bertlab asks `loaded.adapter`, never which family ran; adding a family is adding a
module here and registering it in `ADAPTERS`, plus its tiny checkpoint in the tests.

Where a family computes something no table can say (DeBERTa's disentangled scores, ModernBERT's rotation of q
and k), the adapter carries a small function that calls the model's own modules; tests prove each equal to the
model's own attention weights.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping

import torch

if TYPE_CHECKING:
    from transformers import PretrainedConfig

Head = Callable[[torch.Tensor], torch.Tensor]
"""A prediction head on the raw residual stream (…, hidden) -> logits (…, classes); a pre-norm family's head
applies the model's final LayerNorm first, as its forward does."""


@dataclass(frozen=True)
class Point:
    """Where a named point lives inside one layer: a module path from the layer ('' = the layer itself) and what
    of it to read: 'out' (its output), 'in' (its first input), 'mask' (the attention mask it is handed, as the
    keyword `attention_mask` or its second argument), 'pattern' (the attention weights, its output's second
    element). `chunk` picks one third of a fused projection's output (q, k, v of ModernBERT's Wqkv, GPT-2's c_attn)."""

    path: str
    kind: str
    chunk: int | None = None
    first_in: str | None = None
    """Only the first call of the module within each call of this enclosing module (a path from the layer) is the
    point: DeBERTa runs its query and key projections again on the relative-position embeddings."""


@dataclass(frozen=True)
class Embedding:
    """How the model builds a token's first vector, in its own order: the lookups it adds (named points ->
    module paths from the base model), the module whose output is the embedding output, its LayerNorm (None:
    GPT-2 has none), and a projection from the embedding width to the hidden width (ALBERT, ELECTRA-small,
    DeBERTa with embedding_size), applied after the LayerNorm or, `projection_first`, before it (DeBERTa)."""

    parts: Mapping[str, str]
    out: str
    norm: str | None
    projection: str | None = None
    projection_first: bool = False


@dataclass(frozen=True)
class HeadTerms:
    """One head's query and key vectors and its scores for every (query, key), recomputed with the model's own
    modules: `scores` is what goes into the softmax before the mask (already scaled), `terms` the parts whose
    sum it is when the family splits it (DeBERTa: content→content, content→position, position→content), and
    `rotated` the q and k after the rotation (ModernBERT's rotary positions)."""

    q: torch.Tensor
    """(token, d_head) the queries as the projection gives them."""
    k: torch.Tensor
    v: torch.Tensor
    scale: float
    """What q·k is multiplied by (1/√d_head; DeBERTa: 1/√(3·d_head))."""
    scores: torch.Tensor
    """(query, key), scaled, before the mask."""
    raw: torch.Tensor
    """(query, key) the scores before scaling."""
    terms: dict[str, torch.Tensor] = field(default_factory=dict)
    """Name -> (query, key), each before scaling; they sum to `raw`."""
    rotated: tuple[torch.Tensor, torch.Tensor] | None = None
    """(q, k) after the rotation, (token, d_head) each."""


@dataclass(frozen=True)
class Sizes:
    layers: int
    heads: int
    hidden: int
    ffn: int
    max_positions: int


def _sizes(config: PretrainedConfig) -> Sizes:
    return Sizes(config.num_hidden_layers, config.num_attention_heads, config.hidden_size, config.intermediate_size,
                 config.max_position_embeddings)


@dataclass(frozen=True)
class Adapter:
    name: str
    """The family's id ('bert', 'roberta', ...), the `family` in every JSON."""
    title: str
    model_types: tuple[str, ...]
    """config.model_type values this adapter reads (roberta: also xlm-roberta and camembert)."""
    teaches: str
    """What the family changed after BERT, in one line (README's table, the model description)."""
    checkpoints: tuple[str, ...]
    """Hub ids a user with internet would load (README, misspelt-name suggestions)."""
    layers: str
    """Path from the base model to its list of layers."""
    embedding: Embedding
    points: Mapping[str, Point]
    """Every per-layer point of `bertlab.hooks.LAYER_POINTS` -> where it lives."""
    norm_placement: str
    """'post' (h = LN(A + x), out = LN(F + h)) or 'pre' (h = x + A(LN(x)), out = h + F(LN(h)))."""
    norms: tuple[str, str]
    """Per-layer LayerNorm paths: post-norm, the ones after the attention and the feed-forward sums; pre-norm,
    the ones before the attention and the feed-forward blocks."""
    positions: str
    """'absolute' (a learned vector per position added to the embedding), 'rotary' (q and k rotated by position
    inside attention) or 'relative' (attention scores get terms of the distance between query and key)."""
    classes: Mapping[str, tuple[str, ...]]
    """transformers class names bertlab loads -> the heads a checkpoint of that class can hold."""
    probes: Mapping[str, tuple[str, ...]]
    """Head -> parameter names of the loaded class: the head is kept only when the checkpoint filled them."""
    build_heads: Callable[[torch.nn.Module, "PretrainedConfig", tuple[str, ...]], dict[str, Head]]
    """(model, config, heads present) -> head functions by name: 'mlm', 'nsp', 'rtd' (replaced-token detection),
    'lm' (next token)."""
    pretraining: Mapping[str, str]
    """model_type -> the class a checkpoint saved under another class loads into (the richest pretraining heads)."""
    fine_tunes: Mapping[str, str] = field(default_factory=dict)
    """Classifier classes -> 'sequence' or 'token'."""
    classifier: Callable[[torch.nn.Module, str], Callable[..., torch.Tensor]] | None = None
    """(model, task) -> f(raw hidden states, pooler output or None) -> logits, from the fine-tune's own modules."""
    final_norm: str | None = None
    """Pre-norm families' last LayerNorm (path from the base model), applied before every head."""
    mask_format: str = "additive"
    """How the attention modules take a mask: 'additive' (0 / most negative, added to the scores) or 'keep'
    (1 where a key may be seen: DeBERTa fills the rest itself)."""
    causal: bool = False
    """Trained with a causal mask (a decoder): its natural run is the causal one."""
    pieces: str = "##"
    """How the family's usual tokenizer marks pieces: '##' (a continuation), 'Ġ' or '▁' (a word start)."""
    sizes: Callable[["PretrainedConfig"], Sizes] = _sizes
    segments: Callable[["PretrainedConfig"], bool] = lambda config: getattr(config, "type_vocab_size", 0) > 1
    """Does the model tell segment A from B (a learned vector per segment)?"""
    local_layers: Callable[["PretrainedConfig"], dict[int, int]] = lambda config: {}
    """Layer -> w for layers that attend only to keys within ±w positions of the query (ModernBERT)."""
    shared_layers: Callable[["PretrainedConfig"], bool] = lambda config: False
    layer_list: Callable[[torch.nn.Module, "PretrainedConfig"], list[torch.nn.Module]] | None = None
    """The module that runs as each layer, when it is not simply the list at `layers` (ALBERT repeats one)."""
    head_terms: Callable[..., HeadTerms] | None = None
    """Family-specific recomputation of one head's scores (see `default_head_terms`)."""
    refuse: Callable[["PretrainedConfig"], str | None] = lambda config: None
    """A reason this adapter cannot read a checkpoint of an unusual configuration, or None."""
    formula: str = ""
    """The layer as it computes, in one line."""
    run_options: Mapping[str, Any] = field(default_factory=dict)
    """Keywords every forward pass of the base model gets (GPT-2: no key/value cache)."""
    shapes: Mapping[str, Sizes] = field(default_factory=dict)
    """Published shapes by name, offered as `random:<name>` (random weights: every step real, nothing meant)."""
    random_config: Callable[[Sizes, Any], "PretrainedConfig"] | None = None
    """(shape, tokenizer) -> a config of this family with that shape, for random-weight models."""
    vocabulary: str = "wordpiece"
    """The kind of vocabulary a random-weight model of this family gets: 'wordpiece' (BERT's own, from the
    packaged MiniLM) or a bertlab.vocab kind trained on the shipped corpus."""

    def module(self, root: torch.nn.Module, path: str | None) -> torch.nn.Module | None:
        """The module at `path` below `root` ('' is root), or None where this checkpoint has none."""
        if path is None:
            return None
        if path == "":
            return root
        try:
            found = root.get_submodule(path)
        except AttributeError:
            return None
        return found

    def layer_modules(self, base: torch.nn.Module, config: PretrainedConfig) -> list[torch.nn.Module]:
        if self.layer_list is not None:
            return self.layer_list(base, config)
        return list(base.get_submodule(self.layers))


def bert_points(attention: str = "attention.self", q: str = "query", k: str = "key", v: str = "value") -> dict[str, Point]:
    """BERT's layer (copied by RoBERTa, ELECTRA and DeBERTa): attention.self, attention.output (dense, LayerNorm),
    intermediate, output (dense, LayerNorm)."""
    return {
        "in": Point("", "in"),
        "attn.q": Point(f"{attention}.{q}", "out"),
        "attn.k": Point(f"{attention}.{k}", "out"),
        "attn.v": Point(f"{attention}.{v}", "out"),
        "attn.mask": Point(attention, "mask"),
        "attn.pattern": Point(attention, "pattern"),
        "attn.context": Point("attention.output.dense", "in"),
        "attn.out": Point("attention.output.dense", "out"),
        "mid": Point("attention.output.LayerNorm", "out"),
        "ffn.act": Point("output.dense", "in"),
        "ffn.out": Point("output.dense", "out"),
        "out": Point("output.LayerNorm", "out"),
    }


BERT_NORMS = ("attention.output.LayerNorm", "output.LayerNorm")


def bert_embedding(projection: str | None = None, projection_first: bool = False) -> Embedding:
    """BERT's embeddings module (copied by RoBERTa, ALBERT, ELECTRA, DeBERTa): word + token type + position
    lookups, LayerNorm; a projection to the hidden width where the family has one."""
    return Embedding(
        parts={"embed.token": "embeddings.word_embeddings", "embed.segment": "embeddings.token_type_embeddings",
               "embed.position": "embeddings.position_embeddings"},
        out="embeddings", norm="embeddings.LayerNorm", projection=projection, projection_first=projection_first,
    )


def fused(output: torch.Tensor, chunk: int | None) -> torch.Tensor:
    """One third of a fused q/k/v projection's output (the whole output when `chunk` is None)."""
    if chunk is None:
        return output
    width = output.shape[-1] // 3
    return output[..., chunk * width:(chunk + 1) * width]


def default_head_terms(loaded, layer: int, x: torch.Tensor, head: int) -> HeadTerms:
    """softmax's input for one head, from the layer's input x (token, hidden) through the layer's own query and key
    projections (and, pre-norm, its own LayerNorm first): q·kᵀ times the attention module's own scaling."""
    q, k, v = project(loaded, layer, x, head)
    attention = loaded.attention_module(layer)
    scale = float(getattr(attention, "scaling", q.shape[-1] ** -0.5))
    raw = q @ k.T
    return HeadTerms(q=q, k=k, v=v, scale=scale, scores=raw * scale, raw=raw)


def project(loaded, layer: int, x: torch.Tensor, head: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(token, d_head) q, k and v of one head, from the layer's input through the layer's own modules (the norm
    before attention first, for pre-norm families)."""
    adapter = loaded.adapter
    block = loaded.layers[layer]
    if adapter.norm_placement == "pre":
        x = block.get_submodule(adapter.norms[0])(x)
    d_head = loaded.info.hidden_size // loaded.info.heads
    part = slice(head * d_head, (head + 1) * d_head)
    vectors = []
    for name in ("attn.q", "attn.k", "attn.v"):
        point = adapter.points[name]
        vectors.append(fused(block.get_submodule(point.path)(x), point.chunk)[..., part].float())
    return vectors[0], vectors[1], vectors[2]


def _registry() -> dict[str, Adapter]:
    from . import albert, bert, deberta, distilbert, electra, gpt2, modernbert, roberta

    adapters = [bert.ADAPTER, distilbert.ADAPTER, roberta.ADAPTER, albert.ADAPTER, electra.ADAPTER, deberta.ADAPTER,
                modernbert.ADAPTER, gpt2.ADAPTER]
    return {adapter.name: adapter for adapter in adapters}


ADAPTERS: dict[str, Adapter] = {}


def adapters() -> dict[str, Adapter]:
    """Every family bertlab reads, by name, in the order the README lists them."""
    if not ADAPTERS:
        ADAPTERS.update(_registry())
    return ADAPTERS


def for_model_type(model_type: str) -> Adapter | None:
    """The adapter that reads checkpoints whose config says `model_type`, or None."""
    return next((a for a in adapters().values() if model_type in a.model_types), None)


def model_types() -> list[str]:
    return [t for a in adapters().values() for t in a.model_types]
