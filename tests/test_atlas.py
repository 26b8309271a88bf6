"""The head atlas (bertlab.atlas) against a loop over sentences by hand, one unpadded sentence at a time, on every
family and under both masks; the Jensen-Shannon distance and the MDS map on known cases; stopping, progress,
corpus files; and the `bertlab atlas` contract."""

from __future__ import annotations

import json
import string

import numpy as np
import pytest
import torch

import bertlab
from bertlab import InputError, hooks, masks
from bertlab.atlas import (BEHAVIOURS, STATS, Stopped, atlas, classical_mds, js_from_mixtures, js_sums, punctuation,
                           read_sentences)

from conftest import FAMILIES

SENTENCES = [
    "I went to the bank to deposit money.", "The cat sat on the mat, and it was happy!",
    "She said: \"we went there (twice)\"; they did not?", "The river bank was very scenic.",
    "Tokenization is unbelievably fun.", "I have a pen, the pen is red!", "The bank was robbed yesterday.",
]


def punctuation_by_hand(piece: str) -> bool:
    for marker in ("Ġ", "▁", "##"):
        piece = piece.removeprefix(marker)
    return bool(piece) and all(c in string.punctuation for c in piece)


def by_hand(loaded, sentences, mask: str):
    """Every statistic and the mean JS divergence of every pair of heads, one unpadded sentence at a time, in
    float64, from the model's attention weights and the pieces' own strings."""
    tokenizer = loaded.tokenizer
    specials = set(tokenizer.all_special_ids)
    sums, js, tokens = 0, 0, 0
    for sentence in sentences:
        ids = tokenizer(sentence, return_tensors="pt")["input_ids"]
        n = ids.shape[1]
        out, _ = hooks.run(loaded, ids, None, masks.additive(masks.allowed(mask, n), loaded.dtype), internals=True)
        a = torch.cat(out.attentions, dim=1)[0].double().numpy()  # (head, query, key)
        row = ids[0].tolist()
        cls = np.array([i == tokenizer.cls_token_id for i in row], dtype=float)
        sep = np.array([i == tokenizer.sep_token_id for i in row], dtype=float)
        punct = np.array([i not in specials and punctuation_by_hand(p) for i, p in zip(row, tokenizer.convert_ids_to_tokens(row))], dtype=float)
        stats = np.zeros((a.shape[0], len(STATS)))
        for q in range(n):
            stats[:, 0] += a[:, q] @ cls
            stats[:, 1] += a[:, q] @ sep
            stats[:, 2] += a[:, q] @ punct
            stats[:, 3] += a[:, q, q - 1] if q > 0 else 0
            stats[:, 4] += a[:, q, q + 1] if q + 1 < n else 0
            stats[:, 5] += a[:, q, q]
            p = a[:, q]
            stats[:, 6] += -(p * np.log(np.where(p > 0, p, 1))).sum(-1)
            # JS(p, q) = KL(p ‖ m)/2 + KL(q ‖ m)/2, m the mixture
            left, right = p[:, None, :], p[None, :, :]
            m = (left + right) / 2
            kl = lambda x: (x * np.log(np.where(x > 0, x, 1) / np.where(x > 0, m, 1))).sum(-1)
            js = js + kl(left) / 2 + kl(right) / 2
        sums = sums + stats
        tokens += n
    return sums / tokens, js / tokens


@pytest.mark.parametrize("mask", masks.MASK_TYPES)
@pytest.mark.parametrize("family", FAMILIES)
def test_atlas_equals_a_loop_over_sentences(family, mask, family_models):
    loaded = family_models[family]
    steps = []
    # a small batch budget: several padded batches of sentences of different lengths
    result = atlas(loaded, SENTENCES, mask, batch_tokens=40, progress=lambda done, total: steps.append((done, total)))
    stats, js = by_hand(loaded, SENTENCES, mask)
    np.testing.assert_allclose(result.stats, stats, atol=1e-5)
    np.testing.assert_allclose(result.distance, js, atol=1e-5)
    assert result.tokens == sum(len(loaded.tokenizer(s)["input_ids"]) for s in SENTENCES)
    assert steps[0] == (0, len(SENTENCES)) and steps[-1] == (len(SENTENCES), len(SENTENCES)) and len(steps) > 2
    assert [d for d, _ in steps] == sorted(d for d, _ in steps)
    if mask == "causal":
        assert not result.stat("next").any(), "no token sees the next one under the causal mask"
    if loaded.tokenizer.cls_token_id is None:  # a decoder's input has no specials
        assert not result.stat("cls").any() and not result.stat("sep").any()
    # per sentence: the same loop, sentence by sentence
    for i in (0, 2):
        np.testing.assert_allclose(result.per_sentence[i], by_hand(loaded, SENTENCES[i:i + 1], mask)[0], atol=1e-5)


