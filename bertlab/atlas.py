"""An atlas of every head over a corpus (after Clark et al., 2019, "What does BERT look at?"): one sentence's
attention is an anecdote; averaged over every token of every sentence it characterises a head.

For each head: the attention mass a token puts on the family's [CLS]-like and [SEP]-like specials (<s>, </s> for
RoBERTa; a decoder's input has none), on punctuation, on the previous token, the next token and itself, and the
row's entropy (nats), averaged over every token of every sentence. Between two heads: the mean over tokens of the
Jensen-Shannon divergence of their attention rows (nats, at most ln 2), and from those distances a 2-D map of
every head (classical MDS). The corpus runs in padded batches of sentences of similar length, one forward pass
each under the chosen mask, with a progress callback and a way to stop between batches.
"""

from __future__ import annotations

import csv
import hashlib
import io
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from . import errors, hooks, masks
from .experiments import CHUNKS
from .corpus import MAX_CORPUS_BYTES, MAX_ROWS, MAX_SENTENCE_CHARS, read_corpus, shipped_corpus
from .errors import InputError
from .loading import LoadedModel
from .senses import tokenize

BEHAVIOURS = ("cls", "sep", "punct", "prev", "next", "self")
"""Where a head's attention goes, as mass (0-1) per token."""
STATS = BEHAVIOURS + ("entropy",)
NAMES = {"cls": "[CLS]-like", "sep": "[SEP]-like", "punct": "punctuation", "prev": "previous token", "next": "next token",
         "self": "itself", "entropy": "entropy (nats)", "broad": "broad"}
DOMINANT_MIN = 0.3
"""A head's dominant behaviour is the one its attention mass goes to most, when that is at least this much of
each row on average; below, the head is 'broad' (a uniform row over 15 tokens gives each behaviour ~0.07)."""
BATCH_TOKENS = 4096
"""Tokens per forward pass (rows x padded length): bounds the memory of a batch's attention weights and of the
pairwise divergences (BERT-base: 144 heads x 4096 x 64 keys x 4 bytes = 150 MB at 64 tokens)."""


class Stopped(errors.Stopped):
    """Long work (the atlas, influence) stopped between two batches because `should_stop()` said so; a
    `bertlab.Stopped` (what a progress callback may raise to the same end) that says how far it got."""

    def __init__(self, done: int, total: int, unit: str = "sentences") -> None:
        super().__init__(f"Stopped after {done:,} of {total:,} {unit}.")
        self.done, self.total, self.unit = done, total, unit


@dataclass
class Atlas:
    model: str
    corpus: str
    mask: str
    sentences: tuple[str, ...]
    layers: int
    heads: int
    stats: np.ndarray
    """(layer · head, STATS) averaged over every token of every sentence; heads layer-major."""
    per_sentence: np.ndarray
    """(sentence, layer · head, STATS) averaged over each sentence's tokens (for a head's typical sentences)."""
    tokens: int
    """Query tokens averaged over (padding excluded)."""
    distance: np.ndarray
    """(layer · head, layer · head): mean over tokens of the Jensen-Shannon divergence of two heads' rows (nats)."""
    coords: np.ndarray
    """(layer · head, 2): classical MDS of `distance`."""

    @property
    def nbytes(self) -> int:
        return self.stats.nbytes + self.per_sentence.nbytes + self.distance.nbytes + self.coords.nbytes

    def index(self, layer: int, head: int) -> int:
        if not (0 <= layer < self.layers and 0 <= head < self.heads):
            raise InputError(f"Head {layer}.{head} does not exist: layers 0-{self.layers - 1}, heads 0-{self.heads - 1}.")
        return layer * self.heads + head

    def stat(self, name: str) -> np.ndarray:
        """(layer, head) one statistic."""
        return self.stats[:, STATS.index(name)].reshape(self.layers, self.heads)

    def dominant(self) -> list[str]:
        """Per head (layer-major): the behaviour that takes most of its attention, or 'broad' (DOMINANT_MIN)."""
        masses = self.stats[:, : len(BEHAVIOURS)]
        best = masses.argmax(1)
        return [BEHAVIOURS[b] if masses[i, b] >= DOMINANT_MIN else "broad" for i, b in enumerate(best)]

    def typical(self, layer: int, head: int, k: int = 3) -> list[int]:
        """The sentences whose behaviour for this head is closest to its corpus average (L1 over the six masses)."""
        i = self.index(layer, head)
        gap = np.abs(self.per_sentence[:, i, : len(BEHAVIOURS)] - self.stats[i, : len(BEHAVIOURS)]).sum(-1)
        return [int(s) for s in np.argsort(gap, kind="stable")[:k]]

    def to_dict(self) -> dict:
        """The JSON contract of `bertlab atlas --json`."""
        dominant = self.dominant()
        return {
            "sentences": len(self.sentences),
            "mask": self.mask,
            "heads": [
                {"layer": i // self.heads, "head": i % self.heads,
                 **{name: round(float(self.stats[i, s]), 6) for s, name in enumerate(STATS)}, "dominant": dominant[i]}
                for i in range(self.layers * self.heads)
            ],
            "distance": np.round(self.distance.astype(np.float64), 6).tolist(),
            "map": np.round(self.coords.astype(np.float64), 6).tolist(),
            "model": self.model,
            "corpus": self.corpus,
            "tokens": self.tokens,
        }


