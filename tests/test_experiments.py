"""Experiments: ablation, knockout, custom masks, head importance and attribution, each against a reference."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import bertlab
from bertlab import experiments, masks
from bertlab.cli import main
from bertlab.errors import InputError
from bertlab.tokens import encode

TEXT = "i went to the [MASK] to deposit money ."
PAIR = "the river bank was scenic ."


def test_ablating_nothing_reproduces_the_plain_analysis(tiny_bert):
    encoding = encode(tiny_bert, TEXT)
    effect = experiments.ablate(tiny_bert, encoding, [])
    plain = bertlab.analyze(tiny_bert, TEXT).predictions(5)["bidirectional"]
    [mask] = effect.mlm
    assert mask.before == mask.after and mask.change == 0.0
    assert [p.token for p in mask.before] == [p.token for p in plain]
    np.testing.assert_allclose([p.prob for p in mask.before], [p.prob for p in plain], rtol=0, atol=1e-6)
    np.testing.assert_allclose(effect.hidden_cosine, 1.0, atol=1e-6)


@pytest.mark.parametrize("which", ["tiny_bert", "tiny_distilbert"])
def test_ablating_a_head_changes_only_what_comes_after_its_layer(which, request):
    loaded = request.getfixturevalue(which)
    effect = experiments.ablate(loaded, encode(loaded, TEXT), [(1, 2)])
    np.testing.assert_allclose(effect.hidden_cosine[:2], 1.0, atol=1e-6)  # embeddings and layer 0's output
    assert (effect.hidden_cosine[2] < 1 - 1e-6).any()
    assert effect.mlm[0].change != 0.0


def test_mean_ablation_differs_from_zero_ablation(tiny_bert):
    encoding = encode(tiny_bert, TEXT)
    zero = experiments.ablate(tiny_bert, encoding, [(0, 1)], "zero")
    mean = experiments.ablate(tiny_bert, encoding, [(0, 1)], "mean")
    assert not np.allclose(zero.hidden_cosine, mean.hidden_cosine)
    assert zero.to_dict()["mode"] == "zero" and mean.to_dict()["heads"] == [[0, 1]]


def test_batched_head_importance_equals_a_loop_of_single_ablations(tiny_bert, monkeypatch):
    encoding = encode(tiny_bert, TEXT)
    importance = experiments.head_importance(tiny_bert, encoding, 5)
    assert importance.drop.shape == (2, 4)
    for layer in range(2):
        for head in range(4):
            single = experiments.ablate(tiny_bert, encoding, [(layer, head)]).mlm[0]
            assert single.before[0].token == importance.token
            assert abs(-single.change - importance.drop[layer, head]) < 1e-5
    monkeypatch.setattr(experiments, "ROW_BUDGET", 4 * 10 * 10 * 3)  # three rows a pass: chunks give the same answer
    np.testing.assert_allclose(experiments.head_importance(tiny_bert, encoding, 5).drop, importance.drop, atol=1e-5)


def test_a_knocked_out_edge_gets_exactly_zero_weight_in_the_layers_asked(tiny_bert):
    encoding = encode(tiny_bert, TEXT)
    effect = experiments.knockout(tiny_bert, encoding, [(5, 7), (5, 8)], layers=[1], attentions=True)
    before, after = effect.attentions.astype(np.float32)
    assert (after[1, :, 5, 7] == 0).all() and (after[1, :, 5, 8] == 0).all()
    assert (before[1, :, 5, 7] > 0).all()
    np.testing.assert_allclose(after.sum(-1), 1.0, atol=2e-3)  # float16 weights
    np.testing.assert_array_equal(after[0], before[0])  # layer 0 was not asked, and comes before
    assert effect.to_dict()["edges"] == [[5, 7], [5, 8]]
    with pytest.raises(InputError, match="outside the input"):
        experiments.knockout(tiny_bert, encoding, [(0, 99)])


def test_mask_presets():
    length, segments = 7, torch.tensor([[0, 0, 0, 0, 1, 1, 1]])
    prefix = masks.preset("prefix-lm", length, segments=segments)
    assert prefix[:4, :4].all() and not prefix[:4, 4:].any()  # A sees all of A, nothing of B
    assert prefix[4:, :4].all() and (prefix[4:, 4:] == torch.ones(3, 3, dtype=torch.bool).tril()).all()  # B causal
    window = masks.preset("window", length, window=1)
    assert window[3].tolist() == [False, False, True, True, True, False, False]
    blind = masks.preset("blind", length, token=2)
    assert not blind[:, 2].any() and blind.sum() == length * (length - 1)
    assert (masks.preset("causal", length) == masks.allowed("causal", length)).all()
    with pytest.raises(ValueError, match="Unknown mask"):
        masks.preset("sideways", length)


def test_a_custom_mask_is_what_the_softmax_sees(tiny_bert):
    encoding = encode(tiny_bert, TEXT, PAIR)
    allowed = experiments.allowed_or_raise(tiny_bert, encoding, "prefix-lm")
    effect = experiments.with_mask(tiny_bert, encoding, allowed, "prefix-lm", attentions=True)
    after = effect.attentions[1].astype(np.float32)
    assert (after[..., ~allowed.numpy()] == 0).all()
    causal = experiments.with_mask(tiny_bert, encoding, masks.allowed("causal", len(encoding)), "causal")
    result = bertlab.analyze(tiny_bert, TEXT, PAIR)
    [m] = causal.mlm
    assert [p.token for p in m.after] == [p.token for p in result.causal.mlm[5]], "the custom-mask path equals the built-in causal run"
    with pytest.raises(InputError, match="at least one"):
        experiments.with_mask(tiny_bert, encoding, torch.zeros(len(encoding), len(encoding), dtype=torch.bool))


def test_integrated_gradients_are_complete(tiny_bert):
    encoding = encode(tiny_bert, TEXT)
    result = experiments.attribute(tiny_bert, encoding, 5, method="integrated_gradients", steps=64)
    check = result.completeness
    assert check["relative_error"] <= 0.05, check
    assert abs(check["sum"] - result.scores.sum()) < 1e-4
    # f(input) − f(baseline) from the full pretraining model itself, not from the function under test
    tok = tiny_bert.tokenizer
    target = tok.convert_tokens_to_ids(result.target)
    ids = encoding.input_ids
    baseline = ids.clone()
    keep = torch.isin(ids, torch.tensor([tok.cls_token_id, tok.sep_token_id, tok.mask_token_id]))
    baseline[~keep] = tok.pad_token_id
    with torch.inference_mode():
        logp = [torch.log_softmax(tiny_bert.model(input_ids=x, token_type_ids=encoding.token_type_ids).prediction_logits[0, 5], -1)[target]
                for x in (ids, baseline)]
    assert abs(check["expected"] - float(logp[0] - logp[1])) < 1e-4
    assert result.scores.shape == (len(encoding),) and result.target == bertlab.analyze(tiny_bert, TEXT).predictions(5)["bidirectional"][0].token


def test_grad_x_input_is_the_gradient_times_the_embedding(tiny_bert):
    encoding = encode(tiny_bert, TEXT)
    result = experiments.attribute(tiny_bert, encoding, 5, token="bank", method="grad_x_input")
    emb = tiny_bert.encoder.embeddings
    ids = encoding.input_ids
    words = emb.word_embeddings(ids).detach().requires_grad_(True)
    hidden = emb.LayerNorm(words + emb.position_embeddings.weight[: ids.shape[1]] + emb.token_type_embeddings.weight[encoding.token_type_ids])
    mask = masks.stacked(("bidirectional",), ids.shape[1], torch.float32)
    out = tiny_bert.encoder.encoder(hidden, attention_mask=mask).last_hidden_state
    bank = tiny_bert.tokenizer.convert_tokens_to_ids("bank")
    torch.log_softmax(tiny_bert.mlm_head(out[0, 5]), -1)[bank].backward()
    np.testing.assert_allclose(result.scores, (words.grad * words).sum(-1)[0].detach().numpy(), rtol=1e-4, atol=1e-6)
    assert result.target == "bank"


def test_nsp_attribution_and_missing_heads(tiny_bert, tiny_encoder):
    encoding = encode(tiny_bert, "i have a pen", "the pen is red")
    result = experiments.attribute(tiny_bert, encoding, None, steps=32)
    assert result.target == "IsNext" and result.completeness["relative_error"] <= 0.05
    with pytest.raises(bertlab.MissingHeadError):
        experiments.attribute(tiny_encoder, encode(tiny_encoder, TEXT), 5)


def run(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, (json.loads(out) if code == 0 and "--json" in args else out), err


def test_experiment_command_line_contracts(tiny_bert_dir, capsys):
    model = ("--model", str(tiny_bert_dir), "--device", "cpu", "--json")
    code, data, _ = run(capsys, "ablate", TEXT, "--heads", "1.2,0.0", "--mode", "mean", *model)
    assert code == 0 and set(data) >= {"heads", "mode", "mlm", "hidden_cosine"}
    assert data["heads"] == [[0, 0], [1, 2]] and data["mode"] == "mean"
    assert set(data["mlm"][0]) >= {"position", "before", "after"} and set(data["mlm"][0]["before"][0]) >= {"token", "prob"}
    assert len(data["hidden_cosine"]) == 3 and len(data["hidden_cosine"][0]) == len(data["tokens"])

    code, data, _ = run(capsys, "knockout", TEXT, "--edge", "5:7", "--edge", "5:8", "--layers", "1-1", *model)
    assert code == 0 and data["edges"] == [[5, 7], [5, 8]] and data["layers"] == [1] and "heads" not in data

    code, data, _ = run(capsys, "importance", TEXT, "--position", "5", *model)
    assert code == 0 and set(data) >= {"position", "token", "log_prob", "drop"}
    assert np.array(data["drop"]).shape == (2, 4)

    code, data, _ = run(capsys, "attribute", TEXT, "--position", "5", "--steps", "16", *model)
    assert code == 0 and set(data) >= {"tokens", "target", "method", "scores", "completeness"}
    assert data["method"] == "integrated_gradients" and set(data["completeness"]) >= {"sum", "expected", "relative_error"}
    code, data, _ = run(capsys, "attribute", TEXT, "--position", "5", "--method", "grad_x_input", *model)
    assert code == 0 and data["completeness"] is None and len(data["scores"]) == len(data["tokens"])

    code, _, err = run(capsys, "ablate", TEXT, "--heads", "7.0", *model)
    assert code == 2 and "does not exist" in err
    code, _, err = run(capsys, "ablate", TEXT, "--heads", "one", *model)
    assert code == 2 and "L.H" in err


@pytest.mark.parametrize("experiment, extra", [
    ("Ablate heads", {"heads": ["0.1", "1.2"]}), ("Knock out attention", {"ko_keys": [2, 3]}), ("Custom mask", {"preset_mask": "window"}),
    ("Head importance", {}), ("Attribution", {}),
])
def test_experiments_page(tiny_bert_dir, experiment, extra):
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(Path(__file__).resolve().parent.parent / "app.py"), default_timeout=120)
    for key, value in dict(model=str(tiny_bert_dir), device="cpu", text=TEXT, pair="", experiment=experiment, **extra).items():
        at.session_state[key] = value
    at.run()
    at.switch_page("pages/run_experiments.py")
    at.run()
    assert not at.exception and not at.error, [*at.exception, *at.error]
    specs = " ".join(c.proto.spec for c in at.get("plotly_chart"))
    expected = {"Ablate heads": "how far removing 2 head", "Knock out attention": "blocking 2 edge", "Custom mask": "the window mask",
                "Head importance": "drop in log P", "Attribution": "rests on"}[experiment]
    assert expected in specs
    if experiment == "Attribution":
        assert any("Completeness" in c.value for c in at.caption)


def test_word_sense_before_and_after_removing_heads(tiny_bert):
    sentences = ["i went to the bank to deposit money .", "the river bank was scenic ."]
    plain = bertlab.senses(tiny_bert, "bank", sentences)
    same = experiments.ablate_senses(tiny_bert, "bank", sentences, [])
    for kind in plain.similarity:
        np.testing.assert_array_equal(same.similarity[kind], plain.similarity[kind])
    after = experiments.ablate_senses(tiny_bert, "bank", sentences, [(1, 0), (1, 3)])
    for kind in plain.similarity:
        np.testing.assert_allclose(after.vectors[kind][:2], plain.vectors[kind][:2], rtol=0, atol=1e-6)  # before layer 1 acts
        assert not np.allclose(after.vectors[kind][2], plain.vectors[kind][2])


def test_word_sense_page_experiment(tiny_bert_dir):
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(Path(__file__).resolve().parent.parent / "app.py"), default_timeout=120)
    for key, value in dict(model=str(tiny_bert_dir), device="cpu", text="a cat .", pair="", target="bank",
                           sentences="i went to the bank .\nthe river bank was red .", sense_heads=["1.0"]).items():
        at.session_state[key] = value
    at.run()
    at.switch_page("pages/word_sense.py")
    at.run()
    assert not at.exception and not at.error, [*at.exception, *at.error]
    assert any("with 1 head(s) removed" in c.value for c in at.caption)


def test_long_experiments_report_progress_and_stop_within_one_chunk(tiny_bert):
    """Head importance and integrated gradients go in chunks (at least experiments.CHUNKS), report each, and a
    progress callback that raises Stopped ends the work before the next chunk's forward pass."""
    encoding = encode(tiny_bert, TEXT)
    seen = []
    experiments.head_importance(tiny_bert, encoding, 5, progress=lambda done, total: seen.append((done, total)))
    rows = 1 + tiny_bert.info.layers * tiny_bert.info.heads
    assert seen[0] == (0, rows) and seen[-1] == (rows, rows) and len(seen) >= experiments.CHUNKS
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)

    passes = []
    handle = tiny_bert.encoder.register_forward_hook(lambda *_: passes.append(1))

    def stop_after_first(done, total):
        if done > 0:
            raise bertlab.Stopped("stopped")

    try:
        with pytest.raises(bertlab.Stopped):
            experiments.head_importance(tiny_bert, encoding, 5, progress=stop_after_first)
        assert len(passes) == 1, "Stop ends the work within one chunk"
        steps, at = [], []  # integrated gradients: the passes done by each progress report
        passes.clear()
        experiments.attribute(tiny_bert, encoding, 5, steps=32, progress=lambda d, t: (steps.append((d, t)), at.append(len(passes))))
        assert steps[-1] == (32, 32) and len(steps) >= experiments.CHUNKS
        passes.clear()
        with pytest.raises(bertlab.Stopped):
            experiments.attribute(tiny_bert, encoding, 5, steps=32, progress=stop_after_first)
        assert len(passes) == at[0] and at[-1] - at[0] >= experiments.CHUNKS - 1, "stopped after the first chunk of steps"
    finally:
        handle.remove()