def test_a_head_is_at_distance_zero_from_itself_and_the_map_keeps_distances(family_models):
    result = atlas(family_models["bert"], SENTENCES)
    assert (result.distance.diagonal() == 0).all()
    np.testing.assert_allclose(result.distance, result.distance.T)
    assert (result.distance >= 0).all() and result.distance.max() <= np.log(2)
    assert result.coords.shape == (result.layers * result.heads, 2)


def test_jensen_shannon_on_known_rows():
    # (row, head, query, key): head 0 and head 1 identical, head 2 on the other key
    attn = torch.tensor([[[[1.0, 0.0]], [[1.0, 0.0]], [[0.0, 1.0]]]])
    js = js_from_mixtures(js_sums(attn, torch.ones(1, 1, dtype=torch.bool)))
    expected = np.array([[0, 0, np.log(2)], [0, 0, np.log(2)], [np.log(2), np.log(2), 0]])
    np.testing.assert_allclose(js.numpy(), expected, atol=1e-7)
    padded = js_from_mixtures(js_sums(attn, torch.zeros(1, 1, dtype=torch.bool)))
    assert not padded.any(), "a padded query counts for nothing"


def test_punctuation_is_read_from_the_pieces_own_characters():
    assert all(punctuation(p) for p in (".", " ,", "##!", "…", "--", "\"("))
    assert not any(punctuation(p) for p in ("dog", "", " ", "##s", "a.", "$"))


def test_classical_mds_recovers_points_in_a_plane():
    points = np.random.default_rng(0).normal(size=(9, 2))
    distance = np.linalg.norm(points[:, None] - points[None], axis=-1)
    coords = classical_mds(distance)
    np.testing.assert_allclose(np.linalg.norm(coords[:, None] - coords[None], axis=-1), distance, atol=1e-9)


def test_stop_between_batches_and_typical_sentences(family_models):
    loaded = family_models["bert"]
    seen = []
    with pytest.raises(Stopped) as stopped:
        atlas(loaded, SENTENCES, batch_tokens=40, progress=lambda done, total: seen.append(done), should_stop=lambda: len(seen) > 1)
    assert 0 < stopped.value.done < len(SENTENCES) and stopped.value.total == len(SENTENCES)
    assert seen[-1] == stopped.value.done, "stopped before the next batch started"
    assert isinstance(stopped.value, bertlab.Stopped)

    def impatient(done: int, total: int) -> None:  # the lead's pattern: a progress callback raises bertlab.Stopped
        if done >= 2:
            raise bertlab.Stopped("enough")

    with pytest.raises(bertlab.Stopped, match="enough"):
        atlas(loaded, SENTENCES, batch_tokens=40, progress=impatient)
    result = atlas(loaded, SENTENCES)
    layer, head = 1, 2
    i = result.index(layer, head)
    gaps = np.abs(result.per_sentence[:, i, :len(BEHAVIOURS)] - result.stats[i, :len(BEHAVIOURS)]).sum(-1)
    assert result.typical(layer, head, 3) == list(np.argsort(gaps, kind="stable")[:3])
    assert len(result.dominant()) == result.layers * result.heads
    with pytest.raises(InputError, match="does not exist"):
        result.typical(9, 0)


def test_corpus_files_with_a_sentence_column_or_one_per_line():
    sentences, digest = read_sentences(b"id\tsentence\n1\tThe cat sat.\n2\tA dog ran!\n", "mine.tsv")
    assert sentences == ["The cat sat.", "A dog ran!"] and len(digest) == 64
    assert read_sentences(b'sentence,other\n"Hello, world.",x\n', "mine.csv")[0] == ["Hello, world."]
    assert read_sentences(b"One.\n\nTwo.\n", "mine.txt")[0] == ["One.", "Two."]
    with pytest.raises(InputError, match="no 'sentence' column"):
        read_sentences(b"word\ttext\nbank\tThe bank.\n", "mine.tsv")
    with pytest.raises(InputError, match="Give at least one sentence"):
        atlas(None, ["", "  "])  # refused before the model is touched


def test_cli_atlas_contract(family_dirs, tmp_path, capsys):
    from bertlab.cli import main

    corpus = tmp_path / "sentences.txt"
    corpus.write_text("\n".join(SENTENCES))
    assert main(["atlas", str(corpus), "--mask", "causal", "--limit", "4", "--model", str(family_dirs["roberta"]),
                 "--device", "cpu", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {"sentences", "mask", "heads", "distance", "map"} <= set(data)
    assert data["sentences"] == 4 and data["mask"] == "causal"
    assert [(h["layer"], h["head"]) for h in data["heads"]] == [(l, h) for l in range(2) for h in range(4)]  # layer-major
    for head in data["heads"]:
        assert {"layer", "head", "cls", "sep", "punct", "prev", "next", "self", "entropy"} <= set(head)
        assert head["next"] == 0
    assert np.array(data["distance"]).shape == (8, 8) and np.array(data["map"]).shape == (8, 2)
    assert main(["atlas", str(tmp_path / "missing.txt"), "--model", str(family_dirs["roberta"]), "--json"]) == 2
    assert "No corpus file" in capsys.readouterr().err
