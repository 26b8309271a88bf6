"""Six measures of token influence (bertlab.influence), each against a reference built here from the model's own
modules, on every family: norm-based from the value and output projections called head by head, value zeroing
from a plain torch hook on the value projection, one token and one layer per run, occlusion from one run per
token; and the `bertlab influence` contract."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from bertlab import analyze, experiments, hooks, masks
from bertlab.families import project
from bertlab.influence import METHODS, influence, normalized, ranks, spearman
from bertlab.tokens import encode

from conftest import FAMILIES

TEXT = "i went to the bank to [MASK] money."
DECODER_TEXT = "i went to the bank to get money."
TOLERANCE = 1e-5


def setting(loaded) -> tuple:
    """The text and position each family explains: the [MASK], or (a decoder, which has none) the fifth token."""
    if loaded.tokenizer.mask_token_id is None:
        encoding = encode(loaded, DECODER_TEXT)
        return encoding, 4
    encoding = encode(loaded, TEXT)
    return encoding, encoding.mask_positions[0]


@pytest.fixture(scope="module")
def runs(family_models) -> dict:
    """Family -> (encoding, position, Influence), computed once."""
    out = {}
    for family, loaded in family_models.items():
        encoding, position = setting(loaded)
        out[family] = (encoding, position, influence(loaded, encoding, position))
    return out


def plain_run(loaded, encoding, capture=()):
    n = len(encoding)
    return hooks.run(loaded, encoding.input_ids, encoding.token_type_ids,
                     masks.stacked((loaded.info.mask_as_trained,), n, loaded.dtype), capture=capture, internals=True)


def cosine_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(1 - torch.nn.functional.cosine_similarity(a.double(), b.double(), dim=-1))


@pytest.mark.parametrize("family", FAMILIES)
def test_norm_based_equals_the_value_and_output_projections_head_by_head(family, family_models, runs):
    """‖Σ_h α^h_{P,j} (x_j W_V^h + b_V^h) W_O^h‖ with the layer's own value projection (after its norm, pre-norm)
    and its own output projection called on each head's slot alone, less its bias: at every layer."""
    loaded = family_models[family]
    encoding, position, result = runs[family]
    info = loaded.info
    d_head = info.hidden_size // info.heads
    out, cache = plain_run(loaded, encoding, [f"layer.{layer}.in" for layer in range(info.layers)])
    with torch.no_grad():
        for layer in range(info.layers):
            x = cache[f"layer.{layer}.in"][0]
            output = loaded.layers[layer].get_submodule(loaded.adapter.points["attn.out"].path)
            bias = output(torch.zeros(info.heads * d_head))
            values = [project(loaded, layer, x, head)[2] for head in range(info.heads)]
            reference = []
            for j in range(len(encoding)):
                total = torch.zeros(info.hidden_size)
                for head in range(info.heads):
                    slot = torch.zeros(info.heads * d_head)
                    slot[head * d_head:(head + 1) * d_head] = out.attentions[layer][0, head, position, j] * values[head][j]
                    total += output(slot) - bias
                reference.append(float(total.norm()))
            np.testing.assert_allclose(result.layers["norm"][layer], normalized(reference), atol=TOLERANCE)
            if layer == info.layers - 1:
                np.testing.assert_allclose(result.raw["norm"], reference, rtol=TOLERANCE, atol=TOLERANCE)


def zeroed_value(loaded, layer: int, token: int):
    """A plain torch forward hook on layer `layer`'s value projection (its value third, for a fused q/k/v) that
    zeroes one token's value vectors in every head; a module shared by every layer (ALBERT) only on its call for
    this layer."""
    spec = loaded.adapter.points["attn.v"]
    block = loaded.layers[layer]
    module = block.get_submodule(spec.path)
    wanted = sum(1 for earlier in loaded.layers[:layer] if earlier is block)
    calls = [0]

    def hook(_module, _args, output):
        calls[0] += 1
        if calls[0] - 1 != wanted:
            return None
        output = output.clone()
        width = output.shape[-1] // 3 if spec.chunk is not None else output.shape[-1]
        start = width * (spec.chunk or 0)
        output[:, token, start:start + width] = 0
        return output

    return module.register_forward_hook(hook)


