"""Word sense at corpus scale: which sense of "bank" does BERT see here, and at which layer do senses separate?

A corpus is rows of (word, sense, sentence). The index holds the word's vector in every row at every
layer under both masks, pooled over its WordPieces by the word-sense page's own functions
(`senses.tokenize`, `token_span`, `pool`), so a corpus occurrence and a typed sentence are the same kind
of vector. From it: the nearest corpus contexts of a sentence (with a sense vote), a leave-one-out
1-nearest-neighbour sense probe per layer and mask, and a PCA picture of one word's occurrences.

Search is exact cosine by one matrix product. Neighbours are only ever sought among occurrences of the
same word (tens to a few thousand rows within MAX_ROWS), where that product takes microseconds; an
approximate index library (faiss) would add a dependency and an approximation for nothing at this size
(measured in README, "Word sense over a corpus").
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import os
import threading
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from . import masks
from .errors import InputError, TargetNotFoundError
from .loading import LoadedModel
from .senses import find_word, hidden_under_masks, lowercases, pca2, pool, token_span, tokenize
from .tokens import check_text

log = logging.getLogger(__name__)

COLUMNS = ("word", "sense", "sentence")
ORDERS = ("before", "after")
"""An optional fourth column, `order`: whether the words that settle the sense come before the target word or only
after it (the shipped corpus has both halves: what a causal mask can and cannot see)."""
MAX_CORPUS_BYTES = 2_000_000
MAX_ROWS = 5_000
MAX_SENTENCE_CHARS = 300
"""Limits on a corpus file: bytes, rows, and characters per sentence (300 characters of English are
~75 WordPieces, far from BERT's 512 positions). At the limit, BERT-base's index is 5,000 x 2 masks x 13
layers x 768 x 2 bytes = 200 MB and takes minutes on a CPU."""
BATCH_TOKENS = 2048
"""Tokens per forward pass while indexing (rows x masks x padded length): bounds the memory of a batch's
hidden states (BERT-base: 2048 x 13 layers x 768 x 4 bytes = 82 MB)."""
TIE = 1e-6
"""Cosines within TIE of the best count as a tie. Identical vectors are common under the causal mask (every
"The bank ..." sentence has the same left context); on the shipped corpus their cosines to a third vector
agree to < 1e-7 while the nearest distinct ones differ by > 1e-6, so TIE only absorbs rounding."""
SHIPPED = "senses.tsv"


# --- the corpus ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Corpus:
    """Rows of (word, sense, sentence). A plain-text corpus has no words or senses (None) until
    `select` names the word to look for."""

    name: str
    words: tuple[str | None, ...]
    senses: tuple[str | None, ...]
    sentences: tuple[str, ...]
    lines: tuple[int, ...]
    """The line of the file each row came from, for messages."""
    digest: str
    """A hash of the file's bytes (and the selected word): the cache key of an index, with the model."""
    orders: tuple[str | None, ...] = ()
    """Per row, 'before' or 'after' (ORDERS) where the file has an `order` column; empty otherwise."""

    def __len__(self) -> int:
        return len(self.sentences)

    @property
    def labelled(self) -> bool:
        return all(sense is not None for sense in self.senses)

    @property
    def plain(self) -> bool:
        return any(word is None for word in self.words)

    @property
    def vocabulary(self) -> list[str]:
        return sorted({w.casefold() for w in self.words if w is not None})

    def select(self, word: str) -> Corpus:
        """The rows of one word: in a plain-text corpus, the lines where it occurs as a whole word."""
        word = check_text(word, "The target word").strip()
        if self.plain:
            rows = [i for i, s in enumerate(self.sentences) if find_word(s, word, lowercase=False)]
            if not rows:
                raise TargetNotFoundError(f"'{word}' occurs in none of the {len(self):,} lines of {self.name}.")
        else:
            rows = [i for i, w in enumerate(self.words) if w.casefold() == word.casefold()]
            if not rows:
                raise TargetNotFoundError(_not_in(word, self))
        return Corpus(
            name=self.name,
            words=tuple(word if self.plain else self.words[i] for i in rows),
            senses=tuple(self.senses[i] for i in rows),
            orders=tuple(self.orders[i] for i in rows) if self.orders else (),
            sentences=tuple(self.sentences[i] for i in rows),
            lines=tuple(self.lines[i] for i in rows),
            digest=hashlib.sha256(f"{self.digest}\0{word.casefold()}".encode()).hexdigest(),
        )


def _not_in(word: str, corpus: Corpus) -> str:
    words = corpus.vocabulary
    shown = ", ".join(words[:40]) + (f", … ({len(words)} in all)" if len(words) > 40 else "")
    return f"'{word}' is not a word of the corpus {corpus.name}; its words are: {shown}."


@lru_cache(maxsize=1)
def shipped_corpus() -> Corpus:
    """The sense-labelled corpus written for bertlab (bertlab/data/senses.tsv; how it was made: data/README.md)."""
    return read_corpus(resources.files("bertlab").joinpath("data", SHIPPED).read_bytes(), SHIPPED)


def load_corpus(path: str | Path | None = None) -> Corpus:
    """A corpus file (.tsv/.csv with the columns word, sense, sentence, or .txt one sentence per line);
    None: the shipped corpus."""
    if path is None or str(path) == "":
        return shipped_corpus()
    path = Path(path).expanduser()
    if not path.is_file():
        raise InputError(f"No corpus file at {path}.")
    size = path.stat().st_size
    if size > MAX_CORPUS_BYTES:
        raise InputError(_too_large(path.name, size))
    return read_corpus(path.read_bytes(), path.name)


def _too_large(name: str, size: int) -> str:
    return f"{name} is {size / 1e6:.1f} MB; a corpus file may be at most {MAX_CORPUS_BYTES / 1e6:.0f} MB."


def read_corpus(data: bytes, name: str = "corpus.tsv") -> Corpus:
    """Parse and check a corpus file's bytes; the file name's suffix says the format."""
    if len(data) > MAX_CORPUS_BYTES:
        raise InputError(_too_large(name, len(data)))
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise InputError(f"{name} is not UTF-8 text (byte {err.start + 1} cannot be read); save it as UTF-8.") from None
    if not text.strip():
        raise InputError(f"{name} is empty: a corpus needs at least one sentence.")
    digest = hashlib.sha256(data).hexdigest()
    suffix = Path(name).suffix.lower()
    if suffix == ".txt":
        return _read_plain(text, name, digest)
    if suffix in (".tsv", ".tab"):
        return _read_table(text, name, digest, "\t")
    if suffix == ".csv":
        return _read_table(text, name, digest, ",")
    raise InputError(
        f"{name}: use a .tsv or .csv file with the columns {', '.join(COLUMNS)}, or a .txt file with one sentence per line."
    )


def _check_sentence(sentence: str, line: int) -> None:
    if not sentence:
        raise InputError(f"Line {line}: the sentence is empty.")
    if len(sentence) > MAX_SENTENCE_CHARS:
        raise InputError(f"Line {line}: the sentence has {len(sentence):,} characters; a corpus sentence may have at most {MAX_SENTENCE_CHARS}.")


def _too_many(name: str) -> InputError:
    return InputError(f"{name} has more than {MAX_ROWS:,} sentences; a corpus may have at most {MAX_ROWS:,}.")


def _read_plain(text: str, name: str, digest: str) -> Corpus:
    sentences, lines = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        sentence = line.strip()
        if not sentence:
            continue
        _check_sentence(sentence, number)
        sentences.append(sentence)
        lines.append(number)
        if len(sentences) > MAX_ROWS:
            raise _too_many(name)
    n = len(sentences)
    return Corpus(name, (None,) * n, (None,) * n, tuple(sentences), tuple(lines), digest)


def _read_table(text: str, name: str, digest: str, delimiter: str) -> Corpus:
    # TSV without quoting: a sentence may start with a quotation mark. CSV: standard quoting for commas.
    reader = csv.reader(io.StringIO(text), delimiter=delimiter, quoting=csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL)
    try:
        header = next(r for r in reader if any(cell.strip() for cell in r))
        columns = [cell.strip().lower() for cell in header]
        missing = [c for c in COLUMNS if c not in columns]
        if missing:
            other = "," if delimiter == "\t" else "\t"
            hint = ""
            if len(header) == 1 and other in header[0]:
                hint = f" (it looks {'comma' if other == ',' else 'tab'}-separated: name the file .{'csv' if other == ',' else 'tsv'})"
            raise InputError(
                f"{name} has no '{missing[0]}' column: its header row is \"{delimiter.join(header)[:120]}\"{hint}. "
                f"A corpus needs a header row with the columns {', '.join(COLUMNS)}."
            )
        where = {c: columns.index(c) for c in COLUMNS}
        order_column = columns.index("order") if "order" in columns else None
        words, senses, sentences, lines, orders = [], [], [], [], []
        for record in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in record):
                continue
            if len(record) <= max(where.values()):
                raise InputError(f"Line {line} has {len(record)} field(s); the header has {len(columns)} ({', '.join(columns)}).")
            word, sense, sentence = (record[where[c]].strip() for c in COLUMNS)
            if not word:
                raise InputError(f"Line {line}: the word is empty.")
            if not sense:
                raise InputError(f"Line {line}: the sense of '{word}' is empty.")
            _check_sentence(sentence, line)
            if find_word(sentence, word, lowercase=False) is None:
                raise InputError(f"Line {line}: '{word}' does not occur as a whole word in \"{sentence}\".")
            if order_column is not None:
                order = record[order_column].strip().lower() if len(record) > order_column else ""
                if order not in ORDERS:
                    raise InputError(f"Line {line}: the order is '{order}'; it is 'before' or 'after' (where the words that "
                                     "settle the sense are).")
                orders.append(order)
            words.append(word)
            senses.append(sense)
            sentences.append(sentence)
            lines.append(line)
            if len(sentences) > MAX_ROWS:
                raise _too_many(name)
    except csv.Error as err:
        raise InputError(f"{name}, line {reader.line_num}: {err}.") from None
    except StopIteration:
        raise InputError(f"{name} is empty: a corpus needs at least one sentence.") from None
    if not sentences:
        raise InputError(f"{name} has a header row but no sentences.")
    return Corpus(name, tuple(words), tuple(senses), tuple(sentences), tuple(lines), digest, tuple(orders))


