"""Properties any correct BERT analysis must have, checked against the model's own outputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import bertlab
from bertlab import masks
from conftest import FAMILIES

TEXT = "the quick brown fox jumps over the lazy dog."


@pytest.fixture(params=[*FAMILIES, "minilm"])
def any_model(request: pytest.FixtureRequest, family_models) -> bertlab.LoadedModel:
    """Every family's tiny checkpoint, and real weights (MiniLM)."""
    return request.getfixturevalue("minilm") if request.param == "minilm" else family_models[request.param]


# --- loading -------------------------------------------------------------------------------------


def test_heads_are_the_ones_the_checkpoint_has(tiny_bert, tiny_distilbert, tiny_encoder, minilm):
    assert tiny_bert.info.heads_available == ("mlm", "nsp")
    assert tiny_distilbert.info.heads_available == ("mlm",)
    assert tiny_encoder.info.heads_available == ()
    assert minilm.info.heads_available == ()
    assert (minilm.info.layers, minilm.info.hidden_size, minilm.info.heads) == (6, 384, 12)
    assert tiny_distilbert.info.has_segments is False


def test_attention_is_eager_so_weights_come_back(any_model):
    assert any_model.encoder.config._attn_implementation == "eager"


def test_default_model_falls_back_to_packaged_minilm_with_notice(monkeypatch):
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", lambda *a, **k: None)
    monkeypatch.setattr(bertlab.loading, "hub_reachable", lambda timeout=3.0: False)
    loaded = bertlab.load_model(device="cpu")
    assert loaded.info.name == "minilm"
    assert "bert-base-uncased" in loaded.info.notice and "packaged" in loaded.info.notice


def test_named_model_does_not_fall_back_silently(monkeypatch):
    monkeypatch.setattr(bertlab.loading, "hub_reachable", lambda timeout=3.0: False)
    with pytest.raises(bertlab.OfflineError, match="bert-large-cased.*cannot be loaded on this machine") as err:
        bertlab.load_model("bert-large-cased", device="cpu")
    assert "prefetch bert-large-cased" in err.value.hint and "prefetch" not in str(err.value)  # commands: operator only


@pytest.mark.parametrize(
    "name, error, message",
    [
        ("./no/such/dir", bertlab.ModelLoadError, "no such directory"),
        ("bad name!!", bertlab.ModelLoadError, "neither a local model directory nor a valid"),
    ],
)
def test_bad_model_names_get_clear_errors(name, error, message):
    with pytest.raises(error, match=message):
        bertlab.load_model(name, device="cpu")


def test_unknown_hub_id_is_a_clear_error(hub_without_the_repo):
    with pytest.raises(bertlab.ModelLoadError, match="'no-such-user/no-such-bert': no such model on the Hugging Face Hub") as err:
        bertlab.load_model("no-such-user/no-such-bert", device="cpu")
    assert not isinstance(err.value, bertlab.OfflineError)


