"""One analysis of one input: a single batched forward pass under both masks, read out into plain data.

Like TransformerLens' `run_with_cache`, internals come from the model's own outputs
(`output_attentions`, `output_hidden_states`) and forward hooks on its embedding modules; nothing
of BERT's forward pass is re-implemented here. The result is plain typed data (numpy arrays), so
figure builders and pages never call the model again.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property

import numpy as np
import torch

from . import hooks, masks, metrics
from .loading import LoadedModel, ModelInfo
from .metrics import HEAD_STATS, head_statistics, rollout
from .tokens import Encoding, Token, encode

__all__ = ["HEAD_STATS", "Analysis", "Embeddings", "MaskRun", "Prediction", "analyze", "analyze_encoding", "run_encoder"]


@dataclass(frozen=True)
class Prediction:
    token: str
    id: int
    prob: float

    def to_dict(self) -> dict:
        return {"token": self.token, "id": self.id, "prob": self.prob}


@dataclass
class Embeddings:
    """BERTEmbeddings in the paper's order: token + segment + position, summed, then LayerNorm."""

    token: np.ndarray
    segment: np.ndarray | None
    position: np.ndarray
    sum: np.ndarray
    layernorm: np.ndarray
    model_output: np.ndarray
    max_abs_diff: float
    """Largest |LayerNorm(token + segment + position) - the model's own embedding output|."""


@dataclass
class MaskRun:
    """Everything read from the encoder under one attention mask."""

    kind: str
    allowed: np.ndarray
    attentions: np.ndarray
    """(layer, head, query, key); each row sums to 1."""
    hidden_states: np.ndarray
    """(layer + 1, token, hidden); index 0 is the embedding output."""
    head_stats: dict[str, np.ndarray]
    mlm: dict[int, list[Prediction]] = field(default_factory=dict)

    @cached_property
    def rollout(self) -> np.ndarray:
        """(layer, query, key): attention rollout (Abnar & Zuidema, 2020) up to and including each layer,
        computed the first time a view asks."""
        return rollout(metrics.as_tensor(self.attentions)).numpy().astype(self.attentions.dtype)

    def layer_change(self) -> np.ndarray:
        """(layer, token): 1 − cosine(output of layer l, its input)."""
        return metrics.layer_change(self.hidden_states)


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

    @property
    def tokens(self) -> tuple[Token, ...]:
        return self.encoding.tokens

    @property
    def nbytes(self) -> int:
        """Memory held by the arrays, for caches bounded in bytes."""
        arrays = [a for a in vars(self.embeddings).values() if isinstance(a, np.ndarray)]
        for run in self.runs.values():
            arrays += [run.allowed, run.attentions, run.hidden_states, *run.head_stats.values()]
            if "rollout" in vars(run):
                arrays.append(run.rollout)
        return sum(a.nbytes for a in arrays)

    def compact(self) -> Analysis:
        """A copy with attention weights in float16, for caches: they are most of the bytes (BERT-base at
        512 tokens: 330 of 360 MB), and float16's ~3 significant digits are more than any view shows.
        Exact zeros (the causal mask) stay exact; hidden states stay float32 for cosines; rollout, computed
        when asked, follows the attentions' dtype."""
        half = {kind: replace(run, attentions=run.attentions.astype(np.float16)) for kind, run in self.runs.items()}
        return replace(self, runs=half)

    def divergence(self) -> np.ndarray:
        """(layer + 1, token): 1 − cosine(bidirectional, causal hidden state): where seeing the right side matters."""
        return 1 - metrics.cosine(self.bidirectional.hidden_states, self.causal.hidden_states)

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
        }


