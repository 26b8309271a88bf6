"""Every family through one adapter each (bertlab.families), proven against the model's own forward pass: the
same proofs, written once, run on BERT, DistilBERT, RoBERTa, ALBERT, ELECTRA, DeBERTa-v3, ModernBERT and GPT-2."""

from __future__ import annotations


import numpy as np
import pytest
import torch
import transformers
from conftest import FAMILIES

import bertlab
from bertlab import families, hooks, inside, masks
from bertlab.tokens import encode

TEXT = "The bank was robbed yesterday by the river."
ATOL = 1e-5


def own_forward(loaded: bertlab.LoadedModel, directory, encoding):
    """The checkpoint's own forward pass, by transformers alone (no bertlab hook, no mask argument: each model's
    natural run: bidirectional for an encoder (ModernBERT with its own local windows), causal for GPT-2)."""
    model = transformers.AutoModel.from_pretrained(directory, attn_implementation="eager").eval()
    kwargs = {"input_ids": encoding.input_ids}
    if loaded.info.has_segments:
        kwargs["token_type_ids"] = encoding.token_type_ids
    with torch.no_grad():
        return model, model(**kwargs, output_attentions=True, output_hidden_states=True)


def natural(loaded) -> str:
    return loaded.info.mask_as_trained


@pytest.mark.parametrize("family", FAMILIES)
def test_the_natural_run_equals_the_models_own_forward(family, family_models, family_dirs):
    """Attention weights and hidden states of bertlab's run under the mask the model was trained with equal
    transformers' own forward pass: for ModernBERT that proves its local layers keep their window; for the
    pre-norm families the last hidden state is the stream before the final LayerNorm, which the model applies."""
    loaded = family_models[family]
    encoding = encode(loaded, TEXT)
    result = bertlab.analyze(loaded, TEXT)
    run = result.runs[natural(loaded)]
    model, own = own_forward(loaded, family_dirs[family], encoding)
    torch.testing.assert_close(run.attention_tensor, torch.stack(own.attentions)[:, 0], rtol=0, atol=ATOL)
    hidden = run.hidden_tensor
    theirs = torch.stack(own.hidden_states)[:, 0]
    if loaded.adapter.final_norm:
        final = loaded.module(loaded.adapter.final_norm)
        torch.testing.assert_close(final(hidden[-1]), theirs[-1], rtol=0, atol=ATOL)
        hidden, theirs = hidden[:-1], theirs[:-1]
    torch.testing.assert_close(hidden, theirs, rtol=0, atol=ATOL)


def test_local_layers_see_only_their_window(family_models):
    """ModernBERT's local layer attends within ±w (exact zeros outside), its global layers everywhere."""
    loaded = family_models["modernbert"]
    windows = loaded.info.windows
    assert windows == {1: 2}
    attention = bertlab.analyze(loaded, TEXT).bidirectional.attention_tensor
    positions = torch.arange(attention.shape[-1])
    outside = (positions[None, :] - positions[:, None]).abs() > 2
    assert bool((attention[1][:, outside] == 0).all())
    assert bool((attention[0][:, outside] > 0).all()) and bool((attention[2][:, outside] > 0).all())


@pytest.mark.parametrize("family", ["bert", "roberta", "albert", "deberta", "modernbert", "distilbert"])
def test_masked_lm_top_k_equals_the_models_own_softmax(family, family_models, family_dirs):
    loaded = family_models[family]
    text = "The bank was [MASK] yesterday."
    result = bertlab.analyze(loaded, text)
    [position] = result.mask_positions
    model = transformers.AutoModelForMaskedLM.from_pretrained(family_dirs[family], attn_implementation="eager").eval()
    with torch.no_grad():
        logits = model(input_ids=result.encoding.input_ids).logits[0, position]
    top = torch.softmax(logits, -1).topk(5)
    got = result.predictions(position)["bidirectional"]
    assert [p.id for p in got] == top.indices.tolist()
    np.testing.assert_allclose([p.prob for p in got], top.values.numpy(), atol=1e-6)


def test_replaced_token_detection_equals_the_discriminators_own_logits(family_models, family_dirs):
    loaded = family_models["electra"]
    result = bertlab.analyze(loaded, "The bank was robbed yesterday.")
    model = transformers.ElectraForPreTraining.from_pretrained(family_dirs["electra"], attn_implementation="eager").eval()
    with torch.no_grad():
        own = torch.sigmoid(model(input_ids=result.encoding.input_ids, token_type_ids=result.encoding.token_type_ids).logits[0])
    assert [r["position"] for r in result.replaced] == [t.position for t in result.tokens if not t.special]
    np.testing.assert_allclose([r["prob"] for r in result.replaced], own[[r["position"] for r in result.replaced]].numpy(), atol=1e-6)
    assert result.to_dict()["replaced"][0].keys() == {"position", "token", "prob"}
    assert bertlab.analyze(family_models["bert"], "the bank .").to_dict()["replaced"] is None


