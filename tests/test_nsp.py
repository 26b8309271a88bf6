"""Next sentence prediction for several second sentences in one padded batch."""

from __future__ import annotations

import numpy as np
import pytest

import bertlab
from bertlab import nsp


def test_one_batch_equals_each_pair_on_its_own(tiny_bert):
    first = "the cat sat on the mat."
    seconds = ["the dog sat.", "a pen is red and the cat is on the mat today.", "the."]  # different lengths: padding
    batched = nsp.next_sentence(tiny_bert, first, seconds)
    alone = [bertlab.analyze(tiny_bert, first, s).nsp for s in seconds]
    np.testing.assert_allclose(batched.is_next, alone, atol=1e-5)
    assert batched.seconds == tuple(seconds) and batched.truncated == (False,) * 3
    assert len(set(np.round(batched.is_next, 6))) == 3  # the rows differ: nothing was averaged away


def test_a_pair_longer_than_the_model_is_cut_and_says_so(tiny_bert):
    result = nsp.next_sentence(tiny_bert, "the cat sat. " * 20, ["the dog sat.", "a pen."])
    assert result.truncated == (True, True)
    assert np.all((0 <= result.is_next) & (result.is_next <= 1))


def test_no_nsp_head_is_a_clear_error(minilm):
    with pytest.raises(bertlab.MissingHeadError, match="no next-sentence-prediction head"):
        nsp.next_sentence(minilm, "a.", ["b."])


def test_bad_second_sentences_are_refused(tiny_bert):
    with pytest.raises(bertlab.InputError):
        nsp.next_sentence(tiny_bert, "the cat.", [])
    with pytest.raises(bertlab.InputError):
        nsp.next_sentence(tiny_bert, "the cat.", ["   "])


def test_the_random_sentence_is_reproducible_and_never_the_users():
    one = nsp.random_sentence(seed=3)
    assert one == nsp.random_sentence(seed=3)
    assert nsp.random_sentence(avoid=[one], seed=3) != one
    assert len({nsp.random_sentence(seed=s) for s in range(10)}) > 1


def test_the_nsp_command_scores_yours_and_a_random_one(tiny_bert_dir, tiny_bert, capsys):
    import json

    from bertlab.cli import main

    code = main(["nsp", "the cat sat.", "the dog sat.", "--random", "2", "--model", str(tiny_bert_dir), "--device", "cpu", "--json"])
    data = json.loads(capsys.readouterr().out)
    assert code == 0 and [p["random"] for p in data["pairs"]] == [False, True]
    other = nsp.random_sentence(avoid=["the cat sat.", "the dog sat."], seed=2)
    assert [p["second"] for p in data["pairs"]] == ["the dog sat.", other]
    expected = nsp.next_sentence(tiny_bert, "the cat sat.", ["the dog sat.", other]).is_next
    np.testing.assert_allclose([p["is_next"] for p in data["pairs"]], expected, atol=1e-5)
    assert main(["nsp", "the cat sat.", "--model", str(tiny_bert_dir), "--device", "cpu"]) == 2  # nothing to score
    assert "at least one second sentence" in capsys.readouterr().err


def test_a_notebook_shows_each_pair(tiny_bert):
    from bertlab import show

    result = nsp.next_sentence(tiny_bert, "the cat sat.", ["the dog sat.", "<b>a pen</b>"])
    views = show.nsp(result)
    assert len(views) == 2
    assert [c.figure.layout.title.text for c in views.parts] == ["the dog sat.", "&lt;b&gt;a pen&lt;/b&gt;"]
