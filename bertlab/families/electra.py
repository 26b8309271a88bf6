"""ELECTRA (Clark et al., 2020): BERT's layers trained as a discriminator that says, per token, whether a small
generator replaced it (replaced-token detection); the generator is a small MLM. Embeddings may be narrower than
the hidden width (a projection follows); WordPiece; post-norm."""

from __future__ import annotations

import transformers

from . import BERT_NORMS, Adapter, Sizes, bert_embedding, bert_points


def _heads(model, config, present: tuple[str, ...]) -> dict:
    heads = {}
    if "rtd" in present:
        heads["rtd"] = model.discriminator_predictions  # one logit per token: > 0 means "replaced"
    if "mlm" in present:
        heads["mlm"] = lambda hidden: model.generator_lm_head(model.generator_predictions(hidden))
    return heads


def _classifier(model, task: str):
    # ElectraClassificationHead reads the first token itself; the token classifier reads every token
    return lambda hidden, pooled: model.classifier(hidden)


ADAPTER = Adapter(
    name="electra",
    title="ELECTRA",
    model_types=("electra",),
    teaches="replaced-token detection: a discriminator says, for every token, whether a small generator replaced it",
    checkpoints=("google/electra-small-discriminator", "google/electra-base-discriminator",
                 "google/electra-large-discriminator", "google/electra-small-generator", "google/electra-base-generator"),
    layers="encoder.layer",
    embedding=bert_embedding(projection="embeddings_project"),
    points=bert_points(),
    norm_placement="post",
    norms=BERT_NORMS,
    positions="absolute",
    classes={"ElectraForPreTraining": ("rtd",), "ElectraForMaskedLM": ("mlm",),
             "ElectraForSequenceClassification": ("classifier",), "ElectraForTokenClassification": ("classifier",)},
    probes={"rtd": ("discriminator_predictions.dense.weight",), "mlm": ("generator_predictions.dense.weight",),
            "classifier": ("classifier.dense.weight", "classifier.weight")},
    build_heads=_heads,
    pretraining={"electra": "ElectraForPreTraining"},
    fine_tunes={"ElectraForSequenceClassification": "sequence", "ElectraForTokenClassification": "token"},
    classifier=_classifier,
    formula="h = LayerNorm(x + Attention(x)); out = LayerNorm(h + FFN(h))",
    shapes={"electra-base": Sizes(12, 12, 768, 3072, 512), "electra-small": Sizes(12, 4, 256, 1024, 512)},
    random_config=lambda s, words: transformers.ElectraConfig(
        vocab_size=len(words), embedding_size=128 if s.hidden == 256 else s.hidden, num_hidden_layers=s.layers,
        hidden_size=s.hidden, num_attention_heads=s.heads, intermediate_size=s.ffn, max_position_embeddings=s.max_positions),
)
