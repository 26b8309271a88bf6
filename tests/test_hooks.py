"""Named capture points and interventions (bertlab.hooks) against the model's own outputs."""

from __future__ import annotations

import copy

import pytest
import torch

from conftest import FAMILIES

from bertlab import hooks, inside, masks
from bertlab.errors import InputError
from bertlab.tokens import encode

TEXT = "i went to the bank to deposit money ."


def batch(loaded, text: str = TEXT, kinds=("bidirectional", "causal")):
    encoding = encode(loaded, text)
    n = len(kinds)
    return (
        encoding.input_ids.expand(n, -1),
        encoding.token_type_ids.expand(n, -1),
        masks.stacked(kinds, len(encoding), loaded.dtype),
    )


@pytest.fixture(params=FAMILIES)
def model(request, family_models):
    """Every family's tiny checkpoint: the same proofs hold for each adapter."""
    return family_models[request.param]


def test_every_layer_point_agrees_with_the_model_outputs(model):
    """Each point is what its name says: layer.L.in/out are the model's hidden states L and L+1, the
    pattern is its attentions, mid/out rebuild from the sublayers by the family's formula (post-norm:
    LayerNorm(sublayer + residual) with the layer's own modules; pre-norm: residual + sublayer)."""
    names = hooks.point_names(model)
    out, cache = hooks.run(model, *batch(model), capture=names, internals=True)
    assert set(cache.names()) == set(names)
    heads, d_head = model.info.heads, model.info.hidden_size // model.info.heads
    for layer in range(model.info.layers):
        p = f"layer.{layer}."
        torch.testing.assert_close(cache[p + "in"], out.hidden_states[layer], rtol=0, atol=0)
        torch.testing.assert_close(cache[p + "out"], out.hidden_states[layer + 1], rtol=0, atol=0)
        torch.testing.assert_close(cache[p + "attn.pattern"], out.attentions[layer], rtol=0, atol=0)
        for name in ("attn.q", "attn.k", "attn.v", "attn.context"):
            assert cache[p + name].shape == (2, heads, out.hidden_states[0].shape[1], d_head)
        x, a, h, f = cache[p + "in"], cache[p + "attn.out"], cache[p + "mid"], cache[p + "ffn.out"]
        mid, output = inside.recompose(model, layer, x, a, f, h)
        torch.testing.assert_close(mid, h, rtol=0, atol=1e-6)
        torch.testing.assert_close(output, cache[p + "out"], rtol=0, atol=1e-6)
        # the context is weights · V, per head
        torch.testing.assert_close(cache[p + "attn.pattern"] @ cache[p + "attn.v"], cache[p + "attn.context"], rtol=0, atol=1e-6)


def test_embedding_points_are_the_lookups(tiny_bert):
    out, cache = hooks.run(tiny_bert, *batch(tiny_bert), capture=hooks.EMBED_POINTS, internals=True)
    ids = encode(tiny_bert, TEXT).input_ids
    torch.testing.assert_close(cache["embed.token"][0], tiny_bert.word_embeddings.weight[ids[0]], rtol=0, atol=0)
    torch.testing.assert_close(cache["embed.out"], out.hidden_states[0], rtol=0, atol=0)


def test_hooks_are_removed_after_a_run_even_on_error(tiny_bert):
    modules = list(tiny_bert.encoder.modules())
    before = [(dict(m._forward_hooks), dict(m._forward_pre_hooks)) for m in modules]  # transformers keeps its own

    def explode(_x):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        hooks.run(tiny_bert, *batch(tiny_bert), capture=hooks.point_names(tiny_bert),
                  interventions=[hooks.Intervention("layer.1.attn.out", explode)])
    assert [(dict(m._forward_hooks), dict(m._forward_pre_hooks)) for m in modules] == before


def test_unknown_points_say_what_exists(tiny_bert):
    with pytest.raises(InputError, match="Unknown point"):
        hooks.run(tiny_bert, *batch(tiny_bert), capture=["layer.0.attn.nope"])
    with pytest.raises(InputError, match="layers 0-1"):
        hooks.run(tiny_bert, *batch(tiny_bert), capture=["layer.7.out"])
    with pytest.raises(InputError, match="cannot be edited"):
        hooks.run(tiny_bert, *batch(tiny_bert), interventions=[hooks.Intervention("layer.0.attn.pattern", lambda x: x)])


def test_an_identity_intervention_changes_nothing(model):
    args = batch(model)
    plain, _ = hooks.run(model, *args, internals=True)
    edits = [hooks.Intervention(f"layer.{l}.{p}", lambda x: x) for l in range(model.info.layers) for p in hooks.EDITABLE]
    edited, _ = hooks.run(model, *args, internals=True, interventions=edits)
    for a, b in zip(plain.hidden_states, edited.hidden_states):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def _reference_without_head(model, layer: int, head: int):
    """A copy of the model whose attention output projection ignores one head's slice of its input (the module
    the adapter names for attn.context: its weight's columns for nn.Linear, its rows for GPT-2's Conv1D)."""
    ref = copy.deepcopy(model)
    dense = ref.layers[layer].get_submodule(ref.adapter.points["attn.context"].path)
    d_head = model.info.hidden_size // model.info.heads
    part = slice(head * d_head, (head + 1) * d_head)
    with torch.no_grad():
        if isinstance(dense, torch.nn.Linear):
            dense.weight[:, part] = 0
        else:
            dense.weight[part, :] = 0
    return ref