def test_next_token_top_k_equals_the_lm_heads_own_softmax(family_models, family_dirs):
    loaded = family_models["gpt2"]
    result = bertlab.analyze(loaded, TEXT)
    model = transformers.GPT2LMHeadModel.from_pretrained(family_dirs["gpt2"], attn_implementation="eager").eval()
    with torch.no_grad():
        probs = torch.softmax(model(input_ids=result.encoding.input_ids).logits[0], -1)
    for entry in result.next_token:
        top = probs[entry["position"]].topk(5)
        assert [p.id for p in entry["top"]] == top.indices.tolist()
        np.testing.assert_allclose([p.prob for p in entry["top"]], top.values.numpy(), atol=1e-6)
    assert result.to_dict()["model"]["mask_as_trained"] == "causal"
    assert bertlab.analyze(family_models["bert"], "the bank .").to_dict()["next_token"] is None


def test_deberta_shows_three_terms_and_modernbert_its_rotation(family_models):
    deberta = family_models["deberta"]
    steps = inside.head_steps(deberta, bertlab.analyze(deberta, TEXT), 0, 1, 3)
    assert list(steps.terms) == ["content→content", "content→position", "position→content"]
    assert steps.scale == pytest.approx((8 * 3) ** -0.5)
    modern = family_models["modernbert"]
    steps = inside.head_steps(modern, bertlab.analyze(modern, TEXT), 1, 0, 5)
    assert steps.q_rotated is not None and not np.allclose(steps.q_rotated, steps.q)
    assert bool(steps.blocked[[0, 1, 2, 8, 9]].all()) and not steps.blocked[3:8].any(), "the local window, ±2"
    np.testing.assert_allclose(np.linalg.norm(steps.q_rotated), np.linalg.norm(steps.q), rtol=1e-5)  # a rotation


def test_layers_json_says_norm_placement_and_scope(any_model):
    data = inside.layer_steps(any_model, encode(any_model, TEXT)).to_dict()
    assert all(layer["norm_placement"] == any_model.info.norm_placement for layer in data["layers"])
    scopes = {layer["layer"]: (layer["scope"], layer.get("window")) for layer in data["layers"]}
    expected = {layer: ("local", w) for layer, w in any_model.info.windows.items()}
    assert {k: v for k, v in scopes.items() if v[0] == "local"} == expected


def test_shared_layers_hook_each_layer(family_models):
    """ALBERT runs one module as every layer: a hook on it still knows which layer each call is."""
    albert = family_models["albert"]
    assert albert.info.shared_layers and len({id(m) for m in albert.layers}) == 1
    encoding = encode(albert, TEXT)
    out, cache = hooks.run(albert, encoding.input_ids, encoding.token_type_ids,
                           masks.stacked(("bidirectional",), len(encoding), albert.dtype),
                           capture=[f"layer.{l}.out" for l in range(3)], internals=True,
                           interventions=[hooks.ablate_heads(2, [0, 1, 2, 3])])
    for layer in range(3):
        torch.testing.assert_close(cache[f"layer.{layer}.out"], out.hidden_states[layer + 1], rtol=0, atol=0)
    clean, _ = hooks.run(albert, encoding.input_ids, encoding.token_type_ids,
                         masks.stacked(("bidirectional",), len(encoding), albert.dtype), internals=True)
    torch.testing.assert_close(out.hidden_states[2], clean.hidden_states[2], rtol=0, atol=0)  # layers 0, 1 untouched
    assert not torch.allclose(out.hidden_states[3], clean.hidden_states[3])


def test_model_json_says_how_each_family_computes(family_models):
    expected = {
        "bert": ("post", "absolute", False), "distilbert": ("post", "absolute", False), "roberta": ("post", "absolute", False),
        "albert": ("post", "absolute", True), "electra": ("post", "absolute", False), "deberta": ("post", "relative", False),
        "modernbert": ("pre", "rotary", False), "gpt2": ("pre", "absolute", False),
    }
    for family, (norm, positions, shared) in expected.items():
        model = family_models[family].info.to_dict()
        assert (model["norm_placement"], model["positions"], model["shared_layers"]) == (norm, positions, shared), family
        assert model["family"] == family


def test_piece_markers_come_from_the_tokenizer(family_models):
    markers = {f: family_models[f].info.pieces for f in FAMILIES}
    assert markers == {"bert": "##", "distilbert": "##", "roberta": "Ġ", "albert": "▁", "electra": "##", "deberta": "▁",
                       "modernbert": "Ġ", "gpt2": "Ġ"}
    roberta = encode(family_models["roberta"], "The bankrobbers fished.")
    robbed = [t for t in roberta.tokens if "robbed".startswith(t.text.lstrip("Ġ")) and t.text != "<s>"]
    assert [t.continuation for t in roberta.tokens if not t.special][:2] == [False, False]
    assert any(t.continuation for t in roberta.tokens), robbed


def test_typed_mask_is_the_models_own_mask_token(family_models):
    roberta = family_models["roberta"]
    encoding = encode(roberta, "The bank was [MASK] yesterday.")
    [position] = encoding.mask_positions
    token = encoding.tokens[position]
    assert token.text == "<mask>" and token.id == roberta.tokenizer.mask_token_id
    assert encoding.text[token.start:token.end] == "[MASK]"
    assert encode(family_models["gpt2"], "The bank was [MASK].").mask_positions == []


def test_every_family_is_one_adapter():
    adapters = families.adapters()
    assert list(adapters) == list(FAMILIES)
    for adapter in adapters.values():
        assert set(adapter.points) == set(hooks.LAYER_POINTS), adapter.name
        assert adapter.norm_placement in ("post", "pre") and adapter.positions in ("absolute", "rotary", "relative")
