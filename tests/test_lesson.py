"""Issue 20, the lesson and the pages in AppTest: random weights serve one step only and every random-weights step
says so, "What to notice" is measured from what is drawn, the embedding check sees a planted mismatch, Experiments
and Compare have no dead ends."""

from __future__ import annotations

import re
import shutil

import numpy as np
import pytest

import bertlab
from bertlab import hooks, notice
from test_app import start, visit

LESSON = "pages/guided_lesson.py"


def _warnings(at) -> str:
    return " ".join(str(w.value) for w in at.main.warning)


def _notice(at) -> str:
    return next(str(i.value) for i in at.main.info if "What to notice" in str(i.value))


def _go(at, step: str):
    at.session_state["step"] = step
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_random_weights_serve_one_lesson_step_and_say_so():
    at = visit(start("minilm", text="I went to the [MASK] to deposit money.", pair="The bank was closed."), LESSON)
    at = _go(at, "Masked LM")
    assert "minilm** has no masked-LM head" in _warnings(at)
    at.toggle(key="lesson_random_mlm").set_value(True).run()
    assert not at.exception
    assert at.session_state["model"] == "minilm", "the sidebar's model (and the link's) stays"
    assert "random:bert-base (random weights, this step only)" in at.get("progress")[0].proto.text
    assert len(at.get("plotly_chart")) == 2, "the [MASK]'s guesses, under each mask"
    assert any("random:bert-base** has random weights" in c.value for c in at.main.caption)
    at.button(key="lesson_next").click().run()  # the next step: back on minilm
    assert "Step 6 of 9: Bidirectional vs causal · running minilm" == at.get("progress")[0].proto.text
    assert not [c for c in at.main.caption if "has random weights" in c.value]
    at = _go(at, "Next sentence")  # the other step with a head: its own offer, off until asked for
    assert "running minilm" in at.get("progress")[0].proto.text
    assert "minilm** has no next-sentence-prediction head" in _warnings(at)
    assert not at.get("plotly_chart") and not at.toggle(key="lesson_random_nsp").value
    at = _go(at, "Masked LM")


def test_every_step_on_random_weights_says_so_and_its_notice_holds_for_them():
    """A model with random weights in the sidebar: every step carries the caveat, and its notice quotes what its
    chart draws (the issue saw S1 vs S2 ≥ 0.99 under an unchanged "senses drift apart" text)."""
    at = visit(start("random:bert-mini", text="I went to the bank to deposit money.", pair="The bank was closed."), LESSON)
    for step in ("Tokens", "Three embeddings", "Attention", "Layers", "Masked LM", "Bidirectional vs causal", "BERT vs GPT",
                 "Word sense", "Next sentence"):
        at = _go(at, step)
        assert not at.error, (step, [e.value for e in at.error])
        assert any("random:bert-mini** has random weights" in c.value for c in at.main.caption), step
        if step == "Word sense":
            sense = bertlab.senses(bertlab.load_model("random:bert-mini", device="cpu"), "bank",
                                   ["I went to the bank to deposit money.", "I went to the bank to catch some fish.",
                                    "The river bank was very scenic."])
            said = _notice(at)
            assert f"bidirectional {sense.similarity['bidirectional'][-1, 0, 1]:.3f}" in said
            assert f"causal {sense.similarity['causal'][-1, 0, 1]:.3f}" in said
            assert "probe" in " ".join(i.value for i in at.main.info if "in the probe" in i.value)


def test_back_and_next_move_one_step(tiny_bert_dir):
    """Back and Next set the step through Session State (the server log's check that this draws no widget warning
    is in tests/test_classroom.py, on a real server: Streamlit logs it only there)."""
    at = visit(start(str(tiny_bert_dir)), LESSON)
    at.button(key="lesson_next").click().run()
    at.button(key="lesson_next").click().run()
    at.button(key="lesson_back").click().run()
    assert "Step 2 of 9: Three embeddings" in at.get("progress")[0].proto.text and not at.exception