@pytest.mark.parametrize("layer,head", [(0, 1), (1, 3)])
def test_zeroing_a_head_equals_a_model_without_its_output_columns(model, layer, head):
    args = batch(model)
    # one module is every layer of ALBERT: its weight edit removes the head everywhere, and so must the ablation
    layers = range(model.info.layers) if model.info.shared_layers else [layer]
    ablated, _ = hooks.run(model, *args, internals=True, interventions=[hooks.ablate_heads(l, [head]) for l in layers])
    reference, _ = hooks.run(_reference_without_head(model, layer, head), *args, internals=True)
    for a, b in zip(ablated.hidden_states, reference.hidden_states):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


def test_ablating_a_head_leaves_earlier_layers_and_other_rows_alone(model):
    args = batch(model)
    plain, _ = hooks.run(model, *args, internals=True)
    ablated, _ = hooks.run(model, *args, internals=True, interventions=[hooks.ablate_heads(1, [0, 2], rows=[1])])
    for layer in range(2):  # hidden states 0 (embeddings) and 1 (after layer 0) are before layer 1 acts
        torch.testing.assert_close(plain.hidden_states[layer], ablated.hidden_states[layer], rtol=0, atol=0)
    torch.testing.assert_close(plain.hidden_states[2][0], ablated.hidden_states[2][0], rtol=0, atol=0)
    assert not torch.allclose(plain.hidden_states[2][1], ablated.hidden_states[2][1])


def test_mean_ablation_makes_the_head_context_constant_over_tokens(tiny_bert):
    _, cache = hooks.run(tiny_bert, *batch(tiny_bert), capture=["layer.0.attn.context"],
                         interventions=[hooks.ablate_heads(0, [2], mode="mean")])
    context = cache["layer.0.attn.context"][:, 2]
    torch.testing.assert_close(context, context[:, :1].expand_as(context), rtol=0, atol=0)


def test_restricting_attention_gives_exact_zeros_and_rows_that_sum_to_one(model):
    encoding = encode(model, TEXT)
    n = len(encoding)
    allowed = torch.ones(n, n, dtype=torch.bool)
    allowed[:, 3] = False  # nobody may see token 3
    allowed[5, 1] = False
    out, _ = hooks.run(model, *batch(model), internals=True, interventions=[hooks.restrict_attention(1, allowed, rows=[0])])
    layer1 = out.attentions[1]
    assert (layer1[0, :, :, 3] == 0).all() and (layer1[0, :, 5, 1] == 0).all()
    torch.testing.assert_close(layer1.sum(-1), torch.ones_like(layer1.sum(-1)))
    assert (out.attentions[0][0, :, :, 3] > 0).all(), "layer 0 was not asked"
    assert (layer1[1].triu(1) == 0).all(), "row 1 keeps its own causal mask"


def test_a_run_on_another_thread_never_passes_through_this_runs_hooks(tiny_bert):
    """Sessions share one model: while one run's intervention is installed, a plain run on another thread
    must wait, not go through it (it did, before runs held the model's lock)."""
    import threading

    args = batch(tiny_bert)
    reference, _ = hooks.run(tiny_bert, *args, internals=True)
    inside, release, results = threading.Event(), threading.Event(), {}

    def slow_zero(x):
        inside.set()
        release.wait(timeout=10)
        return torch.zeros_like(x)

    def edited():
        hooks.run(tiny_bert, *args, interventions=[hooks.Intervention("layer.0.attn.out", slow_zero)])

    def plain():
        results["plain"] = hooks.run(tiny_bert, *args)[0].last_hidden_state

    a = threading.Thread(target=edited)
    a.start()
    assert inside.wait(timeout=10)
    b = threading.Thread(target=plain)
    b.start()
    b.join(timeout=0.5)
    release.set()
    a.join(timeout=10)
    b.join(timeout=10)
    torch.testing.assert_close(results["plain"], reference.last_hidden_state, rtol=0, atol=0)


def test_q_and_k_points_make_the_pattern_and_act_feeds_the_ffn_output(model):
    """q and k are what the softmax reads (not swapped) where the score is q·k/√d (DeBERTa's relative terms and
    ModernBERT's rotation are proven in test_inside), the mask point is what the softmax adds, and ffn.act is the
    activation the feed-forward output projection reads."""
    out, cache = hooks.run(model, *batch(model), capture=hooks.point_names(model), internals=True)
    d_head = model.info.hidden_size // model.info.heads
    for layer in range(model.info.layers):
        p = f"layer.{layer}."
        if model.adapter.head_terms is None:
            scores = cache[p + "attn.q"] @ cache[p + "attn.k"].transpose(-1, -2) / d_head**0.5 + cache[p + "attn.mask"]
            torch.testing.assert_close(torch.softmax(scores, -1), cache[p + "attn.pattern"], rtol=0, atol=1e-5)
        blocked = cache[p + "attn.mask"].expand_as(cache[p + "attn.pattern"]) < -1e30
        assert bool((cache[p + "attn.pattern"][blocked] == 0).all()), "what the mask point blocks gets weight 0"
        dense = model.layers[layer].get_submodule(model.adapter.points["ffn.out"].path)
        with torch.inference_mode():
            torch.testing.assert_close(dense(cache[p + "ffn.act"]), cache[p + "ffn.out"], rtol=0, atol=1e-6)
        if model.info.family != "modernbert":  # ModernBERT's is a gated product (GeGLU), any sign
            assert (cache[p + "ffn.act"] >= -0.2).all(), "after GELU nothing is below about -0.17"