# --- the corpus ------------------------------------------------------------------------------------


def read_sentences(data: bytes, name: str) -> tuple[list[str], str]:
    """Sentences from a corpus file's bytes, and a digest for caches: a .txt has one per line; a .tsv/.csv needs
    a header row with a `sentence` column (word and sense may be there too, and are not needed here)."""
    suffix = Path(name).suffix.lower()
    if suffix not in (".tsv", ".tab", ".csv"):
        corpus = read_corpus(data, name)  # .txt, and the message for any other suffix
        return list(corpus.sentences), corpus.digest
    if len(data) > MAX_CORPUS_BYTES:
        raise InputError(f"{name} is {len(data) / 1e6:.1f} MB; a corpus file may be at most {MAX_CORPUS_BYTES / 1e6:.0f} MB.")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise InputError(f"{name} is not UTF-8 text (byte {err.start + 1} cannot be read); save it as UTF-8.") from None
    delimiter = "," if suffix == ".csv" else "\t"
    reader = csv.reader(io.StringIO(text), delimiter=delimiter, quoting=csv.QUOTE_MINIMAL if delimiter == "," else csv.QUOTE_NONE)
    sentences = []
    try:
        header = next((r for r in reader if any(cell.strip() for cell in r)), None)
        if header is None:
            raise InputError(f"{name} is empty: a corpus needs at least one sentence.")
        columns = [cell.strip().lower() for cell in header]
        if "sentence" not in columns:
            raise InputError(f"{name} has no 'sentence' column: its header row is \"{delimiter.join(header)[:120]}\". "
                             "Give a header row with a column named sentence, or a .txt file with one sentence per line.")
        column = columns.index("sentence")
        for record in reader:
            if not any(cell.strip() for cell in record):
                continue
            sentence = record[column].strip() if len(record) > column else ""
            if not sentence:
                raise InputError(f"Line {reader.line_num}: the sentence is empty.")
            if len(sentence) > MAX_SENTENCE_CHARS:
                raise InputError(f"Line {reader.line_num}: the sentence has {len(sentence):,} characters; a corpus sentence "
                                 f"may have at most {MAX_SENTENCE_CHARS}.")
            sentences.append(sentence)
            if len(sentences) > MAX_ROWS:
                raise InputError(f"{name} has more than {MAX_ROWS:,} sentences; a corpus may have at most {MAX_ROWS:,}.")
    except csv.Error as err:
        raise InputError(f"{name}, line {reader.line_num}: {err}.") from None
    if not sentences:
        raise InputError(f"{name} has a header row but no sentences.")
    return sentences, hashlib.sha256(data).hexdigest()


def load_sentences(path: str | Path | None = None) -> tuple[list[str], str, str]:
    """(sentences, digest, name) of a corpus file, or of the shipped corpus (None)."""
    if path is None or str(path) == "":
        corpus = shipped_corpus()
        return list(corpus.sentences), corpus.digest, corpus.name
    path = Path(path).expanduser()
    if not path.is_file():
        raise InputError(f"No corpus file at {path}.")
    if path.stat().st_size > MAX_CORPUS_BYTES:
        raise InputError(f"{path.name} is {path.stat().st_size / 1e6:.1f} MB; a corpus file may be at most "
                         f"{MAX_CORPUS_BYTES / 1e6:.0f} MB.")
    sentences, digest = read_sentences(path.read_bytes(), path.name)
    return sentences, digest, path.name


def clean(sentences: Sequence[str]) -> list[str]:
    """Typed sentences, one per line: blank lines dropped, each checked like a corpus file's."""
    kept = [s.strip() for s in sentences if s.strip()]
    if not kept:
        raise InputError("Give at least one sentence (one per line).")
    for i, sentence in enumerate(kept, start=1):
        if len(sentence) > MAX_SENTENCE_CHARS:
            raise InputError(f"Sentence {i} has {len(sentence):,} characters; a corpus sentence may have at most {MAX_SENTENCE_CHARS}.")
    if len(kept) > MAX_ROWS:
        raise InputError(f"{len(kept):,} sentences; the atlas reads at most {MAX_ROWS:,}.")
    return kept


