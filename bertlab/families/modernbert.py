"""ModernBERT (Warner et al., 2024), with the Ettin encoders and mmBERT: pre-norm layers (x + F(LayerNorm(x)),
the first layer without the norm before attention), rotary positions applied to q and k inside attention (no
position embedding), local attention (±w tokens) in most layers and global attention every few, a gated MLP
(GeGLU), no segments, a final LayerNorm before the head; byte-level BPE."""

from __future__ import annotations

import torch
import transformers

from . import Adapter, Embedding, HeadTerms, Point, Sizes, project


def _heads(model, config, present: tuple[str, ...]) -> dict:
    if "mlm" not in present:
        return {}
    final = model.model.final_norm
    return {"mlm": lambda hidden: model.decoder(model.head(final(hidden)))}


def _classifier(model, task: str):
    final = model.model.final_norm
    if task == "token":
        return lambda hidden, pooled: model.classifier(model.head(final(hidden)))
    if model.config.classifier_pooling == "mean":  # one unpadded row: the mean over its tokens
        return lambda hidden, pooled: model.classifier(model.head(final(hidden).mean(1)))
    return lambda hidden, pooled: model.classifier(model.head(final(hidden)[:, 0]))


def _head_terms(loaded, layer: int, x: torch.Tensor, head: int) -> HeadTerms:
    """q and k from the layer's own Wqkv (after its attn_norm), then rotated by the model's own rotary embedding
    for this layer's kind (global and local layers use different frequencies) with transformers'
    apply_rotary_pos_emb, exactly as ModernBertAttention does."""
    from transformers.models.modernbert import modeling_modernbert as modernbert

    q, k, v = project(loaded, layer, x, head)
    base = loaded.encoder
    positions = torch.arange(x.shape[0], device=x.device)[None]
    cos, sin = base.rotary_emb(q[None], positions, base.config.layer_types[layer])
    q_rot, k_rot = (t[0, 0].float() for t in modernbert.apply_rotary_pos_emb(q[None, None], k[None, None], cos, sin))
    scale = q.shape[-1] ** -0.5
    raw = q_rot @ k_rot.T
    return HeadTerms(q=q, k=k, v=v, scale=scale, scores=raw * scale, raw=raw, rotated=(q_rot, k_rot))


def _local(config) -> dict[int, int]:
    return {i: config.sliding_window for i, kind in enumerate(config.layer_types) if kind == "sliding_attention"}


ADAPTER = Adapter(
    name="modernbert",
    title="ModernBERT",
    model_types=("modernbert",),
    teaches="pre-norm, rotary positions, local attention in most layers and global every few, a gated MLP, 8,192 positions",
    checkpoints=("answerdotai/ModernBERT-base", "answerdotai/ModernBERT-large", "jhu-clsp/ettin-encoder-17m",
                 "jhu-clsp/ettin-encoder-150m", "jhu-clsp/mmBERT-base", "jhu-clsp/mmBERT-small"),
    layers="layers",
    embedding=Embedding(parts={"embed.token": "embeddings.tok_embeddings"}, out="embeddings", norm="embeddings.norm"),
    points={
        "in": Point("", "in"),
        "attn.q": Point("attn.Wqkv", "out", 0),
        "attn.k": Point("attn.Wqkv", "out", 1),
        "attn.v": Point("attn.Wqkv", "out", 2),
        "attn.mask": Point("attn", "mask"),
        "attn.pattern": Point("attn", "pattern"),
        "attn.context": Point("attn.Wo", "in"),
        "attn.out": Point("attn.Wo", "out"),
        "mid": Point("mlp_norm", "in"),
        "ffn.act": Point("mlp.Wo", "in"),
        "ffn.out": Point("mlp.Wo", "out"),
        "out": Point("", "out"),
    },
    norm_placement="pre",
    norms=("attn_norm", "mlp_norm"),
    final_norm="final_norm",
    positions="rotary",
    classes={"ModernBertForMaskedLM": ("mlm",), "ModernBertForSequenceClassification": ("classifier",),
             "ModernBertForTokenClassification": ("classifier",)},
    probes={"mlm": ("head.dense.weight",), "classifier": ("classifier.weight",)},
    build_heads=_heads,
    pretraining={"modernbert": "ModernBertForMaskedLM"},
    fine_tunes={"ModernBertForSequenceClassification": "sequence", "ModernBertForTokenClassification": "token"},
    classifier=_classifier,
    pieces="Ġ",
    segments=lambda config: False,
    local_layers=_local,
    head_terms=_head_terms,
    formula="h = x + Attention(LayerNorm(x)); out = h + MLP(LayerNorm(h)); a final LayerNorm before the head",
    shapes={"modernbert-base": Sizes(22, 12, 768, 1152, 8192)},
    random_config=lambda s, words: transformers.ModernBertConfig(  # ModernBERT-base: global every 3rd layer, ±64 local
        vocab_size=len(words), num_hidden_layers=s.layers, hidden_size=s.hidden, num_attention_heads=s.heads,
        intermediate_size=s.ffn, max_position_embeddings=s.max_positions, global_attn_every_n_layers=3,
        local_attention=128, pad_token_id=words.pad_token_id, cls_token_id=words.cls_token_id,
        sep_token_id=words.sep_token_id, bos_token_id=words.cls_token_id, eos_token_id=words.sep_token_id),
    vocabulary="cls-bpe",
)