# --- the index -----------------------------------------------------------------------------------


@dataclass
class CorpusIndex:
    """The target word's vector in every corpus row, at every layer (0 = embedding output), per mask."""

    model: str
    corpus: Corpus
    rows: np.ndarray
    """Corpus rows in the index (a row whose word lies beyond the model's positions is left out)."""
    pieces: list[tuple[str, ...]]
    vectors: np.ndarray
    """(mask, layer + 1, row, hidden), float16: half the bytes, and ~3 significant digits are plenty for cosines."""
    norms: np.ndarray
    """(mask, layer + 1, row), float32: the norms of the stored float16 vectors."""
    mask_types: tuple[str, ...]
    skipped: tuple[int, ...] = ()
    """Lines left out because truncation cut their word off."""
    groups: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    """Word (casefolded) -> positions of its occurrences in the index."""
    _probe: Probe | None = field(default=None, repr=False)

    @classmethod
    def from_vectors(
        cls,
        model: str,
        corpus: Corpus,
        vectors: np.ndarray,
        mask_types: tuple[str, ...] = masks.MASK_TYPES,
        rows: Sequence[int] | None = None,
        pieces: list[tuple[str, ...]] | None = None,
        norms: np.ndarray | None = None,
    ) -> CorpusIndex:
        """An index of (mask, layer + 1, row, hidden) vectors for `rows` of the corpus (default: all)."""
        rows = np.arange(len(corpus)) if rows is None else np.asarray(rows, dtype=np.int64)
        vectors = np.ascontiguousarray(vectors, dtype=np.float16)
        if norms is None:
            norms = np.linalg.norm(vectors.astype(np.float32), axis=-1)
        groups: dict[str, list[int]] = {}
        for position, row in enumerate(rows):
            groups.setdefault(corpus.words[row].casefold(), []).append(position)
        return cls(
            model=model,
            corpus=corpus,
            rows=rows,
            pieces=pieces if pieces is not None else [() for _ in rows],
            vectors=vectors,
            norms=np.ascontiguousarray(norms, dtype=np.float32),
            mask_types=tuple(mask_types),
            skipped=tuple(corpus.lines[i] for i in sorted(set(range(len(corpus))) - set(rows.tolist()))),
            groups={w: np.array(p, dtype=np.int64) for w, p in groups.items()},
        )

    @property
    def layers(self) -> int:
        return self.vectors.shape[1]

    @property
    def nbytes(self) -> int:
        return self.vectors.nbytes + self.norms.nbytes

    def __len__(self) -> int:
        return len(self.rows)

    def word(self, i: int) -> str:
        return self.corpus.words[self.rows[i]]

    def sense(self, i: int) -> str | None:
        return self.corpus.senses[self.rows[i]]

    def sentence(self, i: int) -> str:
        return self.corpus.sentences[self.rows[i]]

    def occurrences(self, word: str) -> np.ndarray:
        found = self.groups.get(word.strip().casefold())
        if found is None:
            raise TargetNotFoundError(_not_in(word.strip(), self.corpus))
        return found

    def layer(self, layer: int) -> int:
        """A layer number checked against the model (negative counts from the top, like Python)."""
        top = self.layers - 1
        if not -self.layers <= layer <= top:
            raise InputError(f"Layer {layer} does not exist: {self.model} has layers 0 (embedding output) to {top}.")
        return layer % self.layers

    def mask(self, kind: str) -> int:
        if kind not in self.mask_types:
            raise InputError(f"Unknown mask '{kind}': choose one of {', '.join(self.mask_types)}.")
        return self.mask_types.index(kind)