# --- the atlas -------------------------------------------------------------------------------------


def punctuation(text: str) -> bool:
    """A piece made only of punctuation characters (Unicode categories P*), once its marker is removed."""
    text = text.strip()
    text = text[2:] if text.startswith("##") and len(text) > 2 else text
    return bool(text) and all(unicodedata.category(c).startswith("P") for c in text)


def _specials(loaded: LoadedModel) -> tuple[set[int], set[int], set[int]]:
    """The ids of the family's [CLS]-like and [SEP]-like tokens, and every special id (never punctuation)."""
    tokenizer = loaded.tokenizer
    cls = {tokenizer.cls_token_id} - {None}
    sep = {tokenizer.sep_token_id} - {None}
    return cls, sep, set(tokenizer.all_special_ids)


def _kind_table(loaded: LoadedModel, ids: torch.Tensor, known: dict[int, bool]) -> torch.Tensor:
    """(row, token) bool: is each id punctuation (computed once per id, from the tokenizer's own string)."""
    tokenizer = loaded.tokenizer
    _, _, special = _specials(loaded)
    for i in torch.unique(ids).tolist():
        if i not in known:
            known[i] = i not in special and punctuation(tokenizer.convert_tokens_to_string([tokenizer.convert_ids_to_tokens(i)]))
    lookup = torch.tensor([known[i] for i in ids.flatten().tolist()], dtype=torch.bool)
    return lookup.view(ids.shape)


def token_stats(attn: torch.Tensor, cls: torch.Tensor, sep: torch.Tensor, punct: torch.Tensor) -> torch.Tensor:
    """(row, head, query, STATS) from attention (row, head, query, key) and (row, key) bool marks of the keys."""
    a = attn.float()
    masses = [
        (a * cls[:, None, None, :]).sum(-1),
        (a * sep[:, None, None, :]).sum(-1),
        (a * punct[:, None, None, :]).sum(-1),
        torch.nn.functional.pad(a.diagonal(offset=-1, dim1=-2, dim2=-1), (1, 0)),  # query q, key q - 1 (none for q = 0)
        torch.nn.functional.pad(a.diagonal(offset=1, dim1=-2, dim2=-1), (0, 1)),  # query q, key q + 1
        a.diagonal(dim1=-2, dim2=-1),
        torch.special.entr(a).sum(-1),
    ]
    return torch.stack(masses, dim=-1)


