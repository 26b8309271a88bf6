"""Tokenizers of each family's kind, trained offline with the `tokenizers` library: for random-weight models
(`random:gpt2`, `random:roberta-base`, ...) on a machine with no hub, and for the tests' tiny checkpoints.

A family's own vocabulary (GPT-2's 50,257 byte-level pieces, DeBERTa-v3's 128,000 SentencePiece pieces) comes
with its checkpoint from the hub; without it, a vocabulary of the same *kind* trained on a few hundred sentences
still shows how that kind of tokenizer cuts text (Ġ for a byte-level word start, ▁ for SentencePiece's), which is
what the tokenization page teaches. BERT's WordPiece needs no training: the packaged MiniLM ships BERT's own.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Sequence

from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

KINDS = ("roberta", "cls-bpe", "gpt2", "sentencepiece")
"""roberta: byte-level BPE framed <s> A </s></s> B </s>, mask <mask>; cls-bpe: byte-level BPE framed [CLS] A [SEP]
(ModernBERT); gpt2: byte-level BPE, no frame, no mask; sentencepiece: Unigram with Metaspace, lower-cased,
framed [CLS] A [SEP] (ALBERT, DeBERTa-v3)."""


def _byte_level(sentences: Sequence[str], size: int, specials: list[str]) -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(list(sentences), trainers.BpeTrainer(
        vocab_size=size, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    return tok


def _unigram(sentences: Sequence[str], size: int, specials: list[str], unk: str) -> Tokenizer:
    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.train_from_iterator(list(sentences), trainers.UnigramTrainer(vocab_size=size, special_tokens=specials, unk_token=unk,
                                                                     show_progress=False))
    return tok


def _frame(tok: Tokenizer, first: str, last: str) -> None:
    tok.post_processor = processors.TemplateProcessing(
        single=f"{first} $A {last}", pair=f"{first} $A {last} $B:1 {last}:1",
        special_tokens=[(first, tok.token_to_id(first)), (last, tok.token_to_id(last))],
    )


def train(kind: str, sentences: Sequence[str], size: int, max_length: int = 512) -> PreTrainedTokenizerFast:
    """A tokenizer of `kind` (KINDS) trained on `sentences` to at most `size` pieces."""
    if kind == "roberta":
        tok = _byte_level(sentences, size, ["<s>", "<pad>", "</s>", "<unk>"])
        tok.add_special_tokens([AddedToken("<mask>", lstrip=True, special=True)])
        tok.post_processor = processors.RobertaProcessing(("</s>", tok.token_to_id("</s>")), ("<s>", tok.token_to_id("<s>")))
        specials = dict(bos_token="<s>", eos_token="</s>", cls_token="<s>", sep_token="</s>", pad_token="<pad>",
                        unk_token="<unk>", mask_token="<mask>")
    elif kind == "cls-bpe":
        tok = _byte_level(sentences, size, ["[PAD]", "[UNK]", "[CLS]", "[SEP]"])
        tok.add_special_tokens([AddedToken("[MASK]", lstrip=True, special=True)])
        _frame(tok, "[CLS]", "[SEP]")
        specials = dict(cls_token="[CLS]", sep_token="[SEP]", pad_token="[PAD]", unk_token="[UNK]", mask_token="[MASK]")
    elif kind == "gpt2":
        tok = _byte_level(sentences, size, ["<|endoftext|>"])
        specials = dict(bos_token="<|endoftext|>", eos_token="<|endoftext|>", unk_token="<|endoftext|>")
    elif kind == "sentencepiece":
        tok = _unigram(sentences, size, ["[PAD]", "<unk>", "[CLS]", "[SEP]"], "<unk>")
        tok.add_special_tokens([AddedToken("[MASK]", lstrip=True, special=True)])  # "the [MASK]": ▁the, [MASK]
        _frame(tok, "[CLS]", "[SEP]")
        specials = dict(cls_token="[CLS]", sep_token="[SEP]", pad_token="[PAD]", unk_token="<unk>", mask_token="[MASK]")
    else:
        raise ValueError(f"Unknown tokenizer kind '{kind}': choose one of {', '.join(KINDS)}.")
    return PreTrainedTokenizerFast(tokenizer_object=tok, model_max_length=max_length, **specials)


CORPUS_SIZE = 3000
"""Pieces in a vocabulary trained on the shipped corpus (528 sentences): enough to keep common words whole."""


@lru_cache(maxsize=len(KINDS))
def corpus_tokenizer(kind: str) -> PreTrainedTokenizerFast:
    """A tokenizer of `kind` trained on bertlab's shipped sense corpus (once per process)."""
    from .corpus import shipped_corpus

    return train(kind, shipped_corpus().sentences, CORPUS_SIZE)
