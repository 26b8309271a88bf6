"""Tiny random checkpoints of every family bertlab reads, written to disk like real ones: a model of each family's
own class and a tokenizer of its own kind, trained offline with the `tokenizers` library on a few sentences
(WordPiece for BERT and ELECTRA, byte-level BPE for RoBERTa, ModernBERT and GPT-2, Unigram with Metaspace for
ALBERT and DeBERTa-v3: bertlab.vocab), wrapped in PreTrainedTokenizerFast and saved with `save_pretrained`."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch
import transformers
from transformers import PreTrainedTokenizerFast

from bertlab import vocab

SENTENCES = [
    "I went to the bank to deposit money.", "I went to the bank to catch some fish.", "The river bank was very scenic.",
    "The bank was robbed yesterday.", "The quick brown fox jumps over the lazy dog.", "I have a pen, the pen is red!",
    "The cat sat on the mat and it was happy.", "She said: \"we went there (twice)\"; they did not?",
    "Money in the bank, fish in the river, a robbed bank; catching fish by the river bank.",
    "The man went to the store to buy a gallon of milk.", "Tokenization is unbelievably fun.",
]
SIZES = dict(hidden=32, layers=2, heads=4, ffn=64, positions=64)


def tokenizer(kind: str, size: int = 400) -> PreTrainedTokenizerFast:
    """A tokenizer of the family's kind (bertlab.vocab) trained on SENTENCES: a vocabulary of a few hundred pieces,
    so most words split and the markers show."""
    return vocab.train(kind, SENTENCES * 3, size, max_length=SIZES["positions"])


def _save(directory: Path, model: torch.nn.Module, tokenizer) -> Path:
    with torch.no_grad():  # a fresh LayerNorm is the identity map's scale (1) and shift (0): make each one its own,
        for module in model.modules():  # so applying a norm twice, or the wrong one, shows
            if isinstance(module, torch.nn.LayerNorm) or type(module).__name__ == "LayerNorm":
                if getattr(module, "weight", None) is not None:
                    module.weight.copy_(1 + 0.3 * torch.randn_like(module.weight))
                if getattr(module, "bias", None) is not None:
                    module.bias.copy_(0.1 * torch.randn_like(module.bias))
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def _common(words, **extra) -> dict:
    return dict(vocab_size=len(words), pad_token_id=words.pad_token_id, **extra)


def build_roberta(directory: Path, wordpiece) -> Path:
    words = tokenizer("roberta")
    config = transformers.RobertaConfig(
        **_common(words), hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
        max_position_embeddings=SIZES["positions"] + 2, type_vocab_size=1, initializer_range=0.2,
        bos_token_id=words.bos_token_id, eos_token_id=words.eos_token_id,
    )
    return _save(directory, transformers.RobertaForMaskedLM(config), words)


def build_albert(directory: Path, wordpiece) -> Path:
    words = tokenizer("sentencepiece", 300)
    config = transformers.AlbertConfig(
        **_common(words), embedding_size=16, hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
        intermediate_size=64, max_position_embeddings=SIZES["positions"], initializer_range=0.2,
    )
    return _save(directory, transformers.AlbertForPreTraining(config), words)


def build_electra(directory: Path, wordpiece) -> Path:
    """A discriminator with a narrower embedding (ELECTRA-small's shape, tiny): a projection follows."""
    config = transformers.ElectraConfig(
        vocab_size=len(wordpiece), embedding_size=16, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=64, max_position_embeddings=SIZES["positions"], initializer_range=0.2,
    )
    return _save(directory, transformers.ElectraForPreTraining(config), wordpiece)


def build_electra_generator(directory: Path, wordpiece) -> Path:
    config = transformers.ElectraConfig(
        vocab_size=len(wordpiece), embedding_size=16, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=64, max_position_embeddings=SIZES["positions"], initializer_range=0.2,
    )
    return _save(directory, transformers.ElectraForMaskedLM(config), wordpiece)


def build_deberta(directory: Path, wordpiece) -> Path:
    """DeBERTa-v3's shape, tiny: relative attention with log buckets, c2p and p2c, no absolute positions, no segments."""
    words = tokenizer("sentencepiece", 300)
    config = transformers.DebertaV2Config(
        **_common(words), hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
        max_position_embeddings=SIZES["positions"], relative_attention=True, position_buckets=8, max_relative_positions=-1,
        pos_att_type=["p2c", "c2p"], norm_rel_ebd="layer_norm", share_att_key=True, position_biased_input=False,
        type_vocab_size=0, initializer_range=0.2,
    )
    return _save(directory, transformers.DebertaV2ForMaskedLM(config), words)


def build_modernbert(directory: Path, wordpiece) -> Path:
    """Three layers, global attention in layers 0 and 2 and ±2-token local attention in layer 1 (ModernBERT has
    global every third layer and a 128-token window: the same code, small enough to see the window bite)."""
    words = tokenizer("cls-bpe")
    config = transformers.ModernBertConfig(
        **_common(words), hidden_size=32, num_hidden_layers=3, num_attention_heads=4, intermediate_size=48,
        max_position_embeddings=SIZES["positions"], global_attn_every_n_layers=2, local_attention=4,
        cls_token_id=words.cls_token_id, sep_token_id=words.sep_token_id,
        bos_token_id=words.cls_token_id, eos_token_id=words.sep_token_id, initializer_range=0.2,
    )
    return _save(directory, transformers.ModernBertForMaskedLM(config), words)


def build_gpt2(directory: Path, wordpiece) -> Path:
    words = tokenizer("gpt2")
    config = transformers.GPT2Config(
        vocab_size=len(words), n_embd=32, n_layer=2, n_head=4, n_positions=SIZES["positions"], initializer_range=0.2,
        bos_token_id=words.bos_token_id, eos_token_id=words.eos_token_id,
    )
    return _save(directory, transformers.GPT2LMHeadModel(config), words)


BUILDERS: dict[str, Callable[[Path, object], Path]] = {
    "roberta": build_roberta,
    "albert": build_albert,
    "electra": build_electra,
    "deberta": build_deberta,
    "modernbert": build_modernbert,
    "gpt2": build_gpt2,
}
"""Family -> a function writing its tiny checkpoint (BERT and DistilBERT are conftest.py's own fixtures)."""
