"""Issue 15, the app as a class sees it: the running model named on every page, a truncated or long text
flagged on every page, an unknown model explained once (AppTest); a phone (390 × 844, touch) and a
projector (1280 × 720, presenter mode) in a real browser."""

from __future__ import annotations

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from test_app import APP, PAGES, start, visit
from labtools.server import wait_idle
from test_browser import open_page, shots  # noqa: F401  (shots: the screenshot folder fixture, BERTLAB_SCREENSHOTS)


def main_text(at: AppTest) -> str:
    """Everything the main area says (captions, markdown, alerts), not the sidebar."""
    parts = []
    for kind in ("caption", "markdown", "warning", "info", "error"):
        parts += [str(e.value) for e in getattr(at.main, kind)]
    return "\n".join(parts)


def test_the_offline_stand_in_is_named_at_the_top_of_every_page(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    at = start("bert-base-uncased")
    for page in PAGES:
        at = visit(at, page)
        assert "Model running: **minilm (offline stand-in for bert-base-uncased)**" in at.main.caption[0].value, page
        assert "6 layers" in at.main.caption[0].value
    lesson = main_text(visit(at, "pages/guided_lesson.py"))
    assert "12 layers" in lesson and "has 6 layers, hidden size 384" in lesson  # BERT-base's as reference, then this model's


def test_sizes_quote_the_running_model(minilm):
    at = visit(start("minilm"), "pages/attention_maps.py")
    assert "12 in BERT-base, 16 in BERT-large, 12 in the model running here (minilm)" in main_text(at)
    at = visit(at, "pages/residual_stream.py")
    assert f"3,072 in BERT-base, {minilm.info.intermediate_size:,} in the model running here" in main_text(at)


def test_a_truncated_text_is_flagged_on_every_page(tiny_bert_dir):
    long = "the cat sat on the mat. " * 120  # far more tokens than the tiny model's positions
    at = start(str(tiny_bert_dir), text=long)
    for page in PAGES:
        at = visit(at, page)
        cut = [w.value for w in at.main.warning if "cut short" in w.value]
        assert cut, page
        assert "tokens; BERT reads at most" in cut[0]
    assert any("link to this page carries all of them" in i.value for i in at.main.info)  # > 1,500 characters


def test_a_short_text_has_no_banners(tiny_bert_dir):
    at = visit(start(str(tiny_bert_dir), text="the cat sat."), PAGES[0])
    assert not [w for w in at.main.warning if "cut short" in w.value]
    assert not [i for i in at.main.info if "link to this page" in i.value]


@pytest.mark.parametrize(
    "name, says",
    [
        ("my-cool-model", "not a checkpoint bertlab knows"),
        ("bert-large-uncasedd", "Did you mean 'bert-large-uncased'"),
        ("robreta-base", "Did you mean 'roberta-base'"),
        ("gpt2", "cannot be loaded on this machine"),
        ("openai-community/gpt2", "cannot be loaded on this machine"),
        ("meta-llama/Llama-3.1-8B", "decoder"),
    ],
)
def test_an_unknown_model_is_explained_once_without_commands(name, says, monkeypatch):
    import bertlab.loading

    def no_network(*args, **kwargs):
        raise AssertionError("the network was asked")

    monkeypatch.setattr(bertlab.loading, "hub_reachable", no_network)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    at = start(name)
    for page in (None, "pages/attention_maps.py", "pages/guided_lesson.py"):
        if page:
            at.switch_page(page).run()
            assert not at.exception
        errors = [e.value for e in at.error]
        assert len(errors) == 1, (page, errors)  # once: not in the sidebar and again on the page
        assert says in errors[0] and name in errors[0]
        assert "prefetch" not in errors[0] and "python -m" not in errors[0]


# --- a real browser: a phone and a projector ---------------------------------------------------------------

LESSON_STEPS = ["Tokens", "Three embeddings", "Attention", "Layers", "Masked LM", "Bidirectional vs causal", "BERT vs GPT", "Word sense",
                "Next sentence"]
PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}
PROJECTOR = {"viewport": {"width": 1280, "height": 720}}
PHONE_PAGES = ["", "tokens", "embeddings", "masked-lm", "next-sentence", "attention", "head", "layers", "masking",
               "word-sense", "experiments", "compare"]