def embed(
    loaded: LoadedModel, sentences: Sequence[str], words: Sequence[str], mask_types: tuple[str, ...] = masks.MASK_TYPES
) -> tuple[torch.Tensor, list[tuple[str, ...] | None]]:
    """Each sentence's word at every layer under each mask, as one padded batch: (mask, layer + 1, row,
    hidden) float32, and its WordPieces (None, with a zero vector, where truncation cut the word off)."""
    tokenizer = loaded.tokenizer
    lowercase = lowercases(tokenizer)
    batch = tokenize(loaded, list(sentences))
    spans = []
    for i, (sentence, word) in enumerate(zip(sentences, words)):
        chars = find_word(sentence, word, lowercase)
        if chars is None:
            raise TargetNotFoundError(f"'{word}' does not occur as a whole word in \"{sentence}\".")
        spans.append(token_span(batch, i, chars))
    n = batch["input_ids"].shape[0]
    hidden = hidden_under_masks(loaded, batch, mask_types)  # (mask * row, layer + 1, token, hidden)
    kept = [i for i, span in enumerate(spans) if span is not None]
    result = torch.zeros(len(mask_types), hidden.shape[1], n, hidden.shape[-1])
    if kept:
        rows = [m * n + i for m in range(len(mask_types)) for i in kept]
        pooled = pool(hidden[rows], [spans[i] for _ in mask_types for i in kept]).cpu()
        result[:, :, kept] = pooled.view(len(mask_types), len(kept), hidden.shape[1], -1).transpose(1, 2)
    pieces = [
        None if span is None else tuple(tokenizer.convert_ids_to_tokens(batch["input_ids"][i, span[0] : span[1]].tolist()))
        for i, span in enumerate(spans)
    ]
    return result, pieces