@pytest.mark.parametrize("family", FAMILIES)
def test_value_zeroing_equals_one_run_per_token_and_layer(family, family_models, runs):
    """For every layer l and token j, a separate run with only token j's values zeroed in layer l: 1 − cosine of
    layer l's output at P to the unmodified run's."""
    loaded = family_models[family]
    encoding, position, result = runs[family]
    clean, _ = plain_run(loaded, encoding)
    for layer in range(loaded.info.layers):
        reference = []
        for j in range(len(encoding)):
            handle = zeroed_value(loaded, layer, j)
            try:
                zeroed, _ = plain_run(loaded, encoding)
            finally:
                handle.remove()
            reference.append(cosine_distance(zeroed.hidden_states[layer + 1][0, position], clean.hidden_states[layer + 1][0, position]))
        np.testing.assert_allclose(result.layers["value_zeroing"][layer], normalized(reference), atol=TOLERANCE)
    np.testing.assert_allclose(result.raw["value_zeroing"], reference, atol=TOLERANCE)


@pytest.mark.parametrize("family", FAMILIES)
def test_occlusion_equals_one_run_per_occluded_token(family, family_models, runs):
    loaded = family_models[family]
    encoding, position, result = runs[family]
    clean, _ = plain_run(loaded, encoding)
    replacement = loaded.tokenizer.mask_token_id
    if replacement is None:
        assert "single space" in result.replacement
        replacement = loaded.tokenizer.convert_tokens_to_ids("Ġ")
    target = None if result.target is None else loaded.tokenizer.convert_tokens_to_ids(result.target)

    def read(out) -> torch.Tensor:
        hidden = out.last_hidden_state[0, position]
        return hidden if target is None else torch.log_softmax(loaded.mlm_head(hidden).float(), -1)[target]

    reference = []
    for token in encoding.tokens:
        if token.special:  # specials are kept: nothing replaced, nothing changes
            reference.append(0.0)
            continue
        ids = encoding.input_ids.clone()
        ids[0, token.position] = replacement
        out, _ = plain_run(loaded, dataclasses.replace(encoding, input_ids=ids))
        with torch.no_grad():
            before, after = read(clean), read(out)
        reference.append(float(before - after) if target is not None else cosine_distance(after, before))
    np.testing.assert_allclose(result.raw["occlusion"], reference, atol=TOLERANCE)
    assert (loaded.mlm_head is None) == (result.target is None)


@pytest.mark.parametrize("family", FAMILIES)
def test_attention_rollout_and_integrated_gradients_are_bertlabs_own(family, family_models, runs):
    """attention and rollout as the analysis computes them; integrated gradients as experiments.attribute does
    (with an MLM head), else integrated gradients of P's last hidden state: complete, and blind to what a causal
    mask hides."""
    loaded = family_models[family]
    encoding, position, result = runs[family]
    run = analyze(loaded, encoding.text, mask_types=(loaded.info.mask_as_trained,)).runs[loaded.info.mask_as_trained]
    np.testing.assert_allclose(result.raw["attention"], run.attentions[-1, :, position].mean(0), atol=TOLERANCE)
    np.testing.assert_allclose(result.raw["rollout"], run.rollout[-1, position], atol=TOLERANCE)
    if loaded.mlm_head is not None:
        attribution = experiments.attribute(loaded, encoding, position)
        assert attribution.target == result.target
        np.testing.assert_allclose(result.raw["integrated_gradients"], attribution.scores, atol=TOLERANCE)
    else:
        c = result.completeness
        assert abs(c["sum"] - c["expected"]) <= 0.05 * abs(c["expected"]) + 1e-4, c
    if loaded.info.mask_as_trained == "causal":
        for method in METHODS:
            assert not result.methods[method][position + 1:].any(), method
    for method in METHODS:
        values = result.methods[method]
        assert (values >= 0).all() and values.sum() == pytest.approx(1.0), method