@pytest.fixture(scope="module")
def classroom(app_server, chromium):
    """A browser, the server's address, and a context factory (a phone or a projector) that allows no host but 127.0.0.1."""
    from playwright.sync_api import sync_playwright

    from labtools.server import FLAGS

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=FLAGS)
        contexts = []

        def new(device: dict):
            context = browser.new_context(**device)
            context.route("**/*", lambda route: route.continue_() if route.request.url.startswith(
                ("http://127.0.0.1", "data:", "blob:", "about:")) else route.abort())
            contexts.append(context)
            return context.new_page()

        yield app_server.url, new
        for context in contexts:
            context.close()
        browser.close()


def test_a_phone_sees_every_page_without_sideways_scrolling(classroom, shots, tmp_path_factory):
    """Every page on a phone: the running model named at the top, nothing wider than the screen, no toolbar over
    a chart, no chart title over its data, and no serious or critical axe-core violation (screenshots of every
    page go to a temporary folder; tests/test_browser.py runs the same checks on the views this visit skips)."""
    from test_browser import serious_axe_violations, titles_clear

    server, new = classroom
    pg = new(PHONE)
    shots.mkdir(parents=True, exist_ok=True)
    folder, problems = tmp_path_factory.mktemp("phone-pages"), []
    for path in PHONE_PAGES:
        open_page(pg, f"{server}/{path}?model=bert-base-uncased&text=The+river+bank+was+very+scenic.")
        titles_clear(pg, f"phone /{path}")
        problems += [f"/{path}: {v}" for v in serious_axe_violations(pg)]
        pg.screenshot(path=str(folder / f"{path or 'lesson'}.png"))
        banner = pg.locator("[data-testid=stMain]").get_by_text("Model running:")
        banner.first.wait_for(state="visible", timeout=30_000)
        assert "minilm (offline stand-in for bert-base-uncased)" in banner.first.inner_text(), path
        assert pg.get_by_text("Loading BERT…").count() == 0, path  # the first paint's message is gone
        width = pg.evaluate("() => document.documentElement.scrollWidth")
        assert width <= 390, f"/{path} is {width} px wide on a 390-px phone"
        # the toolbar does not cover chart titles on a touch screen
        for toolbar in pg.locator(".js-plotly-plot .modebar-container").all():
            assert not toolbar.is_visible(), path
        if path == "attention":  # every View option can be tapped without scrolling sideways
            for option in ("Heatmap", "Head view", "Model view", "All heads", "Statistics", "Rollout"):
                box = pg.locator("[data-testid=stButtonGroup] button", has_text=option).first.bounding_box()
                assert box and 0 <= box["x"] and box["x"] + box["width"] <= 390, option
            pg.screenshot(path=str(shots / "11-phone-attention.png"))
        if path == "":
            pg.screenshot(path=str(shots / "12-phone-lesson.png"))
    assert not problems, problems
    # the model view is wider than a phone and scrolls sideways inside its frame: the page says so (there only)
    open_page(pg, f"{server}/attention?model=minilm&view=Model+view")
    assert pg.get_by_text("swipe sideways inside it").first.is_visible()


VISIBLE_X_LABELS = """() => {
  const chart = document.querySelector('[data-testid=stMain] .js-plotly-plot');
  const ticks = [...chart.querySelectorAll('.xaxislayer-above > g')];
  // a label rotated about its end: the right edge of its box is where it meets its tick
  return [ticks.length, ticks.filter(g => getComputedStyle(g).display !== 'none').map(g => g.getBoundingClientRect().right)];
}"""


