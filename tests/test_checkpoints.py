"""Every way a BERT checkpoint is saved: each class writes a tiny random checkpoint, bertlab loads it with
the heads it really holds (and no others), analyses it, and a fine-tune's classifier agrees with the
fine-tune's own forward pass."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch
import transformers
from conftest import VOCAB, checkpoint, tiny_bert_config
from transformers import BertTokenizer, DistilBertConfig

import bertlab
from bertlab import cli

TEXT = "the quick brown [MASK] jumps over the lazy dog ."
PAIR = "i have a pen ."
SENTIMENT = {0: "NEGATIVE", 1: "POSITIVE"}
ENTITIES = {0: "O", 1: "B-PER", 2: "I-PER"}


def tiny_distilbert_config(**overrides) -> DistilBertConfig:
    settings = dict(vocab_size=len(VOCAB), dim=32, n_layers=2, n_heads=4, hidden_dim=64, max_position_embeddings=64, initializer_range=0.2)
    return DistilBertConfig(**{**settings, **overrides})


def labelled(config_factory: Callable, labels: dict[int, str]):
    return config_factory(id2label=labels, label2id={v: k for k, v in labels.items()})


# (name, build, heads, classifier task, pooler kept, cased): one row per class a BERT is saved from
CASES = [
    ("BertForPreTraining", lambda: transformers.BertForPreTraining(tiny_bert_config()), ("mlm", "nsp"), None, True, False),
    ("BertForMaskedLM", lambda: transformers.BertForMaskedLM(tiny_bert_config()), ("mlm",), None, False, False),
    ("BertForMaskedLM-cased", lambda: transformers.BertForMaskedLM(tiny_bert_config()), ("mlm",), None, False, True),
    ("BertModel", lambda: transformers.BertModel(tiny_bert_config()), (), None, True, False),
    ("BertModel-no-pooler", lambda: transformers.BertModel(tiny_bert_config(), add_pooling_layer=False), (), None, False, False),
    (
        "BertForSequenceClassification",
        lambda: transformers.BertForSequenceClassification(labelled(tiny_bert_config, SENTIMENT)),
        ("classifier",), "sequence", True, False,
    ),
    (
        "BertForTokenClassification",
        lambda: transformers.BertForTokenClassification(labelled(tiny_bert_config, ENTITIES)),
        ("classifier",), "token", False, True,
    ),
    ("DistilBertForMaskedLM", lambda: transformers.DistilBertForMaskedLM(tiny_distilbert_config()), ("mlm",), None, False, False),
    ("DistilBertForMaskedLM-cased", lambda: transformers.DistilBertForMaskedLM(tiny_distilbert_config()), ("mlm",), None, False, True),
    ("DistilBertModel", lambda: transformers.DistilBertModel(tiny_distilbert_config()), (), None, False, False),
    (
        "DistilBertForSequenceClassification",
        lambda: transformers.DistilBertForSequenceClassification(labelled(tiny_distilbert_config, SENTIMENT)),
        ("classifier",), "sequence", False, False,
    ),
    (
        "DistilBertForTokenClassification",
        lambda: transformers.DistilBertForTokenClassification(labelled(tiny_distilbert_config, ENTITIES)),
        ("classifier",), "token", False, False,
    ),
]


def save(tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable, cased: bool) -> Path:
    directory = checkpoint(tmp_path_factory, name, 7, build)
    if cased:  # same vocabulary, capitals kept: "The" is not a piece of it, so it reads as [UNK]
        BertTokenizer(vocab={p: i for i, p in enumerate(VOCAB)}, do_lower_case=False, model_max_length=64).save_pretrained(directory)
    return directory


@pytest.mark.parametrize("name, build, heads, task, pooler, cased", CASES, ids=[c[0] for c in CASES])
def test_checkpoint_loads_with_the_heads_it_holds(tmp_path_factory, name, build, heads, task, pooler, cased):
    directory = save(tmp_path_factory, name, build, cased)
    loaded = bertlab.load_model(str(directory), device="cpu")
    info = loaded.info

    assert info.heads_available == heads
    assert info.saved_as == name.removesuffix("-cased").removesuffix("-no-pooler")
    assert info.cased is cased
    assert info.classifier == task
    assert (loaded.mlm_head is not None) == ("mlm" in heads)
    assert (loaded.nsp_head is not None) == ("nsp" in heads)
    assert (getattr(loaded.encoder, "pooler", None) is not None) == pooler, "a pooler the checkpoint lacks would be random"
    assert info.description.startswith(f"Saved as {info.saved_as}")
    for head, word in (("mlm", "MLM"), ("nsp", "NSP")):
        if head not in heads:
            assert f"no {word}" in info.description or f"or {word}" in info.description
            with pytest.raises(bertlab.MissingHeadError):
                loaded.require(head)
    if name == "BertForMaskedLM":
        assert "pooler" in info.description

    a = bertlab.analyze(loaded, ("The" if cased else "the") + TEXT[3:], PAIR)
    first_word = a.tokens[1].text
    assert first_word == ("[UNK]" if cased else "the")
    attn = a.bidirectional.attentions
    assert attn.shape[:2] == (2, 4)
    np.testing.assert_allclose(attn.sum(-1), 1.0, atol=1e-5)
    assert a.embeddings.max_abs_diff < 1e-4
    data = a.to_dict()
    assert bool(data["mlm"]) == ("mlm" in heads) and (data["nsp"] is not None) == ("nsp" in heads)
    assert (data["classifier"] is not None) == (task is not None)


@pytest.mark.parametrize(
    "name, build, task",
    [(c[0], c[1], c[3]) for c in CASES if c[3]],
    ids=[c[0] for c in CASES if c[3]],
)
def test_classifier_matches_the_fine_tunes_own_forward(tmp_path_factory, capsys, name, build, task):
    directory = save(tmp_path_factory, name, build, cased=False)
    loaded = bertlab.load_model(str(directory), device="cpu")
    a = bertlab.analyze(loaded, TEXT)

    own = getattr(transformers, name).from_pretrained(directory).eval()
    inputs = loaded.tokenizer(TEXT, return_tensors="pt")
    with torch.inference_mode():
        probs = torch.softmax(own(**inputs).logits[0], -1).numpy()
    labels = SENTIMENT if task == "sequence" else ENTITIES
    assert a.classifier.task == task and a.classifier.labels == tuple(labels.values())
    np.testing.assert_allclose(a.classifier.probs, probs, atol=1e-5)
    if task == "sequence":
        assert a.classifier.predicted == labels[int(probs.argmax())]
    else:
        assert a.classifier.predicted == [labels[int(i)] for i in probs.argmax(-1)]
        assert len(a.classifier.predicted) == len(a.tokens)

    assert cli.main(["analyze", TEXT, "--model", str(directory), "--device", "cpu", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["classifier"]["predicted"] == a.classifier.predicted
    assert printed["model"]["labels"] == list(labels.values())