def build_index(
    loaded: LoadedModel,
    corpus: Corpus,
    progress: Callable[[int, int], None] | None = None,
    mask_types: tuple[str, ...] = masks.MASK_TYPES,
    batch_tokens: int = BATCH_TOKENS,
) -> CorpusIndex:
    """Index every row of a labelled corpus (or a plain one after `select`), in batches of rows of similar
    length (little padding), each batch one forward pass under all masks; `progress(done, total)` after each."""
    if corpus.plain:
        raise InputError(f"{corpus.name} is plain text: name the word to look for (corpus.select(word)) before indexing.")
    n = len(corpus)
    lengths = [len(ids) for ids in loaded.tokenizer(list(corpus.sentences), truncation=True, max_length=loaded.max_length)["input_ids"]]
    order = sorted(range(n), key=lengths.__getitem__)
    vectors = norms = None
    pieces: list[tuple[str, ...] | None] = [None] * n
    done = 0
    if progress:
        progress(0, n)
    while done < n:
        end = done + 1  # rows sorted by length: the last row of a chunk sets its padded length
        while end < n and (end + 1 - done) * len(mask_types) * lengths[order[end]] <= batch_tokens:
            end += 1
        chunk = order[done:end]
        out, chunk_pieces = embed(loaded, [corpus.sentences[i] for i in chunk], [corpus.words[i] for i in chunk], mask_types)
        if vectors is None:
            vectors = np.zeros((out.shape[0], out.shape[1], n, out.shape[-1]), dtype=np.float16)
            norms = np.zeros(vectors.shape[:3], dtype=np.float32)
        half = out.half()
        vectors[:, :, chunk] = half.numpy()
        norms[:, :, chunk] = half.float().norm(dim=-1).numpy()
        for i, p in zip(chunk, chunk_pieces):
            pieces[i] = p
        done = end
        if progress:
            progress(done, n)
    kept = [i for i in range(n) if pieces[i] is not None]
    return CorpusIndex.from_vectors(
        loaded.info.name,
        corpus,
        vectors[:, :, kept] if len(kept) < n else vectors,
        mask_types,
        rows=kept,
        pieces=[pieces[i] for i in kept],
        norms=norms[:, :, kept] if len(kept) < n else norms,
    )