def test_directory_that_is_not_a_model(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(bertlab.ModelLoadError, match="not a model"):
        bertlab.load_model(str(tmp_path), device="cpu")


def test_a_decoder_other_than_gpt2_is_refused_with_what_bertlab_reads(tmp_path):
    from transformers import LlamaConfig

    LlamaConfig(num_hidden_layers=1, hidden_size=8, num_attention_heads=2, intermediate_size=16).save_pretrained(tmp_path)
    with pytest.raises(bertlab.NotAnEncoderError, match="llama model, a family bertlab does not read.*GPT-2"):
        bertlab.load_model(str(tmp_path), device="cpu")
    with pytest.raises(bertlab.NotAnEncoderError, match="reads one decoder, GPT-2"):
        bertlab.load_model("meta-llama/Llama-3.2-1B", device="cpu")


def test_corrupted_weights_are_a_clear_error(tiny_bert_dir, tmp_path):
    import shutil

    for f in tiny_bert_dir.iterdir():
        shutil.copy(f, tmp_path / f.name)
    (tmp_path / "model.safetensors").write_bytes(b"not really safetensors")
    with pytest.raises(bertlab.ModelLoadError, match="Cannot read"):
        bertlab.load_model(str(tmp_path), device="cpu")


def test_float16_on_cpu_is_refused():
    with pytest.raises(bertlab.ModelLoadError, match="float16"):
        bertlab.load_model("minilm", device="cpu", dtype="float16")


# --- tokens --------------------------------------------------------------------------------------


def test_tokens_carry_pieces_ids_segments_and_offsets(tiny_bert):
    text, pair = "the cats sat!", "a pen ☃"
    enc = bertlab.encode(tiny_bert, text, pair)
    pieces = [t.text for t in enc.tokens]
    assert pieces[0] == "[CLS]" and pieces.count("[SEP]") == 2
    assert "##s" in pieces and next(t for t in enc.tokens if t.text == "##s").continuation
    assert [t.position for t in enc.tokens] == list(range(len(enc)))
    first_sep = pieces.index("[SEP]")
    assert all(t.segment == 0 for t in enc.tokens[: first_sep + 1])
    assert all(t.segment == 1 for t in enc.tokens[first_sep + 1 :])
    assert [t.special for t in enc.tokens].count(True) == 3
    unknown = [t for t in enc.tokens if t.unknown]
    assert len(unknown) == 1 and pair[unknown[0].start : unknown[0].end] == "☃"
    for t in enc.tokens:
        if not t.special and not t.unknown:
            source = text if t.segment == 0 else pair
            assert source[t.start : t.end].lower() == t.text.removeprefix("##")


def test_typed_mask_is_a_mask_token(minilm):
    enc = bertlab.encode(minilm, "the [MASK] sat on the [MASK].")
    assert enc.mask_positions == [2, 6]


@pytest.mark.parametrize("text", ["", "   \n\t "])
def test_empty_text_is_refused(tiny_bert, text):
    with pytest.raises(bertlab.InputError, match="empty"):
        bertlab.analyze(tiny_bert, text)


def test_long_input_is_truncated_and_says_so(minilm):
    text = "the bank " * 400  # 800 word pieces
    result = bertlab.analyze(minilm, text)
    assert result.truncated and len(result.tokens) == 512
    assert result.tokens[-1].text == "[SEP]"
    assert result.encoding.untruncated_length == 802
    assert any("truncated" in note for note in result.notes)
    assert result.bidirectional.attentions.shape == (6, 12, 512, 512)


# --- embeddings ----------------------------------------------------------------------------------


def test_embedding_sum_after_layernorm_is_the_models_embedding_output(any_model):
    """The lookups the model adds, summed, projected and normalized in its own order with its own modules, equal
    the first layer's input, obtained independently by calling the model itself (no bertlab hook)."""
    result = bertlab.analyze(any_model, TEXT, "a pen is red" if any_model.info.has_segments else None)
    e = result.embeddings
    assert e.max_abs_diff <= 1e-5
    kwargs = {"input_ids": result.encoding.input_ids}
    if any_model.info.has_segments:
        kwargs["token_type_ids"] = result.encoding.token_type_ids
    with torch.no_grad():
        own = any_model.encoder(**kwargs, output_hidden_states=True, **any_model.adapter.run_options).hidden_states[0][0].numpy()
    first = e.projection if e.steps[-1] == "projection" else e.model_output
    assert np.abs(first - own).max() <= 1e-5
    lookups = [getattr(e, part) for part in ("token", "segment", "position") if e.has(part)]
    assert np.allclose(e.sum, sum(lookups), atol=1e-6)
    np.testing.assert_allclose(e.token, any_model.word_embeddings.weight[result.encoding.input_ids[0]].detach().numpy())


def test_each_embedding_part_is_its_own_weight_lookup(tiny_bert):
    """token, segment and position parts each equal their own table read at the input's ids, segment ids and
    positions (a pair, so segment ids differ; positions differ anyway): swapping two parts cannot pass."""
    result = bertlab.analyze(tiny_bert, "the cat sat", "a pen is red")
    emb, tables = result.embeddings, tiny_bert.encoder.embeddings
    ids = result.encoding.input_ids[0]
    segments = torch.tensor([t.segment for t in result.tokens])
    positions = torch.arange(len(result.tokens))
    assert 0 < int(segments.sum()) < len(segments)
    for part, table, index in ((emb.token, tables.word_embeddings, ids), (emb.segment, tables.token_type_embeddings, segments),
                               (emb.position, tables.position_embeddings, positions)):
        np.testing.assert_allclose(part, table.weight[index].detach().numpy(), atol=1e-6)


def test_segment_embeddings_differ_between_a_and_b(tiny_bert):
    result = bertlab.analyze(tiny_bert, "a pen", "a pen")
    seg = result.embeddings.segment
    a, b = [t.position for t in result.tokens if t.text == "pen"]
    assert not np.allclose(seg[a], seg[b])
    assert np.allclose(result.embeddings.token[a], result.embeddings.token[b])


# --- attention and masks -------------------------------------------------------------------------


def test_attention_rows_sum_to_one_and_causal_zeros_are_exact(any_model):
    result = bertlab.analyze(any_model, TEXT)
    n = len(result.tokens)
    for run in result.runs.values():
        assert run.attentions.shape == (any_model.info.layers, any_model.info.heads, n, n)
        np.testing.assert_allclose(run.attentions.sum(-1), 1.0, atol=1e-5)
    above = np.triu(np.ones((n, n), dtype=bool), k=1)
    causal = result.causal.attentions
    assert (causal[..., above] == 0.0).all(), "the causal mask leaked"
    windows = any_model.info.windows  # ModernBERT's local layers see only ±w: zeros beyond, by design
    for layer in range(any_model.info.layers):
        near = np.abs(np.arange(n)[:, None] - np.arange(n)[None, :]) <= windows.get(layer, n)
        assert (result.bidirectional.attentions[layer][..., above & near] > 0).all()
        assert (result.bidirectional.attentions[layer][..., ~near] == 0).all()
    assert (result.causal.allowed == ~above).all()


def test_compact_analysis_is_smaller_and_keeps_what_views_read(tiny_bert):
    result = bertlab.analyze(tiny_bert, TEXT)
    small = result.compact()
    saved = sum(run.attentions.nbytes for run in result.runs.values()) / 2  # rollout is computed on request
    assert result.nbytes - small.nbytes == saved
    n = len(result.tokens)
    above = np.triu(np.ones((n, n), dtype=bool), k=1)
    assert (small.causal.attentions[..., above] == 0.0).all(), "float16 must keep the causal mask's zeros exact"
    for kind, run in small.runs.items():
        assert run.attentions.dtype == np.float16
        np.testing.assert_allclose(run.attentions, result.runs[kind].attentions, atol=1e-3)
        np.testing.assert_allclose(run.rollout, result.runs[kind].rollout, atol=1e-3)
        np.testing.assert_array_equal(run.hidden_states, result.runs[kind].hidden_states)
    assert result.bidirectional.attentions.dtype == np.float32, "compact() must not change the original"


def test_additive_mask_blocks_with_most_negative_value():
    m = masks.additive(masks.allowed("causal", 3), torch.float32)
    assert m.shape == (1, 1, 3, 3)
    assert m[0, 0, 0, 1] == torch.finfo(torch.float32).min and m[0, 0, 1, 0] == 0


def _hidden(model, text):
    return bertlab.analyze(model, text)


def test_causal_prefix_invariance_and_bidirectional_dependence(any_model):
    a = _hidden(any_model, "the cat sat on the mat.")
    b = _hidden(any_model, "the cat sat on the dog.")
    changed = next(i for i, (x, y) in enumerate(zip(a.tokens, b.tokens)) if x.id != y.id)
    assert changed > 2
    ca, cb = a.causal.hidden_states[:, :changed], b.causal.hidden_states[:, :changed]
    np.testing.assert_allclose(ca, cb, atol=1e-6, rtol=0)
    ba, bb = a.bidirectional.hidden_states[1:, :changed], b.bidirectional.hidden_states[1:, :changed]
    assert np.abs(ba - bb).max() > 1e-4, "bidirectional states should see the later token"


def test_one_forward_pass_per_analysis(tiny_bert):
    calls = []
    handle = tiny_bert.encoder.register_forward_hook(lambda m, i, o: calls.append(1))
    try:
        bertlab.analyze(tiny_bert, "the [MASK] sat.", "a pen")
    finally:
        handle.remove()
    assert len(calls) == 1


def test_head_stats_match_their_definitions(tiny_bert):
    result = bertlab.analyze(tiny_bert, TEXT)
    for run in result.runs.values():
        a = run.attentions
        n = a.shape[-1]
        stats = run.head_stats
        assert set(stats) == set(bertlab.HEAD_STATS)
        np.testing.assert_allclose(stats["self"], np.einsum("lhii->lh", a) / n, atol=1e-6)
        np.testing.assert_allclose(stats["cls"], a[..., 0].mean(-1), atol=1e-6)
        np.testing.assert_allclose(stats["sep"], a[..., n - 1].mean(-1), atol=1e-6)
        assert (stats["entropy"] <= math.log(n) + 1e-5).all() and (stats["entropy"] >= 0).all()
    assert (result.causal.head_stats["distance"] <= 1e-6).all()


def test_rollout_matches_a_hand_worked_two_layer_case():
    """Two layers, two heads, two tokens; every step worked by hand (Abnar & Zuidema: heads averaged,
    0.5·A + 0.5·I, rows renormalized, layers chained)."""
    from bertlab.analysis import rollout

    attn = torch.tensor([
        [[[1.0, 0.0], [0.5, 0.5]], [[0.0, 1.0], [0.5, 0.5]]],  # layer 0: head mean [[.5, .5], [.5, .5]]
        [[[1.0, 0.0], [1.0, 0.0]], [[1.0, 0.0], [0.0, 1.0]]],  # layer 1: head mean [[1, 0], [.5, .5]]
    ])
    # layer 0: 0.5·[[.5, .5], [.5, .5]] + 0.5·I = [[.75, .25], [.25, .75]] (rows already sum to 1)
    # layer 1: 0.5·[[1, 0], [.5, .5]] + 0.5·I = [[1, 0], [.25, .75]]
    # chained: [[1, 0], [.25, .75]] @ [[.75, .25], [.25, .75]] = [[.75, .25], [.375, .625]]
    expected = torch.tensor([[[0.75, 0.25], [0.25, 0.75]], [[0.75, 0.25], [0.375, 0.625]]])
    torch.testing.assert_close(rollout(attn), expected)


def test_analysis_rollout_chains_its_own_attentions(tiny_bert):
    """The rollout an analysis carries is the chain of its own attentions (numpy, written out here)."""
    result = bertlab.analyze(tiny_bert, TEXT)
    for run in result.runs.values():
        mixed = 0.5 * run.attentions.astype(np.float64).mean(1) + 0.5 * np.eye(run.attentions.shape[-1])
        mixed /= mixed.sum(-1, keepdims=True)
        chained = np.eye(mixed.shape[-1])
        for layer in range(mixed.shape[0]):
            chained = mixed[layer] @ chained
            np.testing.assert_allclose(run.rollout[layer], chained, atol=1e-5)


def test_rollout_rows_are_distributions(tiny_bert):
    result = bertlab.analyze(tiny_bert, TEXT)
    roll = result.bidirectional.rollout
    assert roll.shape[0] == tiny_bert.info.layers
    np.testing.assert_allclose(roll.sum(-1), 1.0, atol=1e-5)
    causal_roll = result.causal.rollout
    n = causal_roll.shape[-1]
    assert (causal_roll[:, np.triu(np.ones((n, n), dtype=bool), 1)] == 0).all()


# --- masked LM -----------------------------------------------------------------------------------


def test_mlm_top_k_is_sorted_and_matches_softmax_of_the_full_model(tiny_bert):
    text = "the quick [MASK] fox jumps over the [MASK] dog."
    result = bertlab.analyze(tiny_bert, text, top_k=7)
    assert result.mask_positions == [3, 8]
    model = tiny_bert.model
    enc = result.encoding
    length = len(enc)
    for kind in bertlab.MASK_TYPES:
        mask = masks.additive(masks.allowed(kind, length), torch.float32)
        with torch.no_grad():
            logits = model(input_ids=enc.input_ids, token_type_ids=enc.token_type_ids, attention_mask=mask).prediction_logits[0]
        for position in result.mask_positions:
            preds = result.runs[kind].mlm[position]
            probs = [p.prob for p in preds]
            assert len(preds) == 7 and probs == sorted(probs, reverse=True)
            direct = torch.softmax(logits[position], -1)
            expected = direct.topk(7)
            assert [p.id for p in preds] == expected.indices.tolist()
            np.testing.assert_allclose(probs, expected.values.numpy(), atol=1e-6)


def test_fill_masks_refuses_without_mask_or_head(tiny_bert, minilm):
    with pytest.raises(bertlab.NoMaskError, match="no \\[MASK\\]"):
        bertlab.fill_masks(tiny_bert, "the cat sat.")
    with pytest.raises(bertlab.MissingHeadError, match="no masked-LM"):
        bertlab.fill_masks(minilm, "the [MASK] sat.")
    many = bertlab.fill_masks(tiny_bert, " ".join(["[MASK]"] * 50))
    assert len(many.bidirectional.mlm) == 50


def test_distilbert_mlm_predictions(tiny_distilbert):
    result = bertlab.fill_masks(tiny_distilbert, "the [MASK] sat.", top_k=3)
    with torch.no_grad():
        logits = tiny_distilbert.model(input_ids=result.encoding.input_ids).logits[0, 2]
    assert [p.id for p in result.bidirectional.mlm[2]] == torch.softmax(logits, -1).topk(3).indices.tolist()


def test_mask_each_token_batched_equals_a_loop(tiny_bert):
    enc = bertlab.encode(tiny_bert, "the cat sat on the mat and the dog sat on the fox.")
    for kind in bertlab.MASK_TYPES:
        batched = bertlab.mask_each_token(tiny_bert, enc, kind=kind, batch_size=64)
        looped = bertlab.mask_each_token(tiny_bert, enc, kind=kind, batch_size=1)
        assert batched.positions == looped.positions == list(range(1, len(enc) - 1))
        np.testing.assert_allclose(batched.log_probs, looped.log_probs, atol=1e-5)
        assert (batched.ranks == looped.ranks).all()
    # and one row of it agrees with the full model run on that masked input:
    ids = enc.input_ids.clone()
    ids[0, 2] = tiny_bert.tokenizer.mask_token_id
    with torch.no_grad():
        logits = tiny_bert.model(input_ids=ids, token_type_ids=enc.token_type_ids).prediction_logits[0, 2]
    expected = torch.log_softmax(logits, -1)[enc.input_ids[0, 2]].item()
    assert batched.positions[1] == 2
    each = bertlab.mask_each_token(tiny_bert, enc)
    assert each.log_probs[1] == pytest.approx(expected, abs=1e-5)
    assert each.pseudo_log_likelihood == pytest.approx(float(each.log_probs.sum()))


def test_mask_each_token_uses_batches_not_a_loop(tiny_bert):
    enc = bertlab.encode(tiny_bert, "the cat sat on the mat and the dog sat on the fox.")
    calls = []
    handle = tiny_bert.encoder.register_forward_hook(lambda m, i, o: calls.append(1))
    try:
        bertlab.mask_each_token(tiny_bert, enc)
    finally:
        handle.remove()
    assert len(calls) == 1


def test_logit_lens_is_the_mlm_head_on_every_layers_hidden_state(tiny_bert_dir, tiny_bert):
    """Every layer, against a fresh full model's own hidden_states[l] (output_hidden_states) through its MLM head."""
    from transformers import BertForPreTraining

    result = bertlab.analyze(tiny_bert, "the quick [MASK] fox.", top_k=5)
    lens = bertlab.logit_lens(tiny_bert, result, position=3, top_k=5)
    model = BertForPreTraining.from_pretrained(tiny_bert_dir).eval()
    enc = result.encoding
    with torch.no_grad():
        hidden = model(input_ids=enc.input_ids, token_type_ids=enc.token_type_ids, output_hidden_states=True).hidden_states
        assert len(lens) == len(hidden) == tiny_bert.info.layers + 1
        for layer, preds in enumerate(lens):
            expected = torch.softmax(model.cls.predictions(hidden[layer][0, 3]), -1).topk(5)
            assert [p.id for p in preds] == expected.indices.tolist(), layer
            np.testing.assert_allclose([p.prob for p in preds], expected.values.numpy(), atol=1e-5)


# --- NSP -----------------------------------------------------------------------------------------


def test_nsp_probability_matches_the_model(tiny_bert, tiny_distilbert, reference):
    result = bertlab.analyze(tiny_bert, "i have a pen", "the pen is red")
    assert result.nsp == pytest.approx(reference("i have a pen", "the pen is red")["is_next"], abs=1e-6)
    assert bertlab.analyze(tiny_distilbert, "i have a pen", "the pen is red").nsp is None


# --- word sense ----------------------------------------------------------------------------------

BANK = ["I went to the bank to deposit money.", "I went to the bank to catch some fish.", "The river bank was very scenic."]


def test_bank_causal_is_identical_bidirectional_is_not(minilm):
    result = bertlab.senses(minilm, "bank", BANK)
    assert result.layers == 7
    last_causal = result.similarity["causal"][-1]
    last_bi = result.similarity["bidirectional"][-1]
    assert last_causal[0, 1] == pytest.approx(1.0, abs=1e-5)
    assert last_bi[0, 1] < 0.95
    assert last_causal[0, 2] < 0.99
    np.testing.assert_allclose(result.similarity["bidirectional"][:, range(3), range(3)], 1.0, atol=1e-5)
    assert result.projection["bidirectional"].shape == (7, 3, 2)


def test_senses_vectors_match_single_sentence_analysis(minilm):
    result = bertlab.senses(minilm, "bank", BANK[:2] + ["The bank was robbed yesterday."])
    single = bertlab.analyze(minilm, BANK[2 - 2])
    pos = next(t.position for t in single.tokens if t.text == "bank")
    for kind in bertlab.MASK_TYPES:
        np.testing.assert_allclose(result.vectors[kind][:, 0], single.runs[kind].hidden_states[:, pos], atol=1e-4)


def test_multi_piece_target_is_pooled_by_the_mean_of_its_pieces(tiny_bert):
    """A word of several WordPieces is the mean of its pieces' hidden states, from the model's own output."""
    sentences = ["the cats sat.", "we have cats!"]
    result = bertlab.senses(tiny_bert, "cats", sentences)
    assert result.pieces == [["cat", "##s"], ["cat", "##s"]]
    for i, sentence in enumerate(sentences):
        single = bertlab.analyze(tiny_bert, sentence)
        start, end = result.spans[i]
        assert [t.text for t in single.tokens[start:end]] == ["cat", "##s"]
        for kind in bertlab.MASK_TYPES:
            states = single.runs[kind].hidden_states[:, start:end]
            assert np.abs(states[:, 0] - states[:, 1]).max() > 1e-3, "the pieces differ, so the mean is not either one"
            np.testing.assert_allclose(result.vectors[kind][:, i], states.mean(1), atol=1e-5)


def test_senses_bad_input(tiny_bert):
    with pytest.raises(bertlab.TargetNotFoundError, match="sentence 2"):
        bertlab.senses(tiny_bert, "bank", ["the bank.", "the river."])
    with pytest.raises(bertlab.InputError, match="at least two"):
        bertlab.senses(tiny_bert, "bank", ["the bank."])
    with pytest.raises(bertlab.InputError, match="empty"):
        bertlab.senses(tiny_bert, " ", ["the bank.", "a bank"])
    # "bank" inside "banker" is not the word bank:
    with pytest.raises(bertlab.TargetNotFoundError):
        bertlab.senses(tiny_bert, "ban", ["the bank.", "a bank"])


def test_precision_is_bfloat16_on_cuda_and_float32_elsewhere():
    from bertlab.loading import pick_dtype

    assert pick_dtype(torch.device("cuda")) == "bfloat16"
    assert pick_dtype(torch.device("cpu")) == "float32" and pick_dtype(torch.device("mps"), "auto") == "float32"
    assert pick_dtype(torch.device("cuda"), "float32") == "float32", "an explicit choice wins"
    with pytest.raises(bertlab.ModelLoadError, match="Unknown precision"):
        pick_dtype(torch.device("cpu"), "float8")
    assert bertlab.load_model("minilm", device="cpu").info.dtype == "float32"


def test_the_compiled_path_equals_eager_and_keeps_every_hook(tiny_bert_dir, tiny_bert):
    """BERTLAB_COMPILE: the hook-free parts of each layer (BERT's intermediate) run compiled by inductor; the
    analysis (attention, hidden states, MLM) and an intervention (a head ablated through its hook) equal eager
    within 1e-5, and a bad setting is refused by name."""
    from bertlab import compiled, experiments

    with pytest.raises(bertlab.InputError, match="Unknown compile setting"):
        compiled.setting("fast")
    assert compiled.setting("1") == "inductor" and compiled.setting("0") is None and compiled.setting(False) is None
    fast = bertlab.load_model(str(tiny_bert_dir), device="cpu", compile="inductor")
    assert fast.info.compiled == "inductor" and tiny_bert.info.compiled == ""
    assert compiled.hook_free(fast.layers[0], (p.path for p in fast.adapter.points.values())) == ["intermediate"]
    text = "the quick brown [MASK] jumps over the lazy dog."
    for loaded_pair in [(tiny_bert, fast)]:
        eager, fast_result = (bertlab.analyze(m, text) for m in loaded_pair)
        for kind in ("bidirectional", "causal"):
            a, b = eager.runs[kind], fast_result.runs[kind]
            assert np.abs(a.attentions.astype(np.float64) - b.attentions).max() < 1e-5
            assert np.abs(a.hidden_states - b.hidden_states).max() < 1e-5
        assert [p.token for p in eager.predictions(4)["bidirectional"]] == [p.token for p in fast_result.predictions(4)["bidirectional"]]
        assert abs(eager.predictions(4)["bidirectional"][0].prob - fast_result.predictions(4)["bidirectional"][0].prob) < 1e-5
    encoding = bertlab.encode(tiny_bert, text)
    ablated = [experiments.ablate(m, encoding, {(1, 2)}) for m in (tiny_bert, fast)]
    assert np.asarray(ablated[1].hidden_cosine).min() < 0.9999, "the ablation hook still runs on the compiled model"
    assert np.abs(np.asarray(ablated[0].hidden_cosine) - np.asarray(ablated[1].hidden_cosine)).max() < 1e-5
    assert fast.layers[0].intermediate.forward is not tiny_bert.layers[0].intermediate.forward


def test_head_statistics_wait_for_a_view_and_survive_compact(tiny_bert):
    """An analysis computes no head statistics until a view reads them; computed once, a compact (float16) copy
    keeps the full-precision values, and a copy compacted before reads values within float16's precision."""
    a = bertlab.analyze(tiny_bert, "the cat sat on the mat.")
    assert not a.bidirectional._stats
    before = {k: v.copy() for k, v in a.compact().bidirectional.head_stats.items()}  # from float16 weights
    full = a.bidirectional.head_stats
    assert set(full) == set(bertlab.HEAD_STATS)
    kept = a.compact().bidirectional.head_stats
    for name in full:
        assert np.array_equal(kept[name], full[name])
        assert np.allclose(before[name], full[name], atol=5e-3)


def test_models_loaded_at_once_in_several_threads_are_whole():
    """A server's sessions may load two models at the same moment: transformers builds modules on the meta device
    through a process-wide patch, so loads run one at a time (loading._LOADING). Without it this failed with
    "Cannot copy out of meta tensor" (not every run: a race)."""
    import threading

    errors, loaded = [], []

    def load(name: str) -> None:
        for _ in range(3):
            try:
                loaded.append(bertlab.load_model(name, device="cpu"))
            except Exception as err:  # noqa: BLE001  (any failure is the finding)
                errors.append(repr(err))

    threads = [threading.Thread(target=load, args=(name,)) for name in ("minilm", "minilm", "random:bert-mini", "random:roberta-base")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:2]
    assert len(loaded) == 12 and not any(p.is_meta for m in loaded for p in m.encoder.parameters())
