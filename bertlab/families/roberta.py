"""RoBERTa (Liu et al., 2019), with XLM-RoBERTa and CamemBERT: BERT's layers retrained without NSP, on more
data, with dynamic masking and a byte-level BPE vocabulary (`Ġ` marks a word start; XLM-R and CamemBERT use
SentencePiece's `▁`); one segment type; positions counted from padding_idx + 1."""

from __future__ import annotations

import transformers

from . import BERT_NORMS, Adapter, Sizes, bert_embedding, bert_points


def _heads(model, config, present: tuple[str, ...]) -> dict:
    return {"mlm": model.lm_head} if "mlm" in present else {}


def _classifier(model, task: str):
    # RobertaClassificationHead reads <s> (features[:, 0]) itself; the token classifier reads every token
    return lambda hidden, pooled: model.classifier(hidden)


ROBERTA_CLASSES = ("MaskedLM", "SequenceClassification", "TokenClassification")

ADAPTER = Adapter(
    name="roberta",
    title="RoBERTa",
    model_types=("roberta", "xlm-roberta", "camembert"),
    teaches="BERT trained longer on more data: byte-level BPE (Ġ marks a word start), no NSP, one segment, dynamic masking",
    checkpoints=("roberta-base", "roberta-large", "distilroberta-base", "FacebookAI/roberta-base", "xlm-roberta-base",
                 "xlm-roberta-large", "FacebookAI/xlm-roberta-base", "camembert-base", "almanach/camembert-base",
                 "cardiffnlp/twitter-roberta-base-sentiment-latest"),
    layers="encoder.layer",
    embedding=bert_embedding(),
    points=bert_points(),
    norm_placement="post",
    norms=BERT_NORMS,
    positions="absolute",
    classes={f"{prefix}For{kind}": (("mlm",) if kind == "MaskedLM" else ("classifier",))
             for prefix in ("Roberta", "XLMRoberta", "Camembert") for kind in ROBERTA_CLASSES},
    probes={"mlm": ("lm_head.dense.weight",), "classifier": ("classifier.dense.weight", "classifier.weight")},
    build_heads=_heads,
    pretraining={"roberta": "RobertaForMaskedLM", "xlm-roberta": "XLMRobertaForMaskedLM", "camembert": "CamembertForMaskedLM"},
    fine_tunes={f"{prefix}For{kind}": ("sequence" if kind == "SequenceClassification" else "token")
                for prefix in ("Roberta", "XLMRoberta", "Camembert") for kind in ROBERTA_CLASSES[1:]},
    classifier=_classifier,
    pieces="Ġ",
    formula="h = LayerNorm(x + Attention(x)); out = LayerNorm(h + FFN(h))",
    shapes={"roberta-base": Sizes(12, 12, 768, 3072, 512)},
    random_config=lambda s, words: transformers.RobertaConfig(
        vocab_size=len(words), num_hidden_layers=s.layers, hidden_size=s.hidden, num_attention_heads=s.heads,
        intermediate_size=s.ffn, max_position_embeddings=s.max_positions + words.pad_token_id + 1, type_vocab_size=1,
        pad_token_id=words.pad_token_id, bos_token_id=words.bos_token_id, eos_token_id=words.eos_token_id),
    vocabulary="roberta",
)
