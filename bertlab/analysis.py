"""One analysis of one input: a single batched forward pass under both masks, read out into plain data.

Like TransformerLens' `run_with_cache`, internals come from the model's own outputs
(`output_attentions`, `output_hidden_states`) and forward hooks on its embedding modules; nothing
of BERT's forward pass is re-implemented here. The result is plain typed data: small things as numpy, the
big tensors where the model computed them with accessors that bring to the host only what a view draws
(`MaskRun.attention(layer, head)`); figure builders and pages never call the model again.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import torch

from . import hooks, masks, metrics
from .loading import LoadedModel, ModelInfo
from .metrics import HEAD_STATS, head_statistics, rollout
from .tokens import Encoding, Token, encode
from .transfer import to_host

__all__ = ["HEAD_STATS", "Analysis", "Embeddings", "MaskRun", "Prediction", "analyze", "analyze_encoding", "analyze_encodings"]


@dataclass(frozen=True)
class Prediction:
    token: str
    id: int
    prob: float

    def to_dict(self) -> dict:
        return {"token": self.token, "id": self.id, "prob": self.prob}


EMBEDDING_PARTS = ("token", "segment", "position", "sum", "layernorm", "model_output", "projection")


@dataclass(eq=False)
class Embeddings:
    """The embedding in the model's own order: BERT's token + segment + position, summed, then LayerNorm; a
    family without segments or positions has fewer lookups, GPT-2 no LayerNorm, and ALBERT / ELECTRA-small /
    DeBERTa with a narrower embedding a projection to the hidden width (after the LayerNorm; DeBERTa before it).

    The (token, width) parts stay tensors where they were computed; `token`, `segment`, ... hand them
    out as float32 numpy the first time a view reads them (the Embeddings page, the lesson)."""

    parts: dict[str, torch.Tensor]
    """EMBEDDING_PARTS -> (token, width): only the lookups and steps this model has."""
    max_abs_diff: float
    """Largest difference between the recomputation (sum, projection, LayerNorm with the model's own modules) and
    the model's own output: its embedding output, and the first layer's input where a projection follows."""
    steps: tuple[str, ...] = ()
    """The parts in the order the model computes them (e.g. token, position, sum, layernorm, model_output)."""
    _host: dict[str, np.ndarray] = field(default_factory=dict, init=False, repr=False)

    def _part(self, name: str) -> np.ndarray | None:
        if name not in self.parts:
            return None
        if name not in self._host:
            self._host[name] = to_host(self.parts[name].float())
        return self._host[name]

    def has(self, name: str) -> bool:
        return name in self.parts

    token = property(lambda self: self._part("token"))
    segment = property(lambda self: self._part("segment"))
    position = property(lambda self: self._part("position"))
    sum = property(lambda self: self._part("sum"))
    layernorm = property(lambda self: self._part("layernorm"))
    model_output = property(lambda self: self._part("model_output"))
    projection = property(lambda self: self._part("projection"))

    @property
    def nbytes(self) -> int:
        return sum(_tensor_bytes(t) for t in self.parts.values()) + _copies_bytes(self._host, self.parts)


@dataclass(eq=False)
class MaskRun:
    """Everything read from the encoder under one attention mask.

    The big tensors stay where the model computed them (a GPU's memory, or CPU tensors); a view asks for
    what it draws: `attention(layer, head)` is one (query, key) matrix, `hidden(layer)` one (token,
    hidden) matrix. `attentions` / `hidden_states` / `rollout` are the whole arrays as numpy, converted
    the first time they are read (zero-copy on a CPU). Every conversion is counted (`bertlab.transfer`)."""

    kind: str
    attention_layers: tuple[torch.Tensor, ...]
    """Per layer, (head, query, key) on the model's device, as the model returned them (views of its batch, no
    copy); each row sums to 1. `attention_tensor` stacks them only when a view needs every layer at once."""
    hidden_tensor: torch.Tensor
    """(layer + 1, token, hidden) on the model's device; index 0 is the embedding output."""
    specials: dict[str, list[int]] = field(default_factory=dict)
    """Where [CLS] and [SEP] (or the family's equivalents) are: what two head statistics measure attention to."""
    mlm: dict[int, list[Prediction]] = field(default_factory=dict)
    _stats: dict[str, np.ndarray] = field(default_factory=dict, init=False, repr=False)
    _host: dict[str, np.ndarray] = field(default_factory=dict, init=False, repr=False)
    _device: dict[str, torch.Tensor] = field(default_factory=dict, init=False, repr=False)

    @property
    def length(self) -> int:
        return self.attention_layers[0].shape[-1]

    @property
    def attention_tensor(self) -> torch.Tensor:
        """(layer, head, query, key), every layer in one tensor: stacked the first time a view draws every head
        (bertviz, the thumbnails, rollout); the layers then become views of it, so the weights are held once.
        (At 512 tokens of BERT-base both masks' stack is 300 MB of copying that a heatmap never needs.)"""
        if "attentions" not in self._device:
            stacked = torch.stack(self.attention_layers)
            self._device["attentions"] = stacked
            self.attention_layers = tuple(stacked)
        return self._device["attentions"]

    @property
    def head_stats(self) -> dict[str, np.ndarray]:
        """name -> (layer, head): each head's mean entropy, mass to [CLS] and [SEP], self mass and signed distance
        (metrics.HEAD_STATS), computed where the weights are the first time a view asks (the attention page's
        statistics, the JSON): most views never do, and at 512 tokens they are ~10% of an analysis."""
        if not self._stats:
            stats = head_statistics(self.attention_layers, self.specials)
            self._stats.update(zip(stats, to_host(torch.stack(list(stats.values())))))  # one transfer for all
        return self._stats

    @property
    def allowed(self) -> np.ndarray:
        """(query, key): which keys each query may see under this mask (built on the host, never held)."""
        return masks.allowed(self.kind, self.length).numpy()

    @property
    def attentions(self) -> np.ndarray:
        """(layer, head, query, key), all of it: for views that draw every head (bertviz, thumbnails)."""
        if "attentions" not in self._host:
            self._host["attentions"] = to_host(self.attention_tensor)
        return self._host["attentions"]

    @property
    def hidden_states(self) -> np.ndarray:
        """(layer + 1, token, hidden), all of it, float32."""
        if "hidden_states" not in self._host:
            self._host["hidden_states"] = to_host(self.hidden_tensor.float())
        return self._host["hidden_states"]

    def attention(self, layer: int, head: int, query: int | None = None) -> np.ndarray:
        """One head's (query, key) weights, or one query's row of them: only those come to the host."""
        if "attentions" in self._host:
            whole = self._host["attentions"][layer, head]
            return whole if query is None else whole[query]
        weights = self.attention_layers[layer][head]
        return to_host(weights if query is None else weights[query])

    def hidden(self, layer: int, token: int | None = None) -> np.ndarray:
        """(token, hidden) after `layer` (0: the embedding output), or one token's vector, float32."""
        if "hidden_states" in self._host:
            whole = self._host["hidden_states"][layer]
            return whole if token is None else whole[token]
        index = layer if token is None else (layer, token)
        return to_host(self.hidden_tensor[index].float())

    def rollout_tensor(self) -> torch.Tensor:
        """(layer, query, key) rollout on the device, computed the first time it is asked for."""
        if "rollout" not in self._device:
            self._device["rollout"] = rollout(self.attention_layers).to(self.attention_layers[0].dtype)
        return self._device["rollout"]

    @property
    def rollout(self) -> np.ndarray:
        """(layer, query, key): attention rollout (Abnar & Zuidema, 2020) up to and including each layer,
        computed the first time a view asks."""
        if "rollout" not in self._host:
            self._host["rollout"] = to_host(self.rollout_tensor())
        return self._host["rollout"]

    def rollout_at(self, layer: int) -> np.ndarray:
        """(query, key): rollout through `layer`; only that matrix comes to the host."""
        if "rollout" in self._host:
            return self._host["rollout"][layer]
        return to_host(self.rollout_tensor()[layer])

    def layer_change(self) -> np.ndarray:
        """(layer, token): 1 − cosine(output of layer l, its input), computed where the hidden states are."""
        return metrics.layer_change(self.hidden_tensor)

    @property
    def nbytes(self) -> int:
        """Bytes held: the tensors, the statistics, and host copies that are not views of a tensor."""
        layers = {} if "attentions" in self._device else {f"layer{i}": t for i, t in enumerate(self.attention_layers)}
        tensors = {**layers, "hidden_states": self.hidden_tensor, **self._device}
        return (
            sum(_tensor_bytes(t) for t in tensors.values())
            + sum(a.nbytes for a in self._stats.values())
            + _copies_bytes(self._host, tensors)
        )


def _tensor_bytes(t: torch.Tensor) -> int:
    return t.element_size() * t.nelement()


def _copies_bytes(host: dict[str, np.ndarray], tensors: dict[str, torch.Tensor]) -> int:
    """Bytes of host arrays that are copies (a GPU's, or a widened dtype's), not zero-copy views of their tensor."""
    return sum(
        a.nbytes for name, a in host.items()
        if not (name in tensors and tensors[name].device.type == "cpu" and a.ctypes.data == tensors[name].data_ptr())
    )


@dataclass
class Classification:
    """A fine-tune's own classifier on this input, read under the bidirectional mask (the one it was trained with)."""

    task: str
    """'sequence': one label for the input (from [CLS]); 'token': one label per token."""
    labels: tuple[str, ...]
    probs: np.ndarray
    """Softmax over the labels: (label,) for 'sequence', (token, label) for 'token'."""

    @property
    def predicted(self) -> str | list[str]:
        """The label with the highest probability (per token for 'token')."""
        best = self.probs.argmax(-1)
        return self.labels[int(best)] if self.task == "sequence" else [self.labels[int(i)] for i in best]

    def to_dict(self) -> dict:
        return {
            "task": self.task,
            "labels": list(self.labels),
            "predicted": self.predicted,
            "probs": self.probs.round(6).tolist(),
        }


@dataclass
class Analysis:
    model: ModelInfo
    encoding: Encoding
    embeddings: Embeddings
    runs: dict[str, MaskRun]
    nsp: float | None
    """Probability that segment B follows segment A (IsNext), from the NSP head; None without one."""
    top_k: int
    notes: list[str]
    classifier: Classification | None = None
    """A fine-tune's prediction (BertForSequenceClassification, ...); None for checkpoints without a classifier."""
    replaced: list[dict] | None = None
    """ELECTRA's replaced-token detection: {"position", "token", "prob"} per ordinary token; None without the head."""
    next_token: list[dict] | None = None
    """A decoder's top-k for the token after each position: {"position", "token", "top": [Prediction]}; None for encoders."""

    @property
    def tokens(self) -> tuple[Token, ...]:
        return self.encoding.tokens

    @property
    def nbytes(self) -> int:
        """Memory held by the tensors (on whichever device) and host arrays, for caches bounded in bytes."""
        return self.embeddings.nbytes + sum(run.nbytes for run in self.runs.values())

    def compact(self) -> Analysis:
        """A copy with attention weights in float16, for caches: they are most of the bytes (BERT-base at
        512 tokens: 330 of 360 MB), and float16's ~3 significant digits are more than any view shows.
        Exact zeros (the causal mask) stay exact; hidden states stay float32 for cosines; rollout, computed
        when asked, follows the attentions' dtype. The tensors stay on their device."""
        half = {kind: replace(run, attention_layers=tuple(t.half() for t in run.attention_layers)) for kind, run in self.runs.items()}
        for kind, run in self.runs.items():  # statistics already computed from the full weights are kept
            half[kind]._stats.update(run._stats)
        return replace(self, runs=half)

    def divergence(self) -> np.ndarray:
        """(layer + 1, token): 1 − cosine(bidirectional, causal hidden state): where seeing the right side matters."""
        return 1 - metrics.cosine(self.bidirectional.hidden_tensor, self.causal.hidden_tensor)

    @property
    def truncated(self) -> bool:
        return self.encoding.truncated

    @property
    def bidirectional(self) -> MaskRun:
        return self.runs["bidirectional"]

    @property
    def causal(self) -> MaskRun:
        return self.runs["causal"]

    @property
    def mask_positions(self) -> list[int]:
        return self.encoding.mask_positions

    def predictions(self, position: int) -> dict[str, list[Prediction]]:
        """The top-k at one [MASK], per mask type (empty lists without an MLM head)."""
        return {kind: run.mlm.get(position, []) for kind, run in self.runs.items()}

    def to_dict(self) -> dict:
        """The JSON contract of `python -m bertlab analyze --json` (summaries, not the big arrays)."""
        return {
            "model": self.model.to_dict(),
            "text": self.encoding.text,
            "pair": self.encoding.pair,
            "tokens": [t.to_dict() for t in self.tokens],
            "truncated": self.truncated,
            "input_tokens": self.encoding.untruncated_length,
            "mlm": [
                {
                    "position": position,
                    **{kind: [p.to_dict() for p in preds] for kind, preds in self.predictions(position).items()},
                }
                for position in (self.mask_positions if "mlm" in self.model.heads_available else [])
            ],
            "nsp": None if self.nsp is None else {"is_next": self.nsp, "not_next": 1.0 - self.nsp},
            "embedding_check": {"max_abs_diff": self.embeddings.max_abs_diff},
            "head_stats": {
                kind: {name: values.round(6).tolist() for name, values in run.head_stats.items()} for kind, run in self.runs.items()
            },
            "notes": self.notes,
            "classifier": None if self.classifier is None else self.classifier.to_dict(),
            "replaced": None if self.replaced is None else [{**r, "prob": round(r["prob"], 6)} for r in self.replaced],
            "next_token": None if self.next_token is None else [
                {"position": n["position"], "token": n["token"], "top": [p.to_dict() for p in n["top"]],
                 "actual": None if n["actual"] is None else n["actual"].to_dict()} for n in self.next_token
            ],
        }


def analyze(
    loaded: LoadedModel,
    text: str,
    pair: str | None = None,
    top_k: int = 5,
    mask_types: tuple[str, ...] = masks.MASK_TYPES,
) -> Analysis:
    """Tokenize, run the encoder once on a batch of one row per mask type, and read everything out."""
    encoding = encode(loaded, text, pair)
    return analyze_encoding(loaded, encoding, top_k=top_k, mask_types=mask_types)


def analyze_encoding(
    loaded: LoadedModel, encoding: Encoding, top_k: int = 5, mask_types: tuple[str, ...] = masks.MASK_TYPES
) -> Analysis:
    return analyze_encodings(loaded, [encoding], top_k=top_k, mask_types=mask_types)[0]


def analyze_encodings(
    loaded: LoadedModel, encodings: list[Encoding], top_k: int = 5, mask_types: tuple[str, ...] = masks.MASK_TYPES
) -> list[Analysis]:
    """Several inputs in ONE forward pass (a model service batches the requests of many sessions): the inputs
    padded to the longest, one row per (mask type, input), mask-major like bertlab.senses; padding keys are never
    seen (the masks and `valid`), so each input's analysis equals its own unbatched run up to float rounding.
    One input is the unpadded batch `analyze_encoding` always ran."""
    n, batch = len(encodings), len(mask_types)
    length = max(len(e) for e in encodings)
    if n == 1:
        input_ids = encodings[0].input_ids.expand(batch, -1)
        token_type_ids = encodings[0].token_type_ids.expand(batch, -1)
        attention_mask = masks.stacked(mask_types, length, loaded.dtype)
        valid = None
    else:
        pad = loaded.tokenizer.pad_token_id or 0
        ids = torch.full((n, length), pad, dtype=torch.long)
        segments = torch.zeros((n, length), dtype=torch.long)
        valid = torch.zeros((n, length), dtype=torch.long)
        for i, e in enumerate(encodings):
            ids[i, : len(e)] = e.input_ids[0]
            segments[i, : len(e)] = e.token_type_ids[0]
            valid[i, : len(e)] = 1
        input_ids, token_type_ids = ids.repeat(batch, 1), segments.repeat(batch, 1)
        attention_mask = torch.cat([masks.additive(masks.allowed(kind, length, valid), loaded.dtype) for kind in mask_types])
        valid = valid.repeat(batch, 1)
    lookups = list(hooks.embedding_modules(loaded))  # the model's own lookups and its embedding output
    out, cache = hooks.run(loaded, input_ids, token_type_ids, attention_mask, valid=valid, capture=lookups, internals=True)
    hidden = torch.stack(out.hidden_states, dim=1)  # (mask * input, layer + 1, token, hidden)
    pooled = getattr(out, "pooler_output", None)
    return [
        _read_out(loaded, encoding, top_k, mask_types, [m * n + i for m in range(batch)], out, cache, hidden, pooled, n > 1)
        for i, encoding in enumerate(encodings)
    ]


def _read_out(loaded: LoadedModel, encoding: Encoding, top_k: int, mask_types: tuple[str, ...], rows: list[int], out, cache,
              hidden: torch.Tensor, pooled: torch.Tensor | None, padded: bool) -> Analysis:
    """One input's analysis from its rows of the batch (cut to its own length; copied out of a padded batch so a
    result never holds, or ships, the other inputs' tensors)."""
    length = len(encoding)
    own = (lambda t: t.contiguous().clone()) if padded else (lambda t: t)  # noqa: E731
    select = (lambda t: t[rows]) if padded else (lambda t: t)  # noqa: E731  (unpadded: the rows are the batch, as views)
    hidden = own(select(hidden)[:, :, :length])  # (mask, layer + 1, token, hidden)
    attn = tuple(own(select(layer)[:, :, :length, :length]) for layer in out.attentions)  # per layer (mask, head, query, key)
    cut = _Rows(own(select(out.last_hidden_state)[:, :length]), None if pooled is None else own(select(pooled)))
    # The big tensors stay on the model's device; only statistics, top-k and the embedding check come to
    # the host here (see MaskRun). Stacked once so each run holds one tensor (a view of the batch).
    embeddings = _embeddings(loaded, cache, hidden[0, 0], row=rows[0], length=length)
    specials = _special_positions(loaded, encoding)

    mlm_positions = encoding.mask_positions if loaded.mlm_head is not None else []
    predictions = _top_predictions(loaded, hidden[:, -1, mlm_positions], top_k) if mlm_positions else None
    runs = {}
    for i, kind in enumerate(mask_types):
        runs[kind] = MaskRun(
            kind=kind,
            attention_layers=tuple(layer[i] for layer in attn),
            hidden_tensor=hidden[i],
            specials=specials,
            mlm={p: predictions[i][j] for j, p in enumerate(mlm_positions)} if predictions else {},
        )

    nsp = None
    if loaded.nsp_head is not None and cut.pooler_output is not None:
        with torch.inference_mode():
            nsp = float(torch.softmax(loaded.nsp_head(cut.pooler_output[0]).float(), -1)[0])
    replaced = _replaced(loaded, encoding, cut.last_hidden_state, mask_types)
    next_token = _next_tokens(loaded, encoding, cut.last_hidden_state, mask_types, top_k)

    return Analysis(
        model=loaded.info,
        encoding=encoding,
        embeddings=embeddings,
        runs=runs,
        nsp=nsp,
        top_k=top_k,
        notes=_notes(loaded, encoding),
        classifier=_classify(loaded, cut, mask_types),
        replaced=replaced,
        next_token=next_token,
    )


@dataclass
class _Rows:
    """One input's rows of a batch's output, as the heads read them (last_hidden_state, pooler_output)."""

    last_hidden_state: torch.Tensor
    pooler_output: torch.Tensor | None


def _classify(loaded: LoadedModel, out, mask_types: tuple[str, ...]) -> Classification | None:
    """The classifier on the bidirectional row of the same pass: no second forward."""
    if loaded.classifier_head is None or "bidirectional" not in mask_types:
        return None
    row = mask_types.index("bidirectional")
    pooled = getattr(out, "pooler_output", None)  # DistilBERT has no pooler
    pooled = None if pooled is None else pooled[row : row + 1]
    with torch.inference_mode():
        logits = loaded.classifier_head(out.last_hidden_state[row : row + 1], pooled)[0]
    return Classification(task=loaded.info.classifier, labels=loaded.info.labels, probs=to_host(torch.softmax(logits.float(), -1)))


def _notes(loaded: LoadedModel, encoding: Encoding) -> list[str]:
    notes = []
    if loaded.info.notice:
        notes.append(loaded.info.notice)
    if encoding.truncated:
        notes.append(
            f"The input has {encoding.untruncated_length} tokens; BERT reads at most {loaded.max_length} "
            f"positions, so it was truncated to {len(encoding)}."
        )
    if encoding.mask_id is None and "[MASK]" in encoding.text + (encoding.pair or ""):
        notes.append(f"'{loaded.info.name}' is a decoder with no mask token: it reads [MASK] as the characters "
                     "[, M, A, S, K, ]. It guesses the next token instead of filling a blank.")
    if encoding.mask_positions and loaded.mlm_head is None:
        notes.append(f"'{loaded.info.name}' has no masked-LM head, so [MASK] predictions are not available.")
    if encoding.pair and loaded.nsp_head is None:
        notes.append(f"'{loaded.info.name}' has no next-sentence-prediction head, so IsNext is not available.")
    return notes


def _embeddings(loaded: LoadedModel, cache: hooks.Cache, first_layer_input: torch.Tensor, row: int = 0, length: int | None = None) -> Embeddings:
    """The first row's embedding lookups (captured at the model's own embedding modules), their sum, the
    projection and LayerNorm in the model's order with its own modules, and how far that is from the model's own
    embedding output (and from the first layer's input, where a projection follows the embedding output)."""
    spec = loaded.adapter.embedding
    at = lambda t: t[row if t.shape[0] > 1 else 0, :length]  # noqa: E731  (a position lookup may be (1, token, width))
    lookups = {name.split(".")[1]: at(cache[name]) for name in ("embed.token", "embed.segment", "embed.position") if name in cache}
    total = sum(lookups.values())
    output = at(cache["embed.out"])
    projection, norm = loaded.module(spec.projection), loaded.module(spec.norm)
    parts, steps = dict(lookups), list(lookups)
    parts["sum"] = total
    steps.append("sum")
    with torch.inference_mode():
        x = total
        if projection is not None and spec.projection_first:
            x = parts["projection"] = projection(x)
            steps.append("projection")
        if norm is not None:
            x = parts["layernorm"] = norm(x)
            steps.append("layernorm")
        parts["model_output"] = output
        steps.append("model_output")
        diff = float((x.float() - output.float()).abs().max())
        if projection is not None and not spec.projection_first:
            parts["projection"] = projection(output)
            steps.append("projection")
            diff = max(diff, float((parts["projection"].float() - first_layer_input.float()).abs().max()))
        else:
            diff = max(diff, float((output.float() - first_layer_input.float()).abs().max()))
    return Embeddings(parts=parts, max_abs_diff=diff, steps=tuple(steps))


def _special_positions(loaded: LoadedModel, encoding: Encoding) -> dict[str, list[int]]:
    """Where [CLS] and [SEP] (or the family's equivalents, <s> and </s>) are; none in a decoder's input."""
    tok = loaded.tokenizer
    return {
        "cls": [t.position for t in encoding.tokens if t.special and t.id == tok.cls_token_id],
        "sep": [t.position for t in encoding.tokens if t.special and t.id == tok.sep_token_id],
    }


def _replaced(loaded: LoadedModel, encoding: Encoding, last: torch.Tensor, mask_types: tuple[str, ...]) -> list[dict] | None:
    """ELECTRA's discriminator on every ordinary token: P(this token was replaced), under the bidirectional mask
    it was trained with (one small dense pair per token, on the same pass)."""
    if "rtd" not in loaded.heads or "bidirectional" not in mask_types:
        return None
    with torch.inference_mode():
        probs = torch.sigmoid(loaded.heads["rtd"](last[mask_types.index("bidirectional")]).float())
    values = to_host(probs).tolist()
    return [{"position": t.position, "token": t.text, "prob": values[t.position]} for t in encoding.tokens if not t.special]


def _next_tokens(loaded: LoadedModel, encoding: Encoding, last: torch.Tensor, mask_types: tuple[str, ...], top_k: int) -> list[dict] | None:
    """A decoder's guesses for the token after each position, under the causal mask it was trained with, and the
    probability it gave the token that really comes next (None after the last)."""
    if "lm" not in loaded.heads or "causal" not in mask_types:
        return None
    hidden = last[mask_types.index("causal")]
    ids_in = encoding.input_ids[0].to(hidden.device)
    with torch.inference_mode():
        probs = torch.softmax(loaded.heads["lm"](hidden).float(), dim=-1)
        values, ids = probs.topk(min(top_k, probs.shape[-1]), dim=-1)
        actual = probs[:-1].gather(1, ids_in[1:, None])[:, 0]
    to_piece = loaded.tokenizer.convert_ids_to_tokens
    following = to_host(actual).tolist() + [None]
    return [
        {"position": t.position, "token": t.text,
         "top": [Prediction(to_piece(i), i, v) for i, v in zip(row_ids, row_values)],
         "actual": None if p is None else Prediction(encoding.tokens[t.position + 1].text, encoding.tokens[t.position + 1].id, p)}
        for t, row_ids, row_values, p in zip(encoding.tokens, to_host(ids).tolist(), to_host(values).tolist(), following)
    ]


def _top_predictions(loaded: LoadedModel, hidden: torch.Tensor, top_k: int) -> list[list[list[Prediction]]]:
    """Vocabulary logits only at the positions read: (mask, position, hidden) -> top-k per cell."""
    with torch.inference_mode():
        probs = torch.softmax(loaded.mlm_head(hidden).float(), dim=-1)
        values, ids = probs.topk(min(top_k, probs.shape[-1]), dim=-1)
    to_piece = loaded.tokenizer.convert_ids_to_tokens
    return [
        [[Prediction(to_piece(i), i, v) for i, v in zip(row_ids, row_values)] for row_ids, row_values in zip(m_ids, m_values)]
        for m_ids, m_values in zip(to_host(ids).tolist(), to_host(values).tolist())
    ]