def run_encoder(
    loaded: LoadedModel,
    input_ids: torch.Tensor,
    token_type_ids: torch.Tensor | None,
    attention_mask: torch.Tensor,
    *,
    internals: bool = True,
):
    """One forward pass of the encoder with the model's own attentions and hidden states (see `hooks.run`)."""
    out, _ = hooks.run(loaded, input_ids, token_type_ids, attention_mask, internals=internals)
    return out


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
    length = len(encoding)
    batch = len(mask_types)
    input_ids = encoding.input_ids.expand(batch, -1)
    token_type_ids = encoding.token_type_ids.expand(batch, -1)
    attention_mask = masks.stacked(mask_types, length, loaded.dtype)
    parts = [name for name in hooks.EMBED_POINTS if name != "embed.out"]
    out, cache = hooks.run(
        loaded, input_ids, token_type_ids, attention_mask,
        capture=[p for p in parts if p != "embed.segment" or loaded.info.has_segments], internals=True,
    )

    hidden = torch.stack(out.hidden_states, dim=1)  # (mask, layer + 1, token, hidden)
    attn = torch.stack(out.attentions, dim=1)  # (mask, layer, head, query, key)
    embeddings = _embeddings(loaded, cache, hidden[0, 0])
    specials = _special_positions(loaded, encoding)

    mlm_positions = encoding.mask_positions if loaded.mlm_head is not None else []
    predictions = _top_predictions(loaded, hidden[:, -1, mlm_positions], top_k) if mlm_positions else None

    runs = {}
    for i, kind in enumerate(mask_types):
        runs[kind] = MaskRun(
            kind=kind,
            allowed=masks.allowed(kind, length).numpy(),
            attentions=_np(attn[i]),
            hidden_states=_np(hidden[i]),
            head_stats={k: _np(v) for k, v in head_statistics(attn[i].float(), specials).items()},
            mlm={p: predictions[i][j] for j, p in enumerate(mlm_positions)} if predictions else {},
        )

    nsp = None
    if loaded.nsp_head is not None and out.pooler_output is not None:
        with torch.inference_mode():
            nsp = float(torch.softmax(loaded.nsp_head(out.pooler_output[0]).float(), -1)[0])

    return Analysis(
        model=loaded.info,
        encoding=encoding,
        embeddings=embeddings,
        runs=runs,
        nsp=nsp,
        top_k=top_k,
        notes=_notes(loaded, encoding),
        classifier=_classify(loaded, out, mask_types),
    )


def _classify(loaded: LoadedModel, out, mask_types: tuple[str, ...]) -> Classification | None:
    """The classifier on the bidirectional row of the same pass: no second forward."""
    if loaded.classifier_head is None or "bidirectional" not in mask_types:
        return None
    row = mask_types.index("bidirectional")
    pooled = getattr(out, "pooler_output", None)  # DistilBERT has no pooler
    pooled = None if pooled is None else pooled[row : row + 1]
    with torch.inference_mode():
        logits = loaded.classifier_head(out.last_hidden_state[row : row + 1], pooled)[0]
    return Classification(task=loaded.info.classifier, labels=loaded.info.labels, probs=_np(torch.softmax(logits.float(), -1)))


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().float().cpu().numpy()


def _notes(loaded: LoadedModel, encoding: Encoding) -> list[str]:
    notes = []
    if loaded.info.notice:
        notes.append(loaded.info.notice)
    if encoding.truncated:
        notes.append(
            f"The input has {encoding.untruncated_length} tokens; BERT reads at most {loaded.max_length} "
            f"positions, so it was truncated to {len(encoding)}."
        )
    if encoding.mask_positions and loaded.mlm_head is None:
        notes.append(f"'{loaded.info.name}' has no masked-LM head, so [MASK] predictions are not available.")
    if encoding.pair and loaded.nsp_head is None:
        notes.append(f"'{loaded.info.name}' has no next-sentence-prediction head, so IsNext is not available.")
    return notes


def _embeddings(loaded: LoadedModel, cache: hooks.Cache, model_output: torch.Tensor) -> Embeddings:
    """The first row's three embedding lookups (captured at the model's own embedding modules), their sum
    and LayerNorm, and how far that is from the model's own embedding output."""
    token, position = cache["embed.token"][0], cache["embed.position"][0]
    segment = cache["embed.segment"][0] if "embed.segment" in cache else None
    total = token + position + (segment if segment is not None else 0)
    with torch.inference_mode():
        normed = loaded.embeddings.LayerNorm(total)
    diff = float((normed.float() - model_output.float()).abs().max())
    return Embeddings(
        token=_np(token),
        segment=None if segment is None else _np(segment),
        position=_np(position),
        sum=_np(total),
        layernorm=_np(normed),
        model_output=_np(model_output),
        max_abs_diff=diff,
    )


def _special_positions(loaded: LoadedModel, encoding: Encoding) -> dict[str, list[int]]:
    tok = loaded.tokenizer
    return {
        "cls": [t.position for t in encoding.tokens if t.id == tok.cls_token_id],
        "sep": [t.position for t in encoding.tokens if t.id == tok.sep_token_id],
    }


def _top_predictions(loaded: LoadedModel, hidden: torch.Tensor, top_k: int) -> list[list[list[Prediction]]]:
    """Vocabulary logits only at the positions read: (mask, position, hidden) -> top-k per cell."""
    with torch.inference_mode():
        probs = torch.softmax(loaded.mlm_head(hidden).float(), dim=-1)
        values, ids = probs.topk(min(top_k, probs.shape[-1]), dim=-1)
    to_piece = loaded.tokenizer.convert_ids_to_tokens
    return [
        [[Prediction(to_piece(i), i, v) for i, v in zip(row_ids, row_values)] for row_ids, row_values in zip(m_ids, m_values)]
        for m_ids, m_values in zip(ids.cpu().tolist(), values.cpu().tolist())
    ]