# --- the index on disk --------------------------------------------------------------------------
# An index is built once per (model identity, corpus content, mask set) and kept in a cache folder, so a second
# server start (or a second process) reads it instead of running the model over the corpus again. A file is only
# trusted when everything it was built from matches; anything else (stale, corrupt, cut short) is rebuilt.

INDEX_FORMAT = 1
"""Bumped whenever what an index file holds changes: older files are then rebuilt, never misread."""


def cache_dir() -> Path:
    """Where bertlab keeps what it can rebuild (corpus indexes): BERTLAB_CACHE_DIR, else the user's cache folder
    (~/.cache/bertlab). Safe to delete at any time."""
    configured = os.environ.get("BERTLAB_CACHE_DIR")
    if configured:
        return Path(configured).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "bertlab"


_identities: dict[int, str] = {}


def model_identity(loaded: LoadedModel) -> str:
    """A fingerprint of what an index depends on in the model: its family, dtype and tokenizer (the whole
    vocabulary and its rules), and every parameter's name, shape and first values: another checkpoint, a
    fine-tune, or random weights of the same shape never share a fingerprint. Computed once per loaded model."""
    key = id(loaded.encoder)
    if key not in _identities:
        digest = hashlib.sha256(f"{loaded.info.family}\0{loaded.info.dtype}\0".encode())
        backend = getattr(loaded.tokenizer, "backend_tokenizer", None)
        if backend is not None:  # its rules and vocabulary, without the padding and truncation a call last set
            rules = {k: v for k, v in json.loads(backend.to_str()).items() if k not in ("padding", "truncation")}
        else:
            rules = loaded.tokenizer.get_vocab()
        digest.update(json.dumps(rules, sort_keys=True).encode())
        with torch.inference_mode():
            for name, parameter in loaded.encoder.named_parameters():
                digest.update(f"{name}{tuple(parameter.shape)}".encode())
                digest.update(parameter.detach().flatten()[:64].float().cpu().numpy().tobytes())
        _identities[key] = digest.hexdigest()
    return _identities[key]


def index_path(loaded: LoadedModel, corpus: Corpus, mask_types: tuple[str, ...] = masks.MASK_TYPES,
               directory: Path | None = None) -> tuple[Path, str]:
    """The file an index of `corpus` by this model under `mask_types` lives in, and the key it must carry."""
    key = hashlib.sha256(f"{INDEX_FORMAT}\0{model_identity(loaded)}\0{corpus.digest}\0{','.join(mask_types)}".encode()).hexdigest()
    return (directory or cache_dir()) / f"index-{key[:40]}.npz", key


def read_index(path: Path, key: str, loaded: LoadedModel, corpus: Corpus, mask_types: tuple[str, ...]) -> CorpusIndex:
    """An index from disk, only if it is exactly the one asked for; raises ValueError (or an I/O error) otherwise."""
    with np.load(path, allow_pickle=False) as data:
        meta = json.loads(str(data["meta"]))
        if meta.get("key") != key or meta.get("format") != INDEX_FORMAT or tuple(meta.get("mask_types", ())) != tuple(mask_types):
            raise ValueError("it was built from something else")
        vectors, norms, rows = data["vectors"], data["norms"], data["rows"]
    pieces = [tuple(p) for p in meta["pieces"]]
    expected = (len(mask_types), loaded.info.layers + 1, len(rows), loaded.info.hidden_size)
    if vectors.shape != expected or norms.shape != expected[:3] or len(pieces) != len(rows):
        raise ValueError(f"its arrays are {vectors.shape}, not {expected}")
    if len(rows) and (rows.min() < 0 or rows.max() >= len(corpus)):
        raise ValueError("its rows are not the corpus's")
    return CorpusIndex.from_vectors(loaded.info.name, corpus, vectors, mask_types, rows=rows, pieces=pieces, norms=norms)


