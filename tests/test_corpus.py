"""Word sense over a corpus: the shipped corpus, file checks, the index, neighbours, the sense probe, the CLI and the page."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

import bertlab
from bertlab import corpus as corpora
from bertlab import figures
from bertlab.cli import main

APP = str(Path(__file__).resolve().parent.parent / "app.py")


def corpus_of(rows: list[tuple[str, str | None]], name: str = "hand.tsv") -> corpora.Corpus:
    """A corpus from (word, sense) pairs; the sentences are only labels here."""
    n = len(rows)
    return corpora.Corpus(
        name, tuple(w for w, _ in rows), tuple(s for _, s in rows), tuple(f"{w} {i}" for i, (w, _) in enumerate(rows)),
        tuple(range(2, n + 2)), f"hand-{n}",
    )


# --- hand-worked: four 2-D vectors --------------------------------------------------------------------
#
#   v0 = (1, 0) A     cos(v0, v1) = 0.707   cos(v0, v2) = 0       cos(v0, v3) = -0.707
#   v1 = (3, 3) A     cos(v1, v2) = 0.707   cos(v1, v3) = 0
#   v2 = (0, 1) B     cos(v2, v3) = 0.707
#   v3 = (-2, 2) B
#
# Leave-one-out 1-NN by cosine: v0 -> v1 (A, right: 1); v1 -> v0 or v2, a tie (A, B: 1/2);
# v2 -> v1 or v3, a tie (A, B: 1/2); v3 -> v2 (B, right: 1). Accuracy 3/4. (By Euclidean distance v0's
# nearest would be v2, a wrong sense: the lengths must not matter.)
HAND = np.array([[1.0, 0.0], [3.0, 3.0], [0.0, 1.0], [-2.0, 2.0]])
HAND_LABELS = ["A", "A", "B", "B"]


def test_leave_one_out_credit_by_hand():
    np.testing.assert_allclose(corpora.loo_credit(HAND, HAND_LABELS), [1.0, 0.5, 0.5, 1.0])
    # identical vectors: every other occurrence is equally near, credit = share with the same label
    np.testing.assert_allclose(corpora.loo_credit(np.ones((4, 3)), HAND_LABELS), [1 / 3] * 4)
    # leading axes (mask, layer) are independent problems
    assert corpora.loo_credit(np.stack([HAND, np.ones((4, 2))]), HAND_LABELS).shape == (2, 4)


@pytest.fixture
def hand_index() -> corpora.CorpusIndex:
    """Word x: the four vectors above (bidirectional) and four identical ones (causal). Word y: three
    occurrences, senses P, P, Q. Word z: one occurrence (no leave-one-out possible)."""
    corpus = corpus_of([("x", s) for s in HAND_LABELS] + [("y", "P"), ("y", "P"), ("y", "Q"), ("z", "R")])
    bi = np.vstack([HAND, [[1, 0], [1, 0.1], [0, 1]], [[1, 1]]])
    causal = np.vstack([np.ones((4, 2)), [[1, 0], [0, 1], [1, 0.1]], [[1, 1]]])
    vectors = np.stack([bi, causal])[:, None]  # (mask, layer = 1, row, hidden)
    return corpora.CorpusIndex.from_vectors("hand", corpus, vectors)


def test_probe_by_hand(hand_index):
    probe = corpora.probe(hand_index)
    assert probe.count == 7 and set(probe.words) == {"x", "y"}  # z has a single occurrence
    x, y = probe.words["x"], probe.words["y"]
    assert x.accuracy["bidirectional"][0] == pytest.approx(0.75)
    assert x.accuracy["causal"][0] == pytest.approx(1 / 3)
    # y, bidirectional: P(1,0) -> P(1,0.1) right; P(1,0.1) -> P(1,0) right; Q(0,1) -> P(1,0.1) wrong
    assert y.accuracy["bidirectional"][0] == pytest.approx(2 / 3)
    # y, causal: P(1,0) -> Q(1,0.1) wrong; P(0,1) -> Q(1,0.1) wrong; Q(1,0.1) -> P(1,0) wrong
    assert y.accuracy["causal"][0] == pytest.approx(0.0)
    assert x.baseline == 0.5 and y.baseline == pytest.approx(2 / 3)
    assert probe.baseline == pytest.approx(4 / 7)
    assert probe.accuracy["bidirectional"][0] == pytest.approx((3 + 2) / 7)
    assert probe.accuracy["causal"][0] == pytest.approx((4 / 3) / 7)


def test_neighbors_by_hand(hand_index):
    query = {"bidirectional": np.array([[1.0, 0.2]]), "causal": np.array([[1.0, 0.2]])}
    near = corpora.neighbors(hand_index, "x", query, layer=0, mask="bidirectional", k=3)
    # cos((1, .2), v) for v0..v3: 0.981, 0.832, 0.196, -0.555
    assert [n.sentence for n in near.neighbors] == ["x 0", "x 1", "x 2"]
    np.testing.assert_allclose([n.cosine for n in near.neighbors], [1 / 1.04**0.5, 3.6 / (1.04 * 18) ** 0.5, 0.2 / 1.04**0.5], atol=1e-4)
    assert [n.sense for n in near.neighbors] == ["A", "A", "B"] and near.vote == "A"
    assert [n.word for n in near.neighbors] == ["x"] * 3  # only occurrences of the same word
    far = corpora.neighbors(hand_index, "X", {"bidirectional": np.array([[-1.0, 1.0]])}, layer=-1, k=4)
    assert [n.sentence for n in far.neighbors] == ["x 3", "x 2", "x 1", "x 0"]
    assert far.vote == "B"  # two A, two B: the nearest's sense wins the tie
    assert corpora.vote([None, None]) is None


def test_neighbors_refuse_what_does_not_exist(hand_index):
    query = {"bidirectional": np.zeros((1, 2))}
    with pytest.raises(bertlab.InputError, match="not a word of the corpus.*x, y, z"):
        corpora.neighbors(hand_index, "w", query, 0)
    with pytest.raises(bertlab.InputError, match="Layer 3 does not exist"):
        corpora.neighbors(hand_index, "x", query, 3)
    with pytest.raises(bertlab.InputError, match="Unknown mask"):
        corpora.neighbors(hand_index, "x", query, 0, "sideways")


# --- the shipped corpus and corpus files ----------------------------------------------------------


def test_shipped_corpus_is_what_the_issue_asks_for():
    corpus = corpora.shipped_corpus()
    assert corpus.labelled and not corpus.plain
    senses = Counter(zip(corpus.words, corpus.senses))
    per_word = Counter(w for w, _ in senses)
    assert len(per_word) >= 24 and min(per_word.values()) >= 2
    assert min(senses.values()) >= 8
    for word, sentence in zip(corpus.words, corpus.sentences):
        assert len(re.findall(rf"(?<!\w){re.escape(word)}(?!\w)", sentence)) == 1, sentence
        assert len(sentence.split()) <= 20, sentence
    assert len(set(corpus.sentences)) == len(corpus)


def test_corpus_files_parse(tmp_path):
    csv_file = b'\xef\xbb\xbfWord,Sense,Sentence,source\nbank,river,"The bank, muddy and steep, gave way.",me\n\nbank,finance,I paid at the Bank.,me\n'
    corpus = corpora.read_corpus(csv_file, "mine.csv")
    assert corpus.words == ("bank", "bank") and corpus.senses == ("river", "finance")
    assert corpus.sentences[0] == "The bank, muddy and steep, gave way." and corpus.lines == (2, 4)
    tsv = corpora.read_corpus(b'word\tsense\tsentence\nbat\tsport\t"Swing the bat," she said.\n', "q.tsv")
    assert tsv.sentences == ('"Swing the bat," she said.',)
    plain = corpora.read_corpus(b"the bank was shut\n\nno such word\nA BANK of fog\n", "notes.txt")
    assert plain.plain and not plain.labelled and len(plain) == 3
    bank = plain.select("bank")
    assert bank.sentences == ("the bank was shut", "A BANK of fog") and bank.lines == (1, 4) and bank.words == ("bank", "bank")
    assert bank.digest != plain.digest != corpora.read_corpus(b"the bank\n", "notes.txt").digest
    path = tmp_path / "c.tsv"
    path.write_bytes(b"word\tsense\tsentence\nbat\tanimal\tA bat flew by.\n")
    assert corpora.load_corpus(path).sentences == ("A bat flew by.",)
    assert corpora.load_corpus(None) is corpora.shipped_corpus()


BAD_FILES = [
    ("a.tsv", b"word\tmeaning\tsentence\nbank\triver\tthe bank\n", "no 'sense' column"),
    ("a.tsv", b"word,sense,sentence\nbank,river,the bank\n", "comma-separated: name the file .csv"),
    ("a.csv", b"word,sense,sentence\nbank,river,the bank\nbank,finance,the river\n", "Line 3: 'bank' does not occur as a whole word"),
    ("a.csv", b"word,sense,sentence\nbank,river,the banks\n", "Line 2: 'bank' does not occur"),
    ("a.csv", b"word,sense,sentence\nbank,river\n", "Line 2 has 2 field"),
    ("a.csv", b"word,sense,sentence\nbank,,the bank\n", "Line 2: the sense of 'bank' is empty"),
    ("a.csv", b"word,sense,sentence\n", "no sentences"),
    ("a.csv", b"", "empty"),
    ("a.txt", b"  \n\n", "empty"),
    ("a.csv", b"word,sense,sentence\nbank,river,the bank " + b"x" * 400 + b"\n", "at most 300"),
    ("a.csv", b"word,sense,sentence\n" + b"bank,river,the bank\n" * 5001, "at most 5,000"),
    ("a.csv", b"x" * 2_000_001, "at most 2 MB"),
    ("a.csv", b"word,sense,sentence\nbank,river,the bank \xff\n", "not UTF-8"),
    ("a.xlsx", b"PK\x03\x04", "use a .tsv or .csv"),
]


@pytest.mark.parametrize("name, data, message", BAD_FILES)
def test_bad_corpus_files_say_what_is_wrong(name, data, message):
    with pytest.raises(bertlab.InputError, match=re.escape(message)):
        corpora.read_corpus(data, name)


def test_plain_text_without_the_word_and_unlabelled_probe_are_refused(tiny_bert):
    plain = corpora.read_corpus(b"the river\nthe fish\n", "notes.txt")
    with pytest.raises(bertlab.InputError, match="'bank' occurs in none of the 2 lines of notes.txt"):
        plain.select("bank")
    with pytest.raises(bertlab.InputError, match="plain text"):
        corpora.build_index(tiny_bert, plain)
    index = corpora.build_index(tiny_bert, corpora.read_corpus(b"the bank\na bank\n", "b.txt").select("bank"))
    with pytest.raises(bertlab.InputError, match="no senses"):
        corpora.probe(index)
    assert corpora.neighbors(index, "bank", corpora.occurrence(tiny_bert, "my bank", "bank"), 0).vote is None


# --- the index on real weights --------------------------------------------------------------------


@pytest.fixture(scope="session")
def shipped_index(minilm) -> corpora.CorpusIndex:
    """The shipped corpus indexed once with the packaged MiniLM (a few seconds)."""
    return corpora.build_index(minilm, corpora.shipped_corpus())


def test_index_shape_and_storage(shipped_index):
    corpus = shipped_index.corpus
    assert shipped_index.vectors.shape == (2, 7, len(corpus), 384) and shipped_index.vectors.dtype == np.float16
    assert shipped_index.skipped == () and shipped_index.mask_types == bertlab.MASK_TYPES
    assert sorted(shipped_index.groups) == corpus.vocabulary
    assert shipped_index.nbytes < 8 * 2**20


def test_minilm_separates_senses_in_upper_layers_bidirectionally(shipped_index):
    probe = corpora.probe(shipped_index)
    bi, causal = probe.accuracy["bidirectional"], probe.accuracy["causal"]
    assert probe.count == len(shipped_index.corpus) and probe.baseline == pytest.approx(0.5)
    # layer 0 is the word's embedding plus its position: no context, so about what guessing scores
    assert abs(bi[0] - probe.baseline) < 0.1 and bi[0] == pytest.approx(causal[0])
    assert bi.max() > probe.baseline + 0.3 and probe.best_layer() > 0
    # half the sentences settle the sense only after the word, which the causal mask never sees
    assert causal.max() < bi.max() - 0.15
    assert len(probe.words) == 33 and all(len(w.accuracy["causal"]) == 7 for w in probe.words.values())


@pytest.mark.parametrize(
    "sentence, sense",
    [("I sat on the bank and watched the river flow.", "river"), ("The bank raised the interest on my loan.", "finance")],
)
def test_neighbours_vote_for_the_right_sense(minilm, shipped_index, sentence, sense):
    query = corpora.occurrence(minilm, sentence, "bank")
    near = corpora.neighbors(shipped_index, "bank", query, layer=5, mask="bidirectional", k=5)
    assert near.vote == sense
    cos = [n.cosine for n in near.neighbors]
    assert cos == sorted(cos, reverse=True) and len(cos) == 5


KIWI = ["The kiwi was ripe and sweet.", "A kiwi is a bird that cannot fly.", "She sliced a kiwi into the fruit salad."]


def test_multi_piece_word_is_pooled_as_on_the_word_sense_page(minilm):
    corpus = corpora.read_corpus(("word,sense,sentence\n" + "".join(f"kiwi,{s},{t}\n" for s, t in zip("fbf", KIWI))).encode(), "k.csv")
    index = corpora.build_index(minilm, corpus)
    assert index.pieces[0] == ("ki", "##wi")
    page = bertlab.senses(minilm, "kiwi", KIWI)
    for m, kind in enumerate(index.mask_types):
        stored, expected = index.vectors[m].astype(np.float32), page.vectors[kind]  # (layer + 1, row, hidden)
        cos = (stored * expected).sum(-1) / (np.linalg.norm(stored, axis=-1) * np.linalg.norm(expected, axis=-1))
        assert cos.min() > 0.99999
        np.testing.assert_allclose(np.linalg.norm(stored, axis=-1), np.linalg.norm(expected, axis=-1), rtol=1e-3)
    # and independently of the shared code: the mean of the two pieces' hidden states in a single analysis
    single = bertlab.analyze(minilm, KIWI[1])
    at = [t.position for t in single.tokens if t.text in ("ki", "##wi")]
    mean = single.bidirectional.hidden_states[:, at].mean(1)
    np.testing.assert_allclose(index.vectors[0, :, 1].astype(np.float32), mean, atol=5e-3, rtol=2e-3)


def test_projection_marks_the_query(minilm, shipped_index):
    query = corpora.occurrence(minilm, "I sat on the bank.", "bank")
    p = corpora.projection(shipped_index, "bank", 3, "causal", query, "I sat on the bank.")
    assert p.coords.shape == (17, 2) and len(p.senses) == 16 and p.query == "I sat on the bank."
    fig = figures.corpus_projection([p, corpora.projection(shipped_index, "bank", 3)])
    assert any(t.name == "your sentence" for t in fig.data)
    assert {t.name for t in fig.data} >= {"finance", "river"}
    curve = figures.probe_curve(corpora.probe(shipped_index), "bank")
    assert [t.name for t in curve.data] == ["bidirectional", "causal", "majority sense"] and len(curve.data[0].y) == 7


def test_index_batches_agree_with_one_batch(tiny_bert):
    """Rows of different lengths in several padded batches give the vectors one batch gives."""
    sentences = ["the bank.", "i went to the bank to deposit money.", "the river bank was very scenic yesterday.", "a bank"]
    corpus = corpora.read_corpus(("word,sense,sentence\n" + "".join(f"bank,s{i % 2},{s}\n" for i, s in enumerate(sentences))).encode(), "b.csv")
    small = corpora.build_index(tiny_bert, corpus, batch_tokens=8)  # one row per forward pass
    large = corpora.build_index(tiny_bert, corpus)
    np.testing.assert_allclose(small.vectors.astype(np.float32), large.vectors.astype(np.float32), atol=2e-3)
    steps = []
    corpora.build_index(tiny_bert, corpus, progress=lambda done, total: steps.append((done, total)), batch_tokens=8)
    assert steps[0] == (0, 4) and steps[-1] == (4, 4) and len(steps) == 5


# --- command line ---------------------------------------------------------------------------------

SMALL = "word\tsense\tsentence\nbank\tmoney\ti went to the bank to deposit money.\nbank\triver\tthe river bank was very scenic.\n" \
        "bank\tmoney\tthe bank was robbed yesterday.\ncat\tpet\tthe cat sat on the mat.\ncat\tpet\ta cat and a dog.\n"


def run_cli(capsys, *args: str) -> tuple[int, dict | str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, (json.loads(out) if "--json" in args and code == 0 else out), err


def test_probe_senses_json_keys(tiny_bert_dir, tmp_path, capsys):
    path = tmp_path / "small.tsv"
    path.write_text(SMALL)
    code, data, _ = run_cli(capsys, "probe-senses", str(path), "--model", str(tiny_bert_dir), "--device", "cpu", "--json")
    assert code == 0
    assert {"layers", "bidirectional", "causal", "baseline", "count", "words"} <= set(data)
    assert data["layers"] == [0, 1, 2] and data["count"] == 5 and isinstance(data["baseline"], float)
    for kind in ("bidirectional", "causal"):
        assert len(data[kind]) == 3 and all(isinstance(v, float) and 0 <= v <= 1 for v in data[kind])
    assert set(data["words"]) == {"bank", "cat"}
    for word in data["words"].values():
        assert len(word["bidirectional"]) == 3 and len(word["causal"]) == 3
    code, text, _ = run_cli(capsys, "probe-senses", str(path), "--model", str(tiny_bert_dir), "--device", "cpu")
    assert code == 0 and "bidirectional" in text and len(text.strip().splitlines()) == 2 + 3


def test_neighbors_json_keys(tiny_bert_dir, tmp_path, capsys):
    path = tmp_path / "small.tsv"
    path.write_text(SMALL)
    common = ("--model", str(tiny_bert_dir), "--device", "cpu")
    code, data, _ = run_cli(capsys, "neighbors", "we sat by the river bank.", "--target", "bank", "--corpus", str(path), "--k", "2",
                            "--layer", "1", "--mask", "causal", *common, "--json")
    assert code == 0
    assert data["layer"] == 1 and data["mask"] == "causal" and isinstance(data["vote"], str)
    assert len(data["neighbors"]) == 2
    for n in data["neighbors"]:
        assert set(n) == {"sentence", "word", "sense", "cosine"} and n["word"] == "bank" and isinstance(n["cosine"], float)
    assert data["neighbors"][0]["cosine"] >= data["neighbors"][1]["cosine"]
    plain = tmp_path / "plain.txt"
    plain.write_text("the bank was robbed.\nthe cat sat.\na bank\n")
    code, data, _ = run_cli(capsys, "neighbors", "the bank.", "--target", "bank", "--corpus", str(plain), *common, "--json")
    assert code == 0 and data["vote"] is None and data["layer"] == 2 and len(data["neighbors"]) == 2
    code, text, _ = run_cli(capsys, "neighbors", "the bank.", "--target", "bank", "--corpus", str(path), *common)
    assert code == 0 and "vote:" in text


@pytest.mark.parametrize(
    "args, message",
    [
        (["probe-senses", "no/such.tsv"], "No corpus file"),
        (["neighbors", "the bank", "--target", "bank", "--k", "0"], "--k must be at least 1"),
        (["neighbors", "the river", "--target", "bank"], "does not occur"),
        (["neighbors", "the bank", "--target", "bank", "--layer", "9"], "Layer 9 does not exist"),
        (["neighbors", "the zebra", "--target", "zebra"], "not a word of the corpus"),
    ],
)
def test_corpus_command_errors_are_one_line(tiny_bert_dir, capsys, args, message):
    code, out, err = run_cli(capsys, *args, "--model", str(tiny_bert_dir), "--device", "cpu")
    assert code == 2 and out == ""
    assert message in err and err.count("\n") == 1


# --- the page -------------------------------------------------------------------------------------


def test_word_sense_page_with_a_corpus_and_a_bad_upload(tiny_bert_dir):
    at = AppTest.from_file(APP, default_timeout=120)
    at.session_state["model"] = str(tiny_bert_dir)
    at.session_state["device"] = "cpu"
    at.run()
    at.switch_page("pages/word_sense.py").run()
    assert not at.exception and not at.error
    assert len(at.dataframe) == 2, "nearest corpus contexts under both masks"
    # similarity x2, PCA (a chart per mask), by-layer, then the corpus: projection (a chart per mask), probe for all
    # words, probe for 'bank'
    assert len(at.get("plotly_chart")) == 9
    at.file_uploader[0].set_value(("mine.csv", b"word,meaning,sentence\nbank,river,the bank\n", "text/csv")).run()
    assert not at.exception and not at.error
    assert any("no 'sense' column" in w.value and "shipped corpus" in w.value for w in at.warning)
    assert len(at.dataframe) == 2, "the page stays usable on the shipped corpus"
    at.file_uploader[0].set_value(("mine.tsv", SMALL.encode(), "text/tab-separated-values")).run()
    assert not at.exception and not at.error and not at.warning
    tables = [d.value for d in at.dataframe]
    assert all(set(t["sense"]) <= {"money", "river"} for t in tables)
    assert any("mine.tsv" in c.value for c in at.caption)


# --- the index on disk ----------------------------------------------------------------------------


def test_a_stored_index_equals_a_fresh_build_and_is_read_not_rebuilt(tiny_bert, tmp_path, monkeypatch):
    bank = corpora.shipped_corpus().select("bank")
    built = corpora.stored_index(tiny_bert, bank, directory=tmp_path)
    [path] = tmp_path.glob("index-*.npz")
    monkeypatch.setattr(corpora, "build_index", lambda *a, **k: pytest.fail("a valid stored index was rebuilt"))
    read = corpora.stored_index(tiny_bert, bank, directory=tmp_path)
    np.testing.assert_array_equal(read.vectors, built.vectors)
    np.testing.assert_array_equal(read.norms, built.norms)
    assert read.pieces == built.pieces and list(read.rows) == list(built.rows)
    assert corpora.probe(read).to_dict() == corpora.probe(built).to_dict()
    assert path.stat().st_size > 0 and not list(tmp_path.glob("*.tmp")), "written atomically: no temporary left"


@pytest.mark.parametrize("damage", ["corrupt", "cut short", "another model's"])
def test_a_stale_or_corrupt_index_file_is_rebuilt_never_trusted(tiny_bert, tiny_distilbert, tmp_path, damage):
    bank = corpora.shipped_corpus().select("bank")
    reference = corpora.build_index(tiny_bert, bank)
    path, key = corpora.index_path(tiny_bert, bank, directory=tmp_path)
    tmp_path.mkdir(exist_ok=True)
    if damage == "corrupt":
        path.write_bytes(b"PK\x03\x04 not an index at all")
    elif damage == "cut short":
        corpora.write_index(path, key, reference)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    else:  # a valid file, written for another model, under this model's name
        other = corpora.build_index(tiny_distilbert, bank)
        corpora.write_index(path, corpora.index_path(tiny_distilbert, bank, directory=tmp_path)[1], other)
    index = corpora.stored_index(tiny_bert, bank, directory=tmp_path)
    np.testing.assert_array_equal(index.vectors, reference.vectors)
    assert corpora.read_index(path, key, tiny_bert, bank, index.mask_types).vectors.shape == reference.vectors.shape, "rewritten"


def test_the_index_key_follows_model_corpus_and_masks(tiny_bert, tiny_distilbert, tmp_path):
    bank, bat = corpora.shipped_corpus().select("bank"), corpora.shipped_corpus().select("bat")
    paths = {corpora.index_path(m, c, k, tmp_path)[0] for m in (tiny_bert, tiny_distilbert) for c in (bank, bat)
             for k in (("bidirectional", "causal"), ("bidirectional",))}
    assert len(paths) == 8


def test_index_command_keeps_the_index(tiny_bert_dir, tmp_path, capsys, monkeypatch):
    import json

    from bertlab.cli import main

    monkeypatch.setenv("BERTLAB_CACHE_DIR", str(tmp_path))
    assert main(["index", "--model", str(tiny_bert_dir), "--device", "cpu", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["sentences"] == 528 and data["path"].startswith(str(tmp_path)) and (tmp_path / data["path"].split("/")[-1]).exists()