def test_spearman_by_hand():
    assert spearman(np.array([1, 2, 3, 4.0]), np.array([1, 3, 2, 4.0])) == pytest.approx(0.8)
    assert spearman(np.array([1, 2, 3.0]), np.array([3, 2, 1.0])) == pytest.approx(-1)
    np.testing.assert_allclose(ranks(np.array([0.2, 0.1, 0.2, 0.5])), [1.5, 0, 1.5, 3])  # ties share their mean rank
    # with ties: Pearson of the average ranks
    a, b = np.array([1, 1, 2, 3.0]), np.array([1, 2, 3, 4.0])
    ra, rb = np.array([0.5, 0.5, 2, 3]), np.array([0, 1, 2, 3.0])
    assert spearman(a, b) == pytest.approx(np.corrcoef(ra, rb)[0, 1])
    assert spearman(np.ones(4), b) is None and spearman(a[:2], b[:2]) is None


def test_spearman_matches_scipy_when_it_is_there():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    for _ in range(5):
        a, b = rng.integers(0, 5, 12).astype(float), rng.normal(size=12)
        assert spearman(a, b) == pytest.approx(stats.spearmanr(a, b).statistic)


def test_spearman_matrix_and_the_sentence_are_measured(runs):
    _, position, result = runs["bert"]
    compared = result.compared
    assert compared and all(not result.special[p] for p in compared)
    for a in METHODS:
        assert result.spearman[a][a] == pytest.approx(1.0)
        for b in METHODS:
            assert result.spearman[a][b] == pytest.approx(spearman(result.methods[a][compared], result.methods[b][compared]))
            assert result.spearman[a][b] == pytest.approx(result.spearman[b][a])
    pairs = [(result.spearman[a][b], a, b) for i, a in enumerate(METHODS) for b in METHODS[i + 1:]]
    low = min(pairs)
    sentence = result.to_dict()["disagreement"]
    assert f"ρ = {low[0]:+.2f}" in sentence and f"{len(compared)} ordinary tokens" in sentence


def test_bad_position_is_a_message(tiny_bert):
    from bertlab import InputError

    encoding = encode(tiny_bert, "the cat sat.")
    with pytest.raises(InputError, match="outside the input"):
        influence(tiny_bert, encoding, 40)
    with pytest.raises(InputError, match="--position"):
        influence(tiny_bert, encoding)


@pytest.mark.parametrize("family", ["bert", "gpt2"])
def test_cli_influence_contract(family, family_dirs, capsys):
    from bertlab.cli import main

    text, position = (TEXT, 7) if family == "bert" else (DECODER_TEXT, 3)
    assert main(["influence", text, "--position", str(position), "--model", str(family_dirs[family]), "--device", "cpu",
                 "--steps", "8", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {"position", "token", "target", "tokens", "methods", "spearman"} <= set(data)
    assert data["position"] == position and data["token"] == data["tokens"][position]
    assert set(data["methods"]) == set(METHODS) == set(data["spearman"])
    for method, values in data["methods"].items():
        assert len(values) == len(data["tokens"]) and sum(values) == pytest.approx(1, abs=1e-4), method
        assert set(data["spearman"][method]) == set(METHODS)
    assert (data["target"] is None) == (family == "gpt2")
    if family == "bert":
        assert data["token"] == "[MASK]" and isinstance(data["target"], str)
    assert main(["influence", text, "--position", "99", "--model", str(family_dirs[family]), "--device", "cpu", "--json"]) == 2
    assert "outside the input" in capsys.readouterr().err


def test_progress_through_every_pass_and_stop_between_them_in_chunks(tiny_bert, monkeypatch):
    from bertlab import influence as engine
    from bertlab.atlas import Stopped

    encoding = encode(tiny_bert, TEXT)
    whole = influence(tiny_bert, encoding, 7, steps=4)
    monkeypatch.setattr(engine.experiments, "ROW_BUDGET", 4 * len(encoding) ** 2 * 3)  # 3 rows a pass: several passes
    seen = []
    result = influence(tiny_bert, encoding, 7, steps=4, progress=lambda done, total: seen.append((done, total)))
    total = seen[0][1]
    assert seen == [(i, total) for i in range(total + 1)] and total > 4
    with pytest.raises(Stopped) as stopped:
        influence(tiny_bert, encoding, 7, steps=4, should_stop=lambda: len(seen) > total + 3,
                  progress=lambda done, total: seen.append((done, total)))
    assert stopped.value.done == 2 and stopped.value.total == total
    for method in METHODS:  # in chunks of 3 rows, each with its own unmodified row: the same numbers
        np.testing.assert_allclose(result.raw[method], whole.raw[method], atol=1e-6, err_msg=method)
