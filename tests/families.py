"""Tiny random checkpoints of every family bertlab reads, written to disk like real ones: a model of each family's
own class and a tokenizer of its own kind, trained offline with the `tokenizers` library on a few sentences
(WordPiece for BERT and ELECTRA, byte-level BPE for RoBERTa, ModernBERT and GPT-2, Unigram with Metaspace for
ALBERT and DeBERTa-v3), wrapped in PreTrainedTokenizerFast and saved with `save_pretrained`."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch
import transformers
from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

SENTENCES = [
    "I went to the bank to deposit money.", "I went to the bank to catch some fish.", "The river bank was very scenic.",
    "The bank was robbed yesterday.", "The quick brown fox jumps over the lazy dog.", "I have a pen, the pen is red!",
    "The cat sat on the mat and it was happy.", "She said: \"we went there (twice)\"; they did not?",
    "Money in the bank, fish in the river, a robbed bank; catching fish by the river bank.",
    "The man went to the store to buy a gallon of milk.", "Tokenization is unbelievably fun.",
]
SIZES = dict(hidden=32, layers=2, heads=4, ffn=64, positions=64)


def _bpe(specials: list[str], template: tuple[str, str] | None, mask: str | None) -> Tokenizer:
    """Byte-level BPE (RoBERTa, ModernBERT, GPT-2): Ġ marks a piece that starts with a space."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(SENTENCES * 3, trainers.BpeTrainer(vocab_size=400, special_tokens=specials,
                                                               initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    if mask:
        tok.add_special_tokens([AddedToken(mask, lstrip=True, special=True)])
    if template:
        _frame(tok, *template)
    return tok


def _unigram(specials: list[str], unk: str) -> Tokenizer:
    """SentencePiece-style Unigram with Metaspace (ALBERT, DeBERTa-v3): ▁ marks a word start."""
    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.train_from_iterator(SENTENCES * 3, trainers.UnigramTrainer(vocab_size=300, special_tokens=specials, unk_token=unk))
    _frame(tok, "[CLS]", "[SEP]")
    return tok


def _frame(tok: Tokenizer, first: str, last: str, double: bool = False) -> None:
    pair = f"{first} $A {last} {last} $B:1 {last}:1" if double else f"{first} $A {last} $B:1 {last}:1"
    tok.post_processor = processors.TemplateProcessing(
        single=f"{first} $A {last}", pair=pair,
        special_tokens=[(first, tok.token_to_id(first)), (last, tok.token_to_id(last))],
    )


def _fast(tok: Tokenizer, **specials: str) -> PreTrainedTokenizerFast:
    return PreTrainedTokenizerFast(tokenizer_object=tok, model_max_length=SIZES["positions"], **specials)


def roberta_tokenizer() -> PreTrainedTokenizerFast:
    tok = _bpe(["<s>", "<pad>", "</s>", "<unk>"], None, "<mask>")
    tok.post_processor = processors.RobertaProcessing(("</s>", tok.token_to_id("</s>")), ("<s>", tok.token_to_id("<s>")))
    return _fast(tok, bos_token="<s>", eos_token="</s>", cls_token="<s>", sep_token="</s>", pad_token="<pad>",
                 unk_token="<unk>", mask_token="<mask>")


def modernbert_tokenizer() -> PreTrainedTokenizerFast:
    tok = _bpe(["[PAD]", "[UNK]", "[CLS]", "[SEP]"], ("[CLS]", "[SEP]"), "[MASK]")
    return _fast(tok, cls_token="[CLS]", sep_token="[SEP]", pad_token="[PAD]", unk_token="[UNK]", mask_token="[MASK]")


def gpt2_tokenizer() -> PreTrainedTokenizerFast:
    tok = _bpe(["<|endoftext|>"], None, None)
    return _fast(tok, bos_token="<|endoftext|>", eos_token="<|endoftext|>", unk_token="<|endoftext|>")


def sentencepiece_tokenizer(pad: str = "<pad>") -> PreTrainedTokenizerFast:
    tok = _unigram([pad, "<unk>", "[CLS]", "[SEP]", "[MASK]"], "<unk>")
    return _fast(tok, cls_token="[CLS]", sep_token="[SEP]", pad_token=pad, unk_token="<unk>", mask_token="[MASK]")


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


def _common(tokenizer, **extra) -> dict:
    return dict(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, **extra)


def build_roberta(directory: Path, wordpiece) -> Path:
    tokenizer = roberta_tokenizer()
    config = transformers.RobertaConfig(
        **_common(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
        max_position_embeddings=SIZES["positions"] + 2, type_vocab_size=1, initializer_range=0.2,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
    )
    return _save(directory, transformers.RobertaForMaskedLM(config), tokenizer)


def build_albert(directory: Path, wordpiece) -> Path:
    tokenizer = sentencepiece_tokenizer()
    config = transformers.AlbertConfig(
        **_common(tokenizer), embedding_size=16, hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
        intermediate_size=64, max_position_embeddings=SIZES["positions"], initializer_range=0.2,
    )
    return _save(directory, transformers.AlbertForPreTraining(config), tokenizer)


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
    tokenizer = sentencepiece_tokenizer("[PAD]")
    config = transformers.DebertaV2Config(
        **_common(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
        max_position_embeddings=SIZES["positions"], relative_attention=True, position_buckets=8, max_relative_positions=-1,
        pos_att_type=["p2c", "c2p"], norm_rel_ebd="layer_norm", share_att_key=True, position_biased_input=False,
        type_vocab_size=0, initializer_range=0.2,
    )
    return _save(directory, transformers.DebertaV2ForMaskedLM(config), tokenizer)


def build_modernbert(directory: Path, wordpiece) -> Path:
    """Three layers, global attention in layers 0 and 2 and ±2-token local attention in layer 1 (ModernBERT has
    global every third layer and a 128-token window: the same code, small enough to see the window bite)."""
    tokenizer = modernbert_tokenizer()
    config = transformers.ModernBertConfig(
        **_common(tokenizer), hidden_size=32, num_hidden_layers=3, num_attention_heads=4, intermediate_size=48,
        max_position_embeddings=SIZES["positions"], global_attn_every_n_layers=2, local_attention=4,
        cls_token_id=tokenizer.cls_token_id, sep_token_id=tokenizer.sep_token_id,
        bos_token_id=tokenizer.cls_token_id, eos_token_id=tokenizer.sep_token_id, initializer_range=0.2,
    )
    return _save(directory, transformers.ModernBertForMaskedLM(config), tokenizer)


def build_gpt2(directory: Path, wordpiece) -> Path:
    tokenizer = gpt2_tokenizer()
    config = transformers.GPT2Config(
        vocab_size=len(tokenizer), n_embd=32, n_layer=2, n_head=4, n_positions=SIZES["positions"], initializer_range=0.2,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
    )
    return _save(directory, transformers.GPT2LMHeadModel(config), tokenizer)


BUILDERS: dict[str, Callable[[Path, object], Path]] = {
    "roberta": build_roberta,
    "albert": build_albert,
    "electra": build_electra,
    "deberta": build_deberta,
    "modernbert": build_modernbert,
    "gpt2": build_gpt2,
}
"""Family -> a function writing its tiny checkpoint (BERT and DistilBERT are conftest.py's own fixtures)."""