def write_index(path: Path, key: str, index: CorpusIndex) -> None:
    """Write atomically: a temporary file beside it, then a rename, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"key": key, "format": INDEX_FORMAT, "mask_types": list(index.mask_types), "model": index.model,
            "corpus": index.corpus.name, "pieces": [list(p) for p in index.pieces]}
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(temporary, "wb") as handle:
            np.savez(handle, vectors=index.vectors, norms=index.norms, rows=index.rows, meta=np.array(json.dumps(meta)))
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def stored_index(
    loaded: LoadedModel,
    corpus: Corpus,
    progress: Callable[[int, int], None] | None = None,
    mask_types: tuple[str, ...] = masks.MASK_TYPES,
    directory: Path | None = None,
) -> CorpusIndex:
    """The index from the cache folder when a valid one is there; else built (with `progress`) and stored. A
    folder that cannot be written only costs the next process a rebuild."""
    path, key = index_path(loaded, corpus, mask_types, directory)
    if path.exists():
        try:
            index = read_index(path, key, loaded, corpus, mask_types)
            log.info("corpus index of %s by %s read from %s", corpus.name, loaded.info.name, path)
            return index
        except Exception as err:  # numpy, zipfile and json each raise their own: none of it is trusted
            log.warning("rebuilding the corpus index %s: %s", path, err)
    index = build_index(loaded, corpus, progress=progress, mask_types=mask_types)
    try:
        write_index(path, key, index)
    except OSError as err:
        log.warning("could not keep the corpus index in %s: %s", path.parent, err)
    return index


def occurrence(loaded: LoadedModel, sentence: str, word: str, mask_types: tuple[str, ...] = masks.MASK_TYPES) -> dict[str, np.ndarray]:
    """The word's vector in one sentence at every layer, per mask (layer + 1, hidden): what to search with."""
    sentence = check_text(sentence, "The sentence").strip()
    word = check_text(word, "The target word").strip()
    if find_word(sentence, word, lowercase=False) is None:
        raise TargetNotFoundError(f"'{word}' does not occur as a whole word in \"{sentence}\".")
    vectors, pieces = embed(loaded, [sentence], [word], mask_types)
    if pieces[0] is None:
        raise TargetNotFoundError(f"'{word}' was cut off by truncation at {loaded.max_length} tokens.")
    return {kind: vectors[m, :, 0].numpy() for m, kind in enumerate(mask_types)}


# --- neighbours ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Neighbor:
    sentence: str
    word: str
    sense: str | None
    cosine: float
    line: int

    def to_dict(self) -> dict:
        return {"sentence": self.sentence, "word": self.word, "sense": self.sense, "cosine": round(self.cosine, 6)}


@dataclass
class Neighbors:
    target: str
    layer: int
    mask: str
    neighbors: list[Neighbor]
    vote: str | None
    """The most common sense among the neighbours (a tie goes to the sense met first, nearest first);
    None for an unlabelled corpus."""

    def to_dict(self) -> dict:
        """The JSON contract of `python -m bertlab neighbors --json`."""
        return {
            "target": self.target,
            "layer": self.layer,
            "mask": self.mask,
            "neighbors": [n.to_dict() for n in self.neighbors],
            "vote": self.vote,
        }