def test_a_long_text_on_a_phone_has_token_labels_that_do_not_overlap(classroom, shots):
    server, new = classroom
    pg = new(PHONE)
    text = "+".join(["the", "river", "bank", "was", "very", "scenic", "and", "we", "walked", "along", "it."] * 50)
    open_page(pg, f"{server}/attention?model=bert-base-uncased&text={text}")
    pg.locator("[data-testid=stMain] .js-plotly-plot").first.wait_for(state="visible", timeout=60_000)
    assert pg.get_by_text("The charts below show positions 0–39 of 512 tokens").count() == 1
    count, anchors = pg.evaluate(VISIBLE_X_LABELS)
    assert count == 40 and 10 <= len(anchors) < count  # a third of the window's labels on a phone
    gaps = [b - a for a, b in zip(anchors, anchors[1:])]
    assert min(gaps) >= 13, gaps  # 12-px text turned 60°: 13 px apart, neighbours do not touch
    assert pg.evaluate("() => document.documentElement.scrollWidth") <= 390
    pg.locator("[data-testid=stMain] .js-plotly-plot").first.scroll_into_view_if_needed()
    pg.screenshot(path=str(shots / "14-phone-long-text.png"))


BANNER_SEEN = """() => {
  const line = [...document.querySelectorAll('[data-testid=stCaptionContainer]')].find(e => e.innerText.includes('Model running'));
  const box = line.getBoundingClientRect();
  return box.top >= 0 && line.contains(document.elementFromPoint(box.left + 8, box.top + box.height / 2));
}"""


STEP_IN_VIEW = """(title) => {
  const bar = [...document.querySelectorAll('[data-testid=stProgress]')].find(e => e.innerText.includes(title));
  if (!bar) return false;
  const label = [...bar.querySelectorAll('p, div')].find(e => e.innerText.trim().startsWith(title) && !e.querySelector('p, div'));
  if (!label) return false;
  const box = label.getBoundingClientRect();
  // on the screen, and not under Streamlit's fixed header: the title is what is drawn at its own centre
  const seen = document.elementFromPoint(box.left + 4, box.top + box.height / 2);
  return box.top >= 0 && box.bottom <= window.innerHeight && label.contains(seen);
}"""

MAIN_CHART = """() => {
  // the step's main chart (pages/guided_lesson.py puts it in the container keyed lesson_main): a drawn plotly
  // chart, an image or the token chips; where its top is on the screen, or null while it is not drawn
  const main = document.querySelector('.st-key-lesson_main');
  if (!main) return null;
  const chart = [...main.querySelectorAll('.js-plotly-plot, [data-testid=stImage] img, .chips')]
    .find(e => !e.classList.contains('js-plotly-plot') || e.querySelector('.main-svg'));
  return chart ? chart.getBoundingClientRect().top : null;
}"""

NAMED_ON_SCREEN = """(name) => {
  // a line on the first screen, not under the fixed header, that names the running model
  return [...document.querySelectorAll('[data-testid=stCaptionContainer] p, [data-testid=stProgress] p')].some(e => {
    if (!e.innerText.includes(name)) return false;
    const box = e.getBoundingClientRect();
    const seen = document.elementFromPoint(box.left + 4, box.top + box.height / 2);
    return box.top >= 0 && box.bottom <= window.innerHeight && e.contains(seen);
  });
}"""

MIN_SHOWN = 150
"""Of each step's main chart, at least this many pixels are on the projector's first screen (720 px)."""


