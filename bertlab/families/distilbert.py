"""DistilBERT (Sanh et al., 2019): BERT distilled to half the layers, no segments, no NSP; post-norm."""

from __future__ import annotations

import transformers

from . import Adapter, Embedding, Point, Sizes


def _heads(model, config, present: tuple[str, ...]) -> dict:
    if "mlm" not in present:
        return {}

    def mlm(hidden):
        return model.vocab_projector(model.vocab_layer_norm(model.activation(model.vocab_transform(hidden))))

    return {"mlm": mlm}


def _classifier(model, task: str):
    if task == "token":
        return lambda hidden, pooled: model.classifier(hidden)
    # [CLS]'s hidden state -> pre_classifier -> ReLU -> classifier, as DistilBertForSequenceClassification does
    return lambda hidden, pooled: model.classifier(model.pre_classifier(hidden[:, 0]).relu())


ADAPTER = Adapter(
    name="distilbert",
    title="DistilBERT",
    model_types=("distilbert",),
    teaches="knowledge distillation: half of BERT's layers trained to imitate it; no segments and no NSP",
    checkpoints=("distilbert-base-uncased", "distilbert-base-cased", "distilbert-base-multilingual-cased",
                 "distilbert-base-uncased-finetuned-sst-2-english"),
    layers="transformer.layer",
    embedding=Embedding(parts={"embed.token": "embeddings.word_embeddings", "embed.position": "embeddings.position_embeddings"},
                        out="embeddings", norm="embeddings.LayerNorm"),
    points={
        "in": Point("", "in"),
        "attn.q": Point("attention.q_lin", "out"),
        "attn.k": Point("attention.k_lin", "out"),
        "attn.v": Point("attention.v_lin", "out"),
        "attn.mask": Point("attention", "mask"),
        "attn.pattern": Point("attention", "pattern"),
        "attn.context": Point("attention.out_lin", "in"),
        "attn.out": Point("attention.out_lin", "out"),
        "mid": Point("sa_layer_norm", "out"),
        "ffn.act": Point("ffn.lin2", "in"),
        "ffn.out": Point("ffn.lin2", "out"),
        "out": Point("output_layer_norm", "out"),
    },
    norm_placement="post",
    norms=("sa_layer_norm", "output_layer_norm"),
    positions="absolute",
    classes={"DistilBertForMaskedLM": ("mlm",), "DistilBertForSequenceClassification": ("classifier",),
             "DistilBertForTokenClassification": ("classifier",)},
    probes={"mlm": ("vocab_transform.weight",), "classifier": ("classifier.weight",)},
    build_heads=_heads,
    pretraining={"distilbert": "DistilBertForMaskedLM"},
    fine_tunes={"DistilBertForSequenceClassification": "sequence", "DistilBertForTokenClassification": "token"},
    classifier=_classifier,
    sizes=lambda c: Sizes(c.n_layers, c.n_heads, c.dim, c.hidden_dim, c.max_position_embeddings),
    segments=lambda config: False,
    formula="h = LayerNorm(x + Attention(x)); out = LayerNorm(h + FFN(h))",
    shapes={"distilbert-base": Sizes(6, 12, 768, 3072, 512)},
    random_config=lambda s, words: transformers.DistilBertConfig(
        vocab_size=len(words), n_layers=s.layers, dim=s.hidden, n_heads=s.heads, hidden_dim=s.ffn,
        max_position_embeddings=s.max_positions, pad_token_id=words.pad_token_id),
)