def test_the_notices_quote_the_data_drawn(tiny_bert):
    from bertlab import inside

    result = bertlab.analyze(tiny_bert, "the cat sat on the mat.")
    e = result.embeddings
    said = notice.embeddings(result.tokens, e)
    position = np.linalg.norm(e.position, axis=-1)
    top = int(np.argmax(position))
    assert f"of “{result.tokens[top].text}” (position {top}) is the longest of its kind, {position[top]:.2f}" in said
    normed = np.linalg.norm(e.layernorm, axis=-1)
    assert f"after LayerNorm, {normed.min():.1f}–{normed.max():.1f}" in said
    assert "largest difference" not in said  # the check is not drawn: it is a caption of its own

    shares = inside.layer_steps(tiny_bert, result.encoding).shares()
    said = notice.layers(result.tokens, shares)
    ffn = shares["ffn"]
    layer, token = np.unravel_index(int(np.argmax(ffn)), ffn.shape)
    assert f"feed-forward: largest for “{result.tokens[token].text}” in layer {layer} ({ffn.max():.2f})" in said
    assert "0 (the sublayer adds nothing" in said and "to 1 (the update drowns it)" in said  # the whole colour bar

    distance = result.divergence()
    state, token = np.unravel_index(int(np.argmax(distance)), distance.shape)
    said = notice.masking(result.tokens, distance)
    assert f"darkest cell is “{result.tokens[token].text}”" in said and f"{distance.max():.3f}" in said

    said = notice.tokens(bertlab.encode(tiny_bert, "the cats sat."))
    assert "“cat ##s”" in said and "[CLS] at 0" in said


@pytest.fixture
def planted_mismatch(tiny_bert_dir, tmp_path, monkeypatch) -> str:
    """A checkpoint whose embedding layer adds 0.25 to its output after the LayerNorm (as a model with an extra
    embedding step would): LayerNorm(token + segment + position) no longer equals what the first layer gets."""
    directory = tmp_path / "odd-embeddings"
    shutil.copytree(tiny_bert_dir, directory)
    real = bertlab.load_model

    def load(name, *args, **kwargs):
        loaded = real(name, *args, **kwargs)
        if name == str(directory):  # the module whose output the first layer reads (bertlab.hooks names it)
            hooks.embedding_modules(loaded)["embed.out"].register_forward_hook(lambda module, inputs, output: output + 0.25)
        return loaded

    monkeypatch.setattr(bertlab, "load_model", load)
    return str(directory)


def test_the_embedding_check_warns_when_the_parts_do_not_add_up(planted_mismatch):
    at = start(planted_mismatch, text="the cat sat.")
    at.switch_page("pages/three_embeddings.py").run()
    assert not at.exception
    assert float(at.metric[0].value) == pytest.approx(0.25, abs=1e-3)
    assert any("differs from the model's own embedding output by up to 2.50e-01" in e.value for e in at.main.error)
    assert not at.success
    at.switch_page(LESSON).run()
    at = _go(at, "Three embeddings")
    assert any("differs from the model's own embedding output by up to 2.50e-01" in e.value for e in at.main.error)


def test_the_embedding_check_passes_an_honest_checkpoint(tiny_bert_dir):
    at = visit(start(str(tiny_bert_dir), text="the cat sat."), "pages/three_embeddings.py")
    assert float(at.metric[0].value) <= 1e-5 and at.success and not at.main.error


@pytest.mark.parametrize("experiment", ["Head importance", "Attribution"])
def test_experiments_on_a_model_without_an_mlm_head_offer_what_works(experiment):
    at = start("minilm", text="the man went to the [MASK] to buy milk.")
    at.session_state["experiment"] = experiment
    at = visit(at, "pages/run_experiments.py")
    assert "random:bert-base" in _warnings(at)
    assert at.get("download_button"), "the analysis JSON stays downloadable"
    at.button(key="use_mlm_mechanics").click().run()
    assert not at.exception and at.session_state["model"] == "random:bert-base"
    assert at.get("plotly_chart"), "the experiment runs"
    assert at.button(key="model_back").label == "Back to minilm"
    at.button(key="model_back").click().run()
    assert at.session_state["model"] == "minilm"


def test_experiments_without_a_mask_in_the_text_mask_a_token_of_it(tiny_bert_dir):
    at = start(str(tiny_bert_dir), text="the man went to the shop to buy milk.")
    at.session_state["experiment"] = "Head importance"
    at.session_state["exp_masked"] = 5  # "shop"
    at = visit(at, "pages/run_experiments.py")
    assert [c.proto.spec for c in at.get("plotly_chart") if "drop in log P" in c.proto.spec], "the importance grid"
    assert any("Top guess" in m.value for m in at.main.markdown)


def test_compare_defaults_to_a_second_model_that_differs_from_the_one_running(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    at = visit(start("bert-base-uncased"), "pages/compare_models.py")  # offline: MiniLM runs in its place
    assert at.session_state["model_b"] == "random:bert-base"
    assert not re.search(r"is (\S+) in minilm and \1 in minilm", " ".join(c.value for c in at.main.caption))