def js_sums(attn: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """(head, head): Σ over valid query tokens of the entropy of the mixture (p + q)/2 of two heads' rows, for
    attention (row, head, query, key). Since JS(p, q) = H((p + q)/2) − (H(p) + H(q))/2 and the mixture of a row
    with itself is the row, the diagonal holds Σ H(p) computed the same way, and `js_from_mixtures` turns the
    matrix into Σ JS. Only the mixture's entropy is computed per pair, over the upper triangle, in one buffer."""
    heads = attn.shape[1]
    rows = attn.float().transpose(0, 1)[:, valid]  # (head, valid query, key): padding's rows are not computed
    mixture = torch.empty_like(rows)
    sums = torch.zeros(heads, heads, dtype=torch.float64)
    for h in range(heads):
        part = mixture[: heads - h]
        torch.add(rows[h : h + 1], rows[h:], out=part).mul_(0.5)
        torch.special.entr(part, out=part)
        sums[h, h:] = part.sum((1, 2)).double()
    return torch.triu(sums) + torch.triu(sums, 1).T


def js_from_mixtures(mixtures: torch.Tensor) -> torch.Tensor:
    """Σ JS(a, b) = Σ H(mixture) − (Σ H(a) + Σ H(b)) / 2, from `js_sums`' matrix (its diagonal is Σ H(a)): exactly 0
    for a head with itself; rounding's tiny negatives elsewhere are clipped (JS is never negative)."""
    own = mixtures.diagonal()
    return (mixtures - (own[:, None] + own[None, :]) / 2).clamp_min(0)


def classical_mds(distance: np.ndarray, dims: int = 2) -> np.ndarray:
    """(n, dims) points whose Euclidean distances best match `distance` (Torgerson's classical MDS: double-centre
    the squared distances, keep the top eigenvectors). Written out because it is four lines of numpy and the
    alternatives (scikit-learn's SMACOF) add a dependency and a random start; axes get a fixed sign."""
    d = np.asarray(distance, dtype=np.float64)
    n = len(d)
    centre = np.eye(n) - 1.0 / n
    gram = -0.5 * centre @ (d**2) @ centre
    values, vectors = np.linalg.eigh(gram)
    top = np.argsort(values)[::-1][:dims]
    coords = vectors[:, top] * np.sqrt(np.clip(values[top], 0, None))
    if coords.shape[1] < dims:
        coords = np.pad(coords, ((0, 0), (0, dims - coords.shape[1])))
    for axis in range(dims):  # an eigenvector's sign is arbitrary: make each axis' largest coordinate positive
        if coords[np.abs(coords[:, axis]).argmax(), axis] < 0:
            coords[:, axis] *= -1
    return coords


def atlas(
    loaded: LoadedModel,
    sentences: Sequence[str],
    mask: str = "bidirectional",
    *,
    corpus: str = "",
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    batch_tokens: int = BATCH_TOKENS,
) -> Atlas:
    """Every head of `loaded` over `sentences` under `mask`, in padded batches of sentences of similar length (at
    least experiments.CHUNKS of them). `progress(done, total)` is called after each batch (and with 0 first) and
    may raise bertlab.Stopped to end the work there; `should_stop()` is asked before each batch, and a True answer
    raises `Stopped` (a page's Stop button ends the work within one batch)."""
    if mask not in masks.MASK_TYPES:
        raise InputError(f"Unknown mask '{mask}': choose one of {', '.join(masks.MASK_TYPES)}.")
    sentences = clean(sentences)
    total = len(sentences)
    layers, heads = loaded.info.layers, loaded.info.heads
    count = layers * heads
    cls_ids, sep_ids, _ = _specials(loaded)
    tokenizer = loaded.tokenizer
    lengths = [len(ids) for ids in tokenizer(sentences, truncation=True, max_length=loaded.max_length)["input_ids"]]
    order = sorted(range(total), key=lengths.__getitem__)
    per_sentence = np.zeros((total, count, len(STATS)), dtype=np.float32)
    stat_sums = torch.zeros(count, len(STATS), dtype=torch.float64)
    js = torch.zeros(count, count, dtype=torch.float64)
    tokens = 0
    known: dict[int, bool] = {}
    most = max(1, -(-total // CHUNKS))  # sentences a batch may hold, so there are CHUNKS batches or more
    done = 0
    if progress:
        progress(0, total)
    while done < total:
        if should_stop and should_stop():
            raise Stopped(done, total)
        end = done + 1  # sorted by length: the chunk's last sentence sets its padded length
        while end < total and end - done < most and (end + 1 - done) * lengths[order[end]] <= batch_tokens:
            end += 1
        chunk = order[done:end]
        batch = tokenize(loaded, [sentences[i] for i in chunk])
        ids, valid = batch["input_ids"], batch["attention_mask"].bool()
        length = ids.shape[1]
        out, _ = hooks.run(loaded, ids, batch.get("token_type_ids", torch.zeros_like(ids)),
                           masks.additive(masks.allowed(mask, length, valid), loaded.dtype), valid=valid, internals=True)
        attn = torch.cat([a.float().cpu() for a in out.attentions], dim=1)  # (row, layer · head, query, key), layer-major
        del out
        attn = attn * valid[:, None, :, None]  # padded queries' rows count for nothing
        cls = torch.isin(ids, torch.tensor(sorted(cls_ids), dtype=ids.dtype)) & valid if cls_ids else torch.zeros_like(valid)
        sep = torch.isin(ids, torch.tensor(sorted(sep_ids), dtype=ids.dtype)) & valid if sep_ids else torch.zeros_like(valid)
        punct = _kind_table(loaded, ids, known) & valid
        stats = token_stats(attn, cls, sep, punct)  # (row, head, query, STATS)
        sums = (stats * valid[:, None, :, None]).sum(2)  # (row, head, STATS)
        counts = valid.sum(1)  # (row,)
        per_sentence[chunk] = (sums / counts[:, None, None]).numpy()
        stat_sums += sums.sum(0).double()
        tokens += int(counts.sum())
        js += js_sums(attn, valid)
        done = end
        if progress:
            progress(done, total)
    distance = (js_from_mixtures(js) / tokens).numpy()
    return Atlas(
        model=loaded.info.name,
        corpus=corpus,
        mask=mask,
        sentences=tuple(sentences),
        layers=layers,
        heads=heads,
        stats=(stat_sums / tokens).float().numpy(),
        per_sentence=per_sentence,
        tokens=tokens,
        distance=distance,
        coords=classical_mds(distance),
    )


__all__ = ["Atlas", "BEHAVIOURS", "STATS", "Stopped", "atlas", "classical_mds", "js_sums", "load_sentences",
           "read_sentences", "token_stats"]