def cosines(vectors: np.ndarray, norms: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Cosine of each row of `vectors` (row, hidden) with `query`: one matrix product."""
    query = np.asarray(query, dtype=np.float32)
    return (vectors.astype(np.float32) @ query) / np.maximum(norms * np.linalg.norm(query), 1e-12)


def vote(senses: Sequence[str | None]) -> str | None:
    """The most common sense, nearest first on a tie; None when there is none."""
    counts = Counter(s for s in senses if s is not None)
    if not counts:
        return None
    best = max(counts.values())
    return next(s for s in senses if s is not None and counts[s] == best)


def neighbors(index: CorpusIndex, word: str, query: dict[str, np.ndarray], layer: int, mask: str = "bidirectional", k: int = 5) -> Neighbors:
    """The k corpus occurrences of the same word nearest to `query` (from `occurrence`) by cosine, at one
    layer and mask."""
    if k < 1:
        raise InputError("k must be at least 1.")
    layer, m = index.layer(layer), index.mask(mask)
    found = index.occurrences(word)
    sims = cosines(index.vectors[m, layer, found], index.norms[m, layer, found], query[mask][layer])
    order = np.argsort(-sims, kind="stable")[:k]
    near = [
        Neighbor(index.sentence(found[j]), index.word(found[j]), index.sense(found[j]), float(sims[j]), index.corpus.lines[index.rows[found[j]]])
        for j in order
    ]
    return Neighbors(word.strip(), layer, mask, near, vote([n.sense for n in near]))


# --- the sense probe -----------------------------------------------------------------------------


def loo_credit(vectors: np.ndarray, labels: Sequence) -> np.ndarray:
    """Leave-one-out 1-nearest-neighbour by cosine. For each occurrence (axis -2 of `vectors`, shaped
    (..., n, hidden)), the share of its nearest *other* occurrences that carry its label: 1 or 0, or a
    fraction when several are equally near (the expected score of breaking the tie at random).
    Returns (..., n)."""
    v = np.asarray(vectors, dtype=np.float32)
    unit = v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)
    sim = unit @ np.swapaxes(unit, -1, -2)
    n = sim.shape[-1]
    if n < 2:
        raise InputError("Leave-one-out needs at least two occurrences.")
    self_pair = np.eye(n, dtype=bool)
    sim = np.where(self_pair, -np.inf, sim)
    nearest = sim >= sim.max(-1, keepdims=True) - TIE
    labels = np.asarray(labels, dtype=object)
    same = (labels[:, None] == labels[None, :]) & ~self_pair
    return (nearest & same).sum(-1) / nearest.sum(-1)


@dataclass
class WordProbe:
    accuracy: dict[str, np.ndarray]
    """Mask type -> (layer + 1,) leave-one-out 1-NN sense accuracy."""
    baseline: float
    """The share of the word's most common sense: what always guessing it scores."""
    count: int
    senses: dict[str, int]


@dataclass
class Probe:
    """At which layer, and under which mask, do a word's senses separate?"""

    model: str
    corpus: str
    accuracy: dict[str, np.ndarray]
    """Mask type -> (layer + 1,): over every occurrence of every word (with at least two occurrences)."""
    baseline: float
    count: int
    words: dict[str, WordProbe]
    by_order: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    """'before' / 'after' -> mask type -> (layer + 1,): the accuracy over the occurrences whose sense is settled
    by words before the target / only after it (a corpus with an `order` column)."""
    orders: list[dict] = field(default_factory=list)
    """Each occurrence probed: its line, word, sense and order."""

    @property
    def layers(self) -> int:
        return len(next(iter(self.accuracy.values())))

    def best_layer(self, mask: str = "bidirectional") -> int:
        return int(np.argmax(self.accuracy[mask]))

    def describe(self) -> str:
        """What this probe curve shows, in one sentence computed from it (a lesson's text must not claim what
        the model on screen does not do; random weights, say, separate nothing)."""
        parts = [f"at the embeddings the probe is right {self.accuracy[next(iter(self.accuracy))][0]:.0%} of the time, "
                 f"against {self.baseline:.0%} for always guessing the more common sense"]
        for kind, accuracy in self.accuracy.items():
            best = self.best_layer(kind)
            how = {"bidirectional": "bidirectionally", "causal": "causally"}.get(kind, f"under the {kind} mask")
            parts.append(f"{how} it is best after layer {best - 1} ({accuracy[best]:.0%})" if best
                         else f"{how} no layer beats the embeddings")
        return f"With {self.model}: " + "; ".join(parts) + "."

    def to_dict(self) -> dict:
        """The JSON contract of `python -m bertlab probe-senses --json`."""
        rounded = lambda a: [round(float(x), 4) for x in a]  # noqa: E731
        return {
            "model": self.model,
            "corpus": self.corpus,
            "layers": list(range(self.layers)),
            **{kind: rounded(acc) for kind, acc in self.accuracy.items()},
            "baseline": round(self.baseline, 4),
            "count": self.count,
            "words": {
                word: {**{kind: rounded(acc) for kind, acc in w.accuracy.items()}, "baseline": round(w.baseline, 4), "count": w.count}
                for word, w in self.words.items()
            },
            "by_order": {order: {kind: rounded(acc) for kind, acc in by_mask.items()} for order, by_mask in self.by_order.items()},
            "sentences": self.orders,
        }


def probe(index: CorpusIndex) -> Probe:
    """Per layer and mask, how often an occurrence's nearest other occurrence of the same word has its sense
    (computed once per index: a page reruns on every slider move)."""
    if index._probe is None:
        index._probe = _probe(index)
    return index._probe


def _probe(index: CorpusIndex) -> Probe:
    if not index.corpus.labelled:
        raise InputError(f"{index.corpus.name} has no senses: the sense probe needs a labelled corpus (word, sense, sentence).")
    words, total, credit_sum, majority = {}, 0, 0.0, 0
    ordered = bool(index.corpus.orders)
    order_credit: dict[str, list[np.ndarray]] = {order: [] for order in ORDERS} if ordered else {}
    orders = []
    for word, found in sorted(index.groups.items()):
        if len(found) < 2:
            continue
        labels = [index.sense(i) for i in found]
        credit = loo_credit(index.vectors[:, :, found], labels)  # (mask, layer + 1, n)
        if ordered:
            row_orders = [index.corpus.orders[index.rows[i]] for i in found]
            for order in ORDERS:
                order_credit[order].append(credit[:, :, [j for j, o in enumerate(row_orders) if o == order]])
            orders += [{"line": index.corpus.lines[index.rows[i]], "word": index.word(i), "sense": index.sense(i), "order": o,
                        "sentence": index.sentence(i)} for i, o in zip(found, row_orders)]
        counts = Counter(labels)
        words[word] = WordProbe(
            accuracy={kind: credit[m].mean(-1) for m, kind in enumerate(index.mask_types)},
            baseline=max(counts.values()) / len(found),
            count=len(found),
            senses=dict(counts),
        )
        credit_sum = credit_sum + credit.sum(-1)
        total += len(found)
        majority += max(counts.values())
    if not total:
        raise InputError(f"{index.corpus.name}: the probe needs a word with at least two sentences.")
    return Probe(
        model=index.model,
        corpus=index.corpus.name,
        accuracy={kind: credit_sum[m] / total for m, kind in enumerate(index.mask_types)},
        baseline=majority / total,
        count=total,
        words=words,
        by_order={order: {kind: np.concatenate(parts, axis=-1)[m].mean(-1) for m, kind in enumerate(index.mask_types)}
                  for order, parts in order_credit.items() if parts and sum(p.shape[-1] for p in parts)},
        orders=orders,
    )


# --- the projection ------------------------------------------------------------------------------


@dataclass
class Projection:
    word: str
    layer: int
    mask: str
    coords: np.ndarray
    """(point, 2) on the first two principal components; the query, when given, is the last point."""
    senses: list[str | None]
    sentences: list[str]
    query: str | None


def projection(index: CorpusIndex, word: str, layer: int, mask: str = "bidirectional", query: dict[str, np.ndarray] | None = None,
               query_sentence: str | None = None) -> Projection:
    """A word's occurrences at one layer and mask on two principal components (the word-sense page's PCA),
    with the user's sentence among them."""
    layer, m = index.layer(layer), index.mask(mask)
    found = index.occurrences(word)
    points = index.vectors[m, layer, found].astype(np.float32)
    if query is not None:
        points = np.vstack([points, np.asarray(query[mask][layer], dtype=np.float32)[None]])
    coords = pca2(torch.from_numpy(points)[None])[0].numpy()
    return Projection(
        word=word.strip(),
        layer=layer,
        mask=mask,
        coords=coords,
        senses=[index.sense(i) for i in found],
        sentences=[index.sentence(i) for i in found],
        query=query_sentence if query is not None else None,
    )
