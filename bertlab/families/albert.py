"""ALBERT (Lan et al., 2019): factorized embeddings (E-wide lookups, then a projection to the hidden width H) and
one layer's weights shared by every layer; sentence-order prediction (SOP) instead of NSP; SentencePiece pieces
(`▁` marks a word start); post-norm."""

from __future__ import annotations

import transformers

from . import Adapter, Point, Sizes, bert_embedding


def _heads(model, config, present: tuple[str, ...]) -> dict:
    heads = {}
    if "mlm" in present:
        heads["mlm"] = model.predictions
    if "sop" in present:
        heads["sop"] = model.sop_classifier  # on the pooler output: is A before B (label 0) or swapped (1)?
    return heads


def _classifier(model, task: str):
    if task == "token":
        return lambda hidden, pooled: model.classifier(hidden)
    return lambda hidden, pooled: model.classifier(pooled)


def _layers(base, config) -> list:
    """Layer i runs the layer group int(i / (L / G)): with one group (every released ALBERT), one module L times."""
    groups = base.encoder.albert_layer_groups
    count = config.num_hidden_layers
    return [groups[int(i / (count / config.num_hidden_groups))].albert_layers[0] for i in range(count)]


def _refuse(config) -> str | None:
    if config.inner_group_num != 1:
        return (f"this ALBERT runs {config.inner_group_num} sub-layers per layer (inner_group_num); bertlab reads "
                "ALBERTs with one, as every released checkpoint has.")
    return None


ADAPTER = Adapter(
    name="albert",
    title="ALBERT",
    model_types=("albert",),
    teaches="fewer parameters: factorized embeddings (E < H, then a projection) and one layer's weights shared by every layer",
    checkpoints=("albert-base-v2", "albert-large-v2", "albert-xlarge-v2", "albert-xxlarge-v2", "albert/albert-base-v2"),
    layers="encoder.albert_layer_groups",
    embedding=bert_embedding(projection="encoder.embedding_hidden_mapping_in"),
    points={
        "in": Point("", "in"),
        "attn.q": Point("attention.query", "out"),
        "attn.k": Point("attention.key", "out"),
        "attn.v": Point("attention.value", "out"),
        "attn.mask": Point("attention", "mask"),
        "attn.pattern": Point("attention", "pattern"),
        "attn.context": Point("attention.dense", "in"),
        "attn.out": Point("attention.dense", "out"),
        "mid": Point("attention.LayerNorm", "out"),
        "ffn.act": Point("ffn_output", "in"),
        "ffn.out": Point("ffn_output", "out"),
        "out": Point("full_layer_layer_norm", "out"),
    },
    norm_placement="post",
    norms=("attention.LayerNorm", "full_layer_layer_norm"),
    positions="absolute",
    classes={"AlbertForPreTraining": ("mlm", "sop"), "AlbertForMaskedLM": ("mlm",),
             "AlbertForSequenceClassification": ("classifier",), "AlbertForTokenClassification": ("classifier",)},
    probes={"mlm": ("predictions.dense.weight",), "sop": ("sop_classifier.classifier.weight",),
            "classifier": ("classifier.weight",)},
    build_heads=_heads,
    pretraining={"albert": "AlbertForPreTraining"},
    fine_tunes={"AlbertForSequenceClassification": "sequence", "AlbertForTokenClassification": "token"},
    classifier=_classifier,
    pieces="▁",
    shared_layers=lambda config: config.num_hidden_groups < config.num_hidden_layers,
    layer_list=_layers,
    refuse=_refuse,
    shapes={"albert-base": Sizes(12, 12, 768, 3072, 512)},
    random_config=lambda s, words: transformers.AlbertConfig(
        vocab_size=len(words), embedding_size=128, num_hidden_layers=s.layers, hidden_size=s.hidden,
        num_attention_heads=s.heads, intermediate_size=s.ffn, max_position_embeddings=s.max_positions,
        pad_token_id=words.pad_token_id),
    vocabulary="sentencepiece",
    formula="h = LayerNorm(x + Attention(x)); out = LayerNorm(h + FFN(h)), the same weights in every layer",
)
