"""BERT beside GPT: a decoder read through its own adapter, its next-token guesses, and the word-by-word
comparison of filling a blank with guessing what comes next."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import transformers

import bertlab
from bertlab import compare, corpus, mlm

TEXT = "The bank was robbed yesterday by the river."


def test_next_token_probability_of_what_really_follows(family_models, family_dirs):
    gpt = family_models["gpt2"]
    result = bertlab.analyze(gpt, TEXT)
    model = transformers.GPT2LMHeadModel.from_pretrained(family_dirs["gpt2"], attn_implementation="eager").eval()
    ids = result.encoding.input_ids
    with torch.no_grad():
        probs = torch.softmax(model(input_ids=ids).logits[0], -1)
    for entry in result.next_token[:-1]:
        following = int(ids[0, entry["position"] + 1])
        assert entry["actual"].id == following
        assert entry["actual"].prob == pytest.approx(float(probs[entry["position"], following]), abs=1e-6)
    assert result.next_token[-1]["actual"] is None
    assert result.to_dict()["next_token"][0].keys() == {"position", "token", "top", "actual"}


def test_the_natural_mask_of_a_decoder_is_causal(family_models):
    gpt = family_models["gpt2"].info
    assert (gpt.mask_as_trained, gpt.norm_placement, gpt.family) == ("causal", "pre", "gpt2")
    assert "a decoder: trained to predict the next token, causal by design" in gpt.description
    assert family_models["bert"].info.mask_as_trained == "bidirectional"


def test_fill_a_blank_beside_guess_the_next_word(family_models):
    bert, gpt = family_models["bert"], family_models["gpt2"]
    text = "the bank was robbed by the river ."
    a, d = bertlab.analyze(bert, text), bertlab.analyze(gpt, text)
    each = mlm.mask_each_token(bert, a.encoding)
    rows = compare.fill_and_next(a, each, d)
    assert [r.word for r in rows] == text.split()
    assert rows[0].decoder is None, "nothing comes before the first word"
    for row in rows:
        position = next(t.position for t in a.tokens if t.start == row.start and not t.special)
        j = each.positions.index(position)
        assert row.encoder.actual == pytest.approx(float(np.exp(each.log_probs[j])))
    second = rows[1]
    before = next(t.position for t in d.tokens if t.start <= second.start < t.end) - 1
    assert second.decoder.actual == pytest.approx(d.next_token[before]["actual"].prob)
    with pytest.raises(bertlab.InputError, match="decoder such as gpt2"):
        compare.fill_and_next(a, each, a)


def test_probe_by_order_splits_the_corpus_where_the_sense_is_settled(minilm):
    shipped = corpus.shipped_corpus()
    assert set(shipped.orders) == {"before", "after"} and shipped.orders.count("before") == len(shipped) // 2
    bank = shipped.select("bank")
    probe = corpus.probe(corpus.build_index(minilm, bank))
    data = probe.to_dict()
    assert set(data["by_order"]) == {"before", "after"}
    assert {s["order"] for s in data["sentences"]} == {"before", "after"} and len(data["sentences"]) == 16
    # the accuracy of each half is the mean over its sentences; both halves together are the whole curve
    for kind in ("bidirectional", "causal"):
        whole = np.array(data[kind])
        halves = (np.array(data["by_order"]["before"][kind]) + np.array(data["by_order"]["after"][kind])) / 2
        np.testing.assert_allclose(halves, whole, atol=1e-3)
    # a causal vector never sees the words after it: the after-half's causal probe cannot beat the before-half's
    assert max(data["by_order"]["after"]["causal"][1:]) < max(data["by_order"]["before"]["causal"][1:])


def test_an_order_column_is_checked(tmp_path):
    good = "word\tsense\tsentence\torder\nbank\triver\tthe river bank\tbefore\n"
    assert corpus.read_corpus(good.encode(), "c.tsv").orders == ("before",)
    with pytest.raises(bertlab.InputError, match="'before' or 'after'"):
        corpus.read_corpus(good.replace("before", "sideways").encode(), "c.tsv")


def test_analyze_and_probe_commands_on_a_decoder(family_dirs, capsys):
    from bertlab.cli import main

    assert main(["analyze", TEXT, "--model", str(family_dirs["gpt2"]), "--device", "cpu", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["model"]["mask_as_trained"] == "causal" and data["next_token"] and data["mlm"] == []
