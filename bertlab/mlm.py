"""Masked-LM views beyond the [MASK]s in the text: mask-each-token and the logit lens."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from . import hooks, masks
from .analysis import Analysis, Prediction, _top_predictions, analyze
from .errors import InputError, NoMaskError
from .loading import LoadedModel
from .tokens import Encoding

MASK_EACH_BATCH = 64
"""Rows per forward pass in mask-each-token: large enough to amortize, small enough for 512 tokens on a laptop."""


def fill_masks(loaded: LoadedModel, text: str, pair: str | None = None, top_k: int = 5) -> Analysis:
    """An analysis that must answer the [MASK]s: refuses, in plain words, when it cannot."""
    loaded.require("mlm")
    result = analyze(loaded, text, pair, top_k=top_k)
    if not result.mask_positions:
        raise NoMaskError("The text has no [MASK] token: type [MASK] where BERT should guess a word.")
    return result


@dataclass
class MaskEach:
    """Pseudo-log-likelihood (Salazar et al., 2020): each token scored when it alone is masked."""

    kind: str
    positions: list[int]
    log_probs: np.ndarray
    """log P(original token | the rest), one per scored position."""
    ranks: np.ndarray
    """1 = the original token was the model's top guess."""
    top: list[Prediction]
    """The model's top guess at each scored position."""

    @property
    def pseudo_log_likelihood(self) -> float:
        return float(self.log_probs.sum())

    @property
    def pseudo_perplexity(self) -> float:
        return float(np.exp(-self.log_probs.mean())) if len(self.log_probs) else float("nan")


def mask_each_token(
    loaded: LoadedModel, encoding: Encoding, kind: str = "bidirectional", batch_size: int = MASK_EACH_BATCH
) -> MaskEach:
    """Mask every non-special token in turn, in batches of rows (one masked token per row)."""
    loaded.require("mlm")
    positions = [t.position for t in encoding.tokens if not t.special]
    if not positions:
        raise InputError("There is no ordinary token to mask: the text holds only special tokens.")
    ids = encoding.input_ids[0]
    length = len(ids)
    log_probs, ranks, top = [], [], []
    for start in range(0, len(positions), batch_size):
        chunk = torch.tensor(positions[start : start + batch_size])
        rows = ids.repeat(len(chunk), 1)
        rows[torch.arange(len(chunk)), chunk] = loaded.tokenizer.mask_token_id
        out, _ = hooks.run(
            loaded,
            rows,
            encoding.token_type_ids.expand(len(chunk), -1),
            masks.additive(masks.allowed(kind, length), loaded.dtype).expand(len(chunk), -1, -1, -1),
        )
        hidden = out.last_hidden_state[torch.arange(len(chunk)), chunk.to(loaded.device)]
        with torch.inference_mode():
            logp = torch.log_softmax(loaded.mlm_head(hidden).float(), -1)
        truth = ids[chunk].to(logp.device)
        true_logp = logp.gather(1, truth[:, None])[:, 0]
        log_probs.append(true_logp.cpu())
        ranks.append(((logp > true_logp[:, None]).sum(-1) + 1).cpu())
        best = logp.argmax(-1).cpu().tolist()
        top += [Prediction(loaded.tokenizer.convert_ids_to_tokens(i), i, float(logp[r, i].exp())) for r, i in enumerate(best)]
    return MaskEach(
        kind=kind,
        positions=positions,
        log_probs=torch.cat(log_probs).numpy(),
        ranks=torch.cat(ranks).numpy(),
        top=top,
    )


def logit_lens(loaded: LoadedModel, analysis: Analysis, position: int, kind: str = "bidirectional", top_k: int = 5) -> list[list[Prediction]]:
    """The MLM head read off every layer's hidden state at one position: when does the answer appear?"""
    loaded.require("mlm")
    if not 0 <= position < len(analysis.tokens):
        raise InputError(f"Position {position} is outside the sentence (0..{len(analysis.tokens) - 1}).")
    hidden = analysis.runs[kind].hidden_tensor[:, position].to(loaded.device, loaded.dtype)
    return _top_predictions(loaded, hidden[None], top_k)[0]


@dataclass
class Guess:
    """Where a learner's guess for a [MASK] ranks among all the model's predictions."""

    text: str
    token: str
    rank: int
    prob: float
    pieces: int
    """How many WordPieces the guess is; only the first is scored when it is more than one."""


def rank_guess(loaded: LoadedModel, analysis: Analysis, position: int, guess: str, kind: str = "bidirectional") -> Guess:
    """Score a typed guess against the MLM head's full distribution at `position` (predict, then reveal)."""
    loaded.require("mlm")
    # a guess is a word: as the piece that starts a word after a space (RoBERTa's 'Ġdog', SentencePiece's '▁dog')
    pieces = loaded.tokenizer.tokenize((" " if loaded.info.pieces == "Ġ" else "") + guess.strip())
    if not pieces:
        raise InputError("Type a word as your guess.")
    token_id = loaded.tokenizer.convert_tokens_to_ids(pieces[0])
    hidden = analysis.runs[kind].hidden_tensor[-1, position].to(loaded.device, loaded.dtype)
    with torch.inference_mode():
        probs = torch.softmax(loaded.mlm_head(hidden[None]).float()[0], -1)
    prob = float(probs[token_id])
    rank = int((probs > probs[token_id]).sum()) + 1
    return Guess(text=guess.strip(), token=pieces[0], rank=rank, prob=prob, pieces=len(pieces))
