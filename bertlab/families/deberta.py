"""DeBERTa-v2 and DeBERTa-v3 (He et al., 2020, 2021): disentangled attention. A score is content→content plus
content→position plus position→content, the positions being relative (query minus key, log-bucketed far away)
and learned per distance, scaled by 1/√(3·d_head); no position is added to the embedding (v3). SentencePiece
pieces (`▁`); post-norm; its attention modules take a keep-mask (1 = may see), not an additive one."""

from __future__ import annotations

import torch
import transformers

from dataclasses import replace

from . import BERT_NORMS, Adapter, HeadTerms, Sizes, bert_embedding, bert_points, project


def _heads(model, config, present: tuple[str, ...]) -> dict:
    if "mlm" not in present:
        return {}
    if getattr(model, "legacy", True):
        return {"mlm": model.cls.predictions}
    words = model.deberta.embeddings.word_embeddings
    return {"mlm": lambda hidden: model.lm_predictions.lm_head(hidden, words)}


def _classifier(model, task: str):
    if task == "token":
        return lambda hidden, pooled: model.classifier(hidden)
    return lambda hidden, pooled: model.classifier(model.pooler(hidden))  # ContextPooler: [CLS] -> dense -> act


def _head_terms(loaded, layer: int, x: torch.Tensor, head: int) -> HeadTerms:
    """The three terms of DisentangledSelfAttention, with its own projections, relative-position embeddings and
    relative positions (transformers' build_relative_position), for one head. Each term is divided by
    √(d_head · terms), as the module divides them."""
    from transformers.models.deberta_v2 import modeling_deberta_v2 as deberta

    attention = loaded.attention_module(layer)
    q, k, v = project(loaded, layer, x, head)
    d_head = q.shape[-1]
    kinds = attention.pos_att_type if attention.relative_attention else []
    scale = (d_head * (1 + ("c2p" in kinds) + ("p2c" in kinds))) ** -0.5
    terms = {"content→content": q @ k.T}
    if kinds:
        span = attention.pos_ebd_size
        relative = loaded.encoder.encoder.get_rel_embedding()[: span * 2]  # (2 · span, hidden), its LayerNorm applied
        distance = deberta.build_relative_position(x, x, bucket_size=attention.position_buckets,
                                                   max_position=attention.max_relative_positions)[0].to(x.device)
        index = (distance + span).clamp(0, span * 2 - 1)  # (query, key): which learned distance each pair uses
        part = slice(head * d_head, (head + 1) * d_head)
        rows = torch.arange(k.shape[0], device=x.device)[None, :]
        if "c2p" in kinds:
            keys = (attention.key_proj if attention.share_att_key else attention.pos_key_proj)(relative)[:, part].float()
            terms["content→position"] = (q @ keys.T).gather(1, index)  # q_i · key of distance δ(i, j)
        if "p2c" in kinds:
            queries = (attention.query_proj if attention.share_att_key else attention.pos_query_proj)(relative)[:, part].float()
            terms["position→content"] = (k @ queries.T)[rows, index]  # k_j · query of distance δ(i, j)
    raw = sum(terms.values())
    return HeadTerms(q=q, k=k, v=v, scale=scale, scores=raw * scale, raw=raw, terms=terms)


def _points() -> dict:
    """BERT's layer with DeBERTa's names; q and k are each projection's first call in an attention pass (with
    share_att_key the same modules then project the relative-position embeddings)."""
    points = bert_points(q="query_proj", k="key_proj", v="value_proj")
    for name in ("attn.q", "attn.k", "attn.v"):
        points[name] = replace(points[name], first_in="attention.self")
    return points


ADAPTER = Adapter(
    name="deberta",
    title="DeBERTa-v3",
    model_types=("deberta-v2",),
    teaches="disentangled attention: content→content + content→position + position→content over relative positions, ÷√(3·d)",
    checkpoints=("microsoft/deberta-v3-base", "microsoft/deberta-v3-small", "microsoft/deberta-v3-xsmall",
                 "microsoft/deberta-v3-large", "microsoft/mdeberta-v3-base", "microsoft/deberta-v2-xlarge"),
    layers="encoder.layer",
    embedding=bert_embedding(projection="embeddings.embed_proj", projection_first=True),
    points=_points(),
    norm_placement="post",
    norms=BERT_NORMS,
    positions="relative",
    classes={"DebertaV2ForMaskedLM": ("mlm",), "DebertaV2ForSequenceClassification": ("classifier",),
             "DebertaV2ForTokenClassification": ("classifier",)},
    probes={"mlm": ("cls.predictions.transform.dense.weight", "lm_predictions.lm_head.dense.weight"),
            "classifier": ("classifier.weight",)},
    build_heads=_heads,
    pretraining={"deberta-v2": "DebertaV2ForMaskedLM"},
    fine_tunes={"DebertaV2ForSequenceClassification": "sequence", "DebertaV2ForTokenClassification": "token"},
    classifier=_classifier,
    mask_format="keep",
    pieces="▁",
    segments=lambda config: config.type_vocab_size > 1,
    head_terms=_head_terms,
    refuse=lambda config: ("this DeBERTa applies its last layer several times (z_steps); bertlab reads the released "
                           "checkpoints, which do not." if getattr(config, "z_steps", 0) > 1 else
                           "this DeBERTa has a convolution beside its first layer (conv_kernel_size), which bertlab does "
                           "not draw yet." if getattr(config, "conv_kernel_size", 0) > 0 else None),
    formula="h = LayerNorm(x + Attention(x)); out = LayerNorm(h + FFN(h)), attention scores c2c + c2p + p2c",
    shapes={"deberta-v3-base": Sizes(12, 12, 768, 3072, 512)},
    random_config=lambda s, words: transformers.DebertaV2Config(  # DeBERTa-v3-base's attention settings
        vocab_size=len(words), num_hidden_layers=s.layers, hidden_size=s.hidden, num_attention_heads=s.heads,
        intermediate_size=s.ffn, max_position_embeddings=s.max_positions, relative_attention=True, position_buckets=256,
        max_relative_positions=-1, pos_att_type=["p2c", "c2p"], norm_rel_ebd="layer_norm", share_att_key=True,
        position_biased_input=False, type_vocab_size=0, pad_token_id=words.pad_token_id),
    vocabulary="sentencepiece",
)