def test_a_projector_shows_every_lesson_steps_chart_and_model_on_the_first_screen(classroom, app_server, tmp_path_factory, shots):
    """Presenter mode on a 1280 × 720 projector, stepping with Next as a teacher does: every step's title, its
    main chart (starting at least MIN_SHOWN px above the bottom of the screen, never below it) and a line naming
    the model that runs are on the first screen, and no chart title lies over its data. The steps that need a
    head MiniLM lacks run on random weights for that step only (the switch on the step), named as such."""
    from test_browser import titles_clear

    steps = LESSON_STEPS
    server, new = classroom
    pg = new(PROJECTOR)
    folder = tmp_path_factory.mktemp("projector-lesson")
    open_page(pg, f"{server}/?model=minilm&present=true&text=I+went+to+the+bank+to+buy+a+%5BMASK%5D.&pair=It+was+closed.")
    assert pg.evaluate(BANNER_SEEN), "the line naming the running model is hidden under the toolbar"
    for number, step in enumerate(steps, start=1):
        title = f"Step {number} of {len(steps)}: {step}"
        try:
            pg.wait_for_function(STEP_IN_VIEW, arg=title, timeout=120_000)
        except Exception:
            where = pg.evaluate("() => [...document.querySelectorAll('[data-testid=stProgress]')].map("
                                "e => [e.innerText, e.getBoundingClientRect().top])")
            pytest.fail(f"'{title}' is not on the first screen: {where}")
        wait_idle(pg)  # a click on the last run's button while this one still draws would replay that step
        model = "minilm"
        if step in ("Masked LM", "Next sentence"):  # MiniLM has neither head: random weights, for this step only
            pg.get_by_text("Run this step on random:bert-base").click()
            pg.wait_for_function(STEP_IN_VIEW, arg=f"{title} · running random:bert-base (random weights, this step only)",
                                 timeout=120_000)
            wait_idle(pg)
            model = "random:bert-base"
        try:
            pg.wait_for_function(f"() => {{ const top = ({MAIN_CHART})(); return top !== null && top <= {720 - MIN_SHOWN}; }}",
                                 timeout=60_000)
        except Exception:
            pg.screenshot(path=str(folder / f"{number}-{step.lower().replace(' ', '-')}-failed.png"))
            pytest.fail(f"{step}: the main chart starts at {pg.evaluate(MAIN_CHART)} px on a 720-px screen (screenshot in {folder})")
        assert pg.evaluate(NAMED_ON_SCREEN, model), f"{step}: no line on the first screen names {model}"
        titles_clear(pg, f"projector, lesson step {step}")
        pg.screenshot(path=str(folder / f"{number}-{step.lower().replace(' ', '-')}.png"))
        if number == 4:
            shots.mkdir(parents=True, exist_ok=True)
            pg.screenshot(path=str(shots / "13-projector-lesson.png"))
        if number < len(steps):
            pg.get_by_role("button", name="Next →").first.click()
    # Next sets the step through Session State: a widget with a default of its own would have Streamlit log a
    # warning with a stack trace (issue 20 saw it from the lesson)
    assert "Session State API" not in app_server.log.read_text()


def test_lesson_is_a_link_of_its_own(classroom):
    """/lesson opens the lesson (every page has a name; the default page is also served at /), with no "Page not
    found" dialog, keeping the link's step."""
    server, new = classroom
    pg = new(PROJECTOR)
    open_page(pg, f"{server}/lesson?model=minilm&step=Layers")  # fails on a dialog
    pg.wait_for_function(STEP_IN_VIEW, arg="Step 4 of 9: Layers", timeout=60_000)
    assert "/lesson" in pg.url


def test_one_layer_numbering_with_every_row_labelled(tiny_bert):
    import bertlab
    from bertlab import figures

    result = bertlab.analyze(tiny_bert, "the cat sat.")
    layers = tiny_bert.info.layers
    divergence = figures.divergence_heatmap(result.tokens, result.divergence())
    assert list(divergence.data[0].y) == list(range(layers + 1)) == list(divergence.layout.yaxis.tickvals)
    assert list(divergence.layout.yaxis.ticktext) == ["embeddings"] + [str(i) for i in range(layers)]  # blocks 0..L-1
    change = figures.layer_change_heatmap(result.tokens, result.bidirectional.layer_change())
    assert list(change.layout.yaxis.ticktext) == [str(i) for i in range(layers)]
    # every chart over hidden states: numeric values (plotly would drop 'embeddings' from a mix of words and
    # digit strings) labelled with the same numbering
    lens = figures.logit_lens_chart(bertlab.logit_lens(tiny_bert, bertlab.analyze(tiny_bert, "the [MASK] sat."), 2), "x")
    sense = bertlab.senses(tiny_bert, "cat", ["the cat sat.", "a cat ran."])
    for axis in (lens.layout.yaxis, figures.similarity_by_layer(sense, 0, 1).layout.xaxis,
                 figures.word_cosine_by_layer(np.ones(layers + 1), "cat", ("a", "b"), "causal").layout.xaxis):
        assert list(axis.tickvals) == list(range(layers + 1))
        assert list(axis.ticktext) == ["embeddings"] + [str(i) for i in range(layers)]
        assert axis.title.text == "after layer"


