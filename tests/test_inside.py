"""Inside a head and inside a layer: every recomputed number equals the model's own."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import bertlab
from bertlab import hooks, inside, masks
from bertlab.errors import InputError
from conftest import FAMILIES

TEXT = "i went to the bank to deposit money ."


@pytest.fixture(params=[*FAMILIES, "minilm"])
def model(request, family_models):
    """Every family's tiny checkpoint, and real weights (MiniLM)."""
    return request.getfixturevalue("minilm") if request.param == "minilm" else family_models[request.param]


def cases(loaded):
    last_layer, last_head = loaded.info.layers - 1, loaded.info.heads - 1
    return [(0, 0), (last_layer, last_head), (last_layer // 2, 1)]


@pytest.mark.parametrize("mask", masks.MASK_TYPES)
def test_recomputed_softmax_equals_the_models_attention_weights(model, mask):
    result = bertlab.analyze(model, TEXT)
    n = len(result.tokens)
    for layer, head in cases(model):
        for query in (0, n // 2, n - 1):
            steps = inside.head_steps(model, result, layer, head, query, mask)
            own = result.runs[mask].attentions[layer, head, query]
            np.testing.assert_allclose(steps.weights, own, rtol=0, atol=1e-5)
            content = steps.terms["content→content"] if steps.terms else steps.scores  # DeBERTa: one term of three
            np.testing.assert_allclose(steps.qk.sum(-1), content, rtol=1e-5, atol=1e-5)
            if steps.terms:
                np.testing.assert_allclose(sum(steps.terms.values()), steps.scores, rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(steps.scores * steps.scale, steps.scaled, rtol=1e-5, atol=1e-5)


def test_blocked_keys_get_exactly_zero_and_the_rest_sums_to_one(tiny_bert):
    result = bertlab.analyze(tiny_bert, TEXT)
    steps = inside.head_steps(tiny_bert, result, 1, 2, 3, "causal")
    assert steps.blocked.tolist() == [k > 3 for k in range(len(result.tokens))]
    assert (steps.weights[steps.blocked] == 0.0).all()
    assert abs(steps.weights[~steps.blocked].sum() - 1) < 1e-6
    data = steps.to_dict()
    assert data["masked"][4:] == [None] * (len(result.tokens) - 4) and None not in data["masked"][:4]
    bidirectional = inside.head_steps(tiny_bert, result, 1, 2, 3, "bidirectional")
    assert not bidirectional.blocked.any() and (bidirectional.weights > 0).all()


def test_head_output_equals_the_models_context_for_that_head(model):
    result = bertlab.analyze(model, TEXT)
    encoding = result.encoding
    for layer, head in cases(model):
        _, cache = hooks.run(
            model, encoding.input_ids, encoding.token_type_ids, masks.stacked(("bidirectional",), len(encoding), model.dtype),
            capture=[f"layer.{layer}.attn.context"],
        )
        context = cache[f"layer.{layer}.attn.context"][0, head]  # (token, d_head)
        for query in (0, 4):
            steps = inside.head_steps(model, result, layer, head, query)
            np.testing.assert_allclose(steps.output, context[query].numpy(), rtol=0, atol=1e-5)
            np.testing.assert_allclose(steps.mixture.sum(0), steps.output, rtol=0, atol=1e-5)


@pytest.mark.parametrize("mask", masks.MASK_TYPES)
def test_sublayers_reproduce_the_next_hidden_state(model, mask):
    result = bertlab.analyze(model, TEXT)
    steps = inside.layer_steps(model, result.encoding, mask, vectors=True)
    hidden = result.runs[mask].hidden_states
    v = steps.vectors
    for layer in range(model.info.layers):
        np.testing.assert_allclose(v["input"][layer], hidden[layer], rtol=0, atol=1e-5)
        with torch.inference_mode():
            h, out = (t.numpy() for t in inside.recompose(model, layer, *(torch.from_numpy(v[name][layer]) for name in
                                                                             ("input", "attention", "ffn", "after_attention"))))
        np.testing.assert_allclose(h, v["after_attention"][layer], rtol=0, atol=1e-5)
        np.testing.assert_allclose(out, hidden[layer + 1], rtol=0, atol=1e-5)
        for name, vectors in v.items():
            np.testing.assert_allclose(steps.norms()[name][layer], np.linalg.norm(vectors[layer], axis=-1), rtol=1e-5)
    assert steps.recomposition_error < 1e-5
    assert inside.layer_steps(model, result.encoding, mask).vectors is None, "views get norms, not vectors"
    shares = steps.shares()
    assert all(((s > 0) & (s < 1)).all() for s in shares.values())


def test_top_neurons_are_the_largest_activations(tiny_bert):
    result = bertlab.analyze(tiny_bert, TEXT)
    steps = inside.layer_steps(tiny_bert, result.encoding)
    ids, values = steps.top_neurons(1, k=5)
    act = steps.activations[1].astype(np.float32)
    assert (ids[:, 0] == act.argmax(-1)).all()
    assert (np.diff(values, axis=1) <= 0).all()
    np.testing.assert_array_equal(steps.neuron(1, int(ids[2, 0])), act[:, ids[2, 0]])
    data = steps.to_dict()["layers"]
    assert len(data) == 2 and len(data[0]["top_neurons"]) == len(result.tokens)
    assert set(data[0]) == {"layer", "norm_placement", "scope", "input_norm", "attention_norm", "after_attention_norm", "ffn_norm",
                            "output_norm", "top_neurons"}
    assert (data[0]["norm_placement"], data[0]["scope"]) == ("post", "global")


def test_projection_places_queries_and_keys_together(tiny_bert):
    result = bertlab.analyze(tiny_bert, TEXT)
    steps = inside.head_steps(tiny_bert, result, 0, 0, 2)
    xy = steps.projection()
    assert xy.shape == (2 * len(result.tokens), 2) and np.isfinite(xy).all()


def test_out_of_range_choices_are_messages(tiny_bert):
    result = bertlab.analyze(tiny_bert, TEXT)
    with pytest.raises(InputError, match="layers 0-1"):
        inside.head_steps(tiny_bert, result, 5, 0, 0)
    with pytest.raises(InputError, match="heads 0-3"):
        inside.head_steps(tiny_bert, result, 0, 9, 0)
    with pytest.raises(InputError, match="tokens 0-"):
        inside.head_steps(tiny_bert, result, 0, 0, 99)


def test_head_and_layers_command_line_contracts(tiny_bert_dir, tiny_bert, capsys):
    import json

    from bertlab.cli import main

    assert main(["head", TEXT, "--layer", "1", "--head", "2", "--query", "3", "--mask", "causal",
                 "--model", str(tiny_bert_dir), "--device", "cpu", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert set(data) == {"layer", "head", "query", "mask", "tokens", "q", "k", "v", "scores", "scaled", "masked", "weights", "output",
                         "scale", "terms", "q_rotated", "k_rotated", "window"}
    assert data["terms"] is None and data["q_rotated"] is None and data["window"] is None  # BERT: one term, no rotation
    n, d_head = len(data["tokens"]), tiny_bert.info.hidden_size // tiny_bert.info.heads
    assert (data["layer"], data["head"], data["query"], data["mask"]) == (1, 2, 3, "causal")
    assert len(data["q"]) == d_head and len(data["k"]) == n and all(len(row) == d_head for row in data["v"])
    assert data["masked"][4:] == [None] * (n - 4) and data["weights"][4:] == [0.0] * (n - 4)
    own = bertlab.analyze(tiny_bert, TEXT).causal.attentions[1, 2, 3]
    np.testing.assert_allclose(data["weights"], own, atol=1e-5)

    assert main(["layers", TEXT, "--model", str(tiny_bert_dir), "--device", "cpu", "--json"]) == 0
    layers = json.loads(capsys.readouterr().out)["layers"]
    assert [entry["layer"] for entry in layers] == [0, 1]
    assert all(len(entry["output_norm"]) == n and len(entry["top_neurons"][0]) == 5 for entry in layers)
    assert main(["head", TEXT, "--layer", "9", "--head", "0", "--query", "0", "--model", str(tiny_bert_dir)]) == 2
    assert "layers 0-1" in capsys.readouterr().err


def app(model: str, page: str, **params):
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(Path(__file__).resolve().parent.parent / "app.py"), default_timeout=60)
    for key, value in dict(model=model, device="cpu", text=TEXT, pair="", **params).items():
        at.session_state[key] = value
    at.run()
    at.switch_page(page)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at


@pytest.mark.parametrize("page", ["pages/inside_a_head.py", "pages/residual_stream.py"])
@pytest.mark.parametrize("which", ["tiny_bert_dir", "tiny_distilbert_dir"])
def test_inside_pages_render(page, which, request):
    at = app(str(request.getfixturevalue(which)), page)
    assert len(at.get("plotly_chart")) >= 3


def test_head_page_follows_the_chosen_query_and_mask(tiny_bert_dir, tiny_bert):
    at = app(str(tiny_bert_dir), "pages/inside_a_head.py", layer=1, head=2, query=3, mask="causal")
    steps = next(c for c in at.get("plotly_chart") if "softmax" in c.proto.spec)
    import json

    bars = [t for t in json.loads(steps.proto.spec)["data"] if t["type"] == "bar"]
    weights = bars[3]["y"]
    own = bertlab.analyze(tiny_bert, TEXT).causal.attentions[1, 2, 3]
    values = weights if isinstance(weights, list) else None
    if values is None:  # plotly sends numpy arrays as base64 typed arrays
        import base64

        values = np.frombuffer(base64.b64decode(weights["bdata"]), dtype=weights["dtype"]).tolist()
    np.testing.assert_allclose(values, own, atol=1e-3)
    assert values[4:] == [0.0] * (len(own) - 4)
    assert "blocked by the causal mask" in " ".join(c.value for c in at.caption)


def test_lesson_attention_and_layers_steps_use_the_inside_views(tiny_bert_dir):
    for step, title in (("Attention", "softmax"), ("Layers", "feed-forward")):
        at = app(str(tiny_bert_dir), "pages/guided_lesson.py", step=step)
        assert any(title in c.proto.spec for c in at.get("plotly_chart")), step
