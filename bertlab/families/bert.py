"""BERT (Devlin et al., 2018), multilingual BERT included: post-norm, learned absolute positions, segments A/B,
WordPiece (`##` marks a continuation), pre-trained with MLM and NSP."""

from __future__ import annotations

import transformers

from . import BERT_NORMS, Adapter, Sizes, bert_embedding, bert_points


def _heads(model, config, present: tuple[str, ...]) -> dict:
    heads = {}
    if "mlm" in present:
        heads["mlm"] = model.cls.predictions
    if "nsp" in present:
        heads["nsp"] = model.cls.seq_relationship  # on the pooler output, not on a token
    return heads


def _classifier(model, task: str):
    if task == "token":
        return lambda hidden, pooled: model.classifier(hidden)
    return lambda hidden, pooled: model.classifier(pooled)  # the pooler output ([CLS] -> dense -> tanh)


ADAPTER = Adapter(
    name="bert",
    title="BERT",
    model_types=("bert",),
    teaches="the original: WordPiece, segments A/B, learned positions, post-norm layers, MLM + next sentence prediction",
    checkpoints=(
        "bert-base-uncased", "bert-base-cased", "bert-large-uncased", "bert-large-cased",
        "bert-base-multilingual-uncased", "bert-base-multilingual-cased", "bert-base-chinese",
        "bert-large-uncased-whole-word-masking", "bert-large-cased-whole-word-masking",
        "google/bert_uncased_L-2_H-128_A-2", "google/bert_uncased_L-4_H-256_A-4", "google/bert_uncased_L-4_H-512_A-8",
        "google/bert_uncased_L-8_H-512_A-8", "prajjwal1/bert-tiny", "dslim/bert-base-NER",
        "nlptown/bert-base-multilingual-uncased-sentiment", "sentence-transformers/all-MiniLM-L6-v2",
    ),
    layers="encoder.layer",
    embedding=bert_embedding(),
    points=bert_points(),
    norm_placement="post",
    norms=BERT_NORMS,
    positions="absolute",
    classes={"BertForPreTraining": ("mlm", "nsp"), "BertForSequenceClassification": ("classifier",),
             "BertForTokenClassification": ("classifier",)},
    probes={"mlm": ("cls.predictions.transform.dense.weight",), "nsp": ("cls.seq_relationship.weight",),
            "classifier": ("classifier.weight",)},
    build_heads=_heads,
    pretraining={"bert": "BertForPreTraining"},
    fine_tunes={"BertForSequenceClassification": "sequence", "BertForTokenClassification": "token"},
    classifier=_classifier,
    formula="h = LayerNorm(x + Attention(x)); out = LayerNorm(h + FFN(h))",
    shapes={  # BERT's published sizes (layers, heads, hidden, FFN)
        "bert-base": Sizes(12, 12, 768, 3072, 512), "bert-large": Sizes(24, 16, 1024, 4096, 512),
        "bert-medium": Sizes(8, 8, 512, 2048, 512), "bert-small": Sizes(4, 8, 512, 2048, 512),
        "bert-mini": Sizes(4, 4, 256, 1024, 512), "bert-tiny": Sizes(2, 2, 128, 512, 512),
    },
    random_config=lambda s, words: transformers.BertConfig(
        vocab_size=len(words), num_hidden_layers=s.layers, hidden_size=s.hidden, num_attention_heads=s.heads,
        intermediate_size=s.ffn, max_position_embeddings=s.max_positions),
)