WINDOW_PAGES = ["pages/attention_maps.py", "pages/bidirectional_vs_causal.py", "pages/three_embeddings.py", "pages/inside_a_head.py", "pages/residual_stream.py",
                "pages/run_experiments.py", "pages/masked_lm.py"]
LONG = "the cat sat on the mat. " * 12  # 64 tokens on the tiny model (its every position), as 512 on BERT-base


def _token_ticks(at: AppTest) -> set[int]:
    """Every position labelled on a token axis of the page's charts; hidden-state axes (embeddings, 0, 1, ...) and
    the value mixture's numbered rows are not token axes."""
    import json

    ticks: set[int] = set()
    for chart in at.get("plotly_chart"):
        if chart.proto.id.endswith("trained_decoder"):  # GPT-2's own tokens, in a window of their own (b_positions_from)
            continue
        layout = json.loads(chart.proto.spec)["layout"]
        for name, axis in layout.items():
            if name.startswith(("xaxis", "yaxis")) and isinstance(axis, dict) and "ticktext" in axis \
                    and "= output" not in axis["ticktext"] and "embeddings" not in axis["ticktext"]:
                ticks |= set(axis["tickvals"])
    return ticks


def _long_text_app(tiny_bert_dir) -> AppTest:
    at = start(str(tiny_bert_dir), text=LONG)
    at.session_state["heads"] = ["1.0"]  # the experiment: remove a head, then its effect is drawn per token
    at.session_state["mask_each"] = True  # Masked LM's per-token chart
    return at


def test_a_long_text_is_drawn_through_a_window_of_positions(tiny_bert_dir):
    """Every page with token charts draws positions 0-39 first, and the window (in the URL) moves every token
    axis to the chosen positions, labelled with their real numbers."""
    at = _long_text_app(tiny_bert_dir)
    for page in WINDOW_PAGES:
        at = visit(at, page)
        assert at.slider(key="positions_from").value == 0, page
        ticks = _token_ticks(at)
        assert ticks and max(ticks) <= 39, page
        at.slider(key="positions_from").set_value(20).run()
        assert not at.exception and not at.error, page
        ticks = _token_ticks(at)
        assert ticks and min(ticks) >= 20 and max(ticks) >= 40, page  # positions 20-59, not 0-39 renumbered
        at.button(key="positions_from_back").click().run()  # ◀ steps back a whole window, to the start
        assert at.slider(key="positions_from").value == 0, page
        at.session_state["positions_from"] = 0


def test_a_window_keeps_choices_outside_it_and_survives_a_shorter_text(tiny_bert_dir):
    at = _long_text_app(tiny_bert_dir)
    at.session_state["experiment"] = "Knock out attention"
    at.session_state["ko_query"], at.session_state["ko_keys"] = 2, [3, 5]
    at = visit(at, "pages/run_experiments.py")
    at.slider(key="positions_from").set_value(24).run()  # the keys and the query are now outside the window
    assert not at.exception and not at.error
    assert at.session_state["ko_keys"] == [3, 5] and at.session_state["ko_query"] == 2  # the experiment is kept
    assert any("blocking 2 edge" in c.proto.spec for c in at.get("plotly_chart"))
    at.segmented_control(key="positions_shown").set_value(80).run()  # wider than this text: the widest it has is 40
    assert not at.exception
    at.session_state["text"] = "the cat sat on the mat. " * 8  # 58 tokens: position 24 is past the last start (18)
    at.run()
    assert not at.exception and not at.error
    slider = at.slider(key="positions_from")
    assert slider.max == 18 and slider.value == 18


def test_a_short_text_has_no_window(tiny_bert_dir):
    at = start(str(tiny_bert_dir), text="the cat sat on the mat.")
    for page in WINDOW_PAGES:
        at = visit(at, page)
        assert not [s for s in at.slider if s.key == "positions_from"], page


@pytest.mark.parametrize("page, head", [("pages/masked_lm.py", "masked-LM head"), ("pages/next_sentence.py", "next-sentence-prediction head")])
def test_offline_the_pretraining_pages_say_what_cannot_load_and_offer_what_works(page, head, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    at = visit(start("bert-base-uncased", text="I have a [MASK].", pair="the pen is red."), page)
    warning = [w.value for w in at.main.warning if head in w.value]
    assert len(warning) == 1
    assert "bert-base-uncased cannot be loaded on this machine" in warning[0] and "minilm" in warning[0]
    assert "random:bert-base" in warning[0] and "prefetch" not in warning[0] and "python -m" not in warning[0]
    at.button(key=f"use_{'mlm' if 'masked' in head else 'nsp'}_mechanics").click().run()
    assert not at.exception and at.session_state["model"] == "random:bert-base"
    assert at.query_params["model"] == ["random:bert-base"] or at.query_params["model"] == "random:bert-base"  # a link that loads
    assert any("has random weights" in c.value for c in at.main.caption)  # under the predictions: they mean nothing
    assert "random:bert-base (random weights)" in at.main.caption[0].value  # the banner names what runs
    assert not [w for w in at.main.warning if head in w.value]
    assert len(at.get("plotly_chart")) >= 2  # predictions (MLM: top-k and logit lens; NSP: yours and a random one)


def test_next_sentence_scores_yours_beside_a_random_one_from_one_link(tiny_bert_dir):
    from bertlab import nsp

    at = visit(start(str(tiny_bert_dir), text="the cat sat.", pair="the dog sat."), "pages/next_sentence.py")
    quotes = [m.value for m in at.main.markdown if m.value.startswith("> ")]
    other = nsp.random_sentence(avoid=["the cat sat.", "the dog sat."], seed=0)
    assert quotes == ["> the dog sat.", f"> {other}"]
    assert [m.label for m in at.metric] == ["P(IsNext)", "P(IsNext)"]
    at.button(key="another_random").click().run()
    assert at.number_input(key="random").value == 1
    assert [m.value for m in at.main.markdown if m.value.startswith("> ")][1] == "> " + nsp.random_sentence(
        avoid=["the cat sat.", "the dog sat."], seed=1)


def test_what_to_notice_is_measured_on_the_data_shown(tiny_bert_dir, tiny_bert):
    """Texts that claim something about the chart compute it from the data on screen (issue 15, item 6)."""
    import bertlab
    from bertlab import inside

    text = "the cat sat on the mat."
    result = bertlab.analyze(tiny_bert, text)
    at = visit(start(str(tiny_bert_dir), text=text), "pages/three_embeddings.py")
    summed = np.linalg.norm(result.embeddings.sum, axis=-1)
    normed = np.linalg.norm(result.embeddings.layernorm, axis=-1)
    assert any(f"‖sum‖ ranges from {summed.min():.1f} to {summed.max():.1f}" in c.value
               and f"‖LayerNorm(sum)‖ from {normed.min():.1f} to {normed.max():.1f}" in c.value for c in at.main.caption)
    assert "every token's vector has a similar scale" not in main_text(at)
    at.session_state["layer"], at.session_state["head"], at.session_state["query"] = 1, 2, 3
    at = visit(at, "pages/inside_a_head.py")
    weights = inside.head_steps(tiny_bert, result, 1, 2, 3).weights
    top = np.sort(weights)[::-1]
    assert any(f"takes {top[0]:.0%} of the row and the 3 largest {top[:3].sum():.0%}" in c.value for c in at.main.caption)


def test_the_probe_describes_what_its_curve_shows():
    from bertlab.corpus import Probe

    def probe(bidirectional, causal):
        return Probe("m", "c", {"bidirectional": np.array(bidirectional), "causal": np.array(causal)}, 0.5, 10, {})

    said = probe([0.4, 0.7, 0.9, 0.8], [0.4, 0.5, 0.6, 0.55]).describe()
    assert "at the embeddings the probe is right 40%" in said and "against 50%" in said
    assert "bidirectionally it is best after layer 1 (90%)" in said and "causally it is best after layer 1 (60%)" in said
    flat = probe([0.5, 0.5, 0.4], [0.5, 0.3, 0.3]).describe()  # random weights: nothing separates
    assert "bidirectionally no layer beats the embeddings" in flat
