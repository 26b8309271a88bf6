"""A real browser against a real `streamlit run`: every page draws, offline, and a screenshot of each.

Debian's Chromium is driven by the PyPI `playwright` package (never `playwright install`). Any request
to a host other than 127.0.0.1 fails the test. Every wait is for a condition on the page, never a fixed time.
Screenshots go to a temporary folder; `./lab screenshots` runs this file with BERTLAB_SCREENSHOTS=docs/screenshots
to refresh the ones README shows.
"""

from __future__ import annotations

import math
import os
import urllib.parse
from pathlib import Path

import pytest

from labtools.server import FLAGS, wait_idle


@pytest.fixture(scope="module")
def server(app_server) -> str:
    return app_server.url


@pytest.fixture(scope="module")
def browser(chromium):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=FLAGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    """Where screenshots go: a temporary folder, or BERTLAB_SCREENSHOTS (README's docs/screenshots)."""
    folder = os.environ.get("BERTLAB_SCREENSHOTS")
    return Path(folder) if folder else tmp_path_factory.mktemp("screenshots")


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1100})
    pg = context.new_page()
    outside: list[str] = []

    def guard(route):
        host = urllib.parse.urlparse(route.request.url).hostname
        if route.request.url.startswith(("data:", "blob:", "about:")) or host == "127.0.0.1":
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    context.route("**/*", guard)
    pg.outside = outside
    yield pg
    context.close()
    assert not outside, f"the page asked hosts other than 127.0.0.1: {outside[:5]}"


def open_page(pg, url: str) -> None:
    pg.goto(url)
    wait_idle(pg, 90_000)
    assert pg.locator("[data-testid=stException]").count() == 0
    assert pg.locator("[data-testid=stDialog]").count() == 0, pg.locator("[data-testid=stDialog]").inner_text()


@pytest.fixture
def shot(shots):
    def take(pg, name: str) -> None:
        shots.mkdir(parents=True, exist_ok=True)
        pg.screenshot(path=str(shots / f"{name}.png"))

    return take


def plots(pg, at_least: int) -> None:
    """Wait for `at_least` drawn plotly charts (each holds two .main-svg layers: count charts, not layers)."""
    pg.wait_for_function(f"() => [...document.querySelectorAll('.js-plotly-plot')].filter(p => p.querySelector('.main-svg')).length >= {at_least}",
                         timeout=60_000)


def visible(pg, text: str) -> bool:
    pg.get_by_text(text).first.wait_for(state="visible", timeout=30_000)
    return True


def q(**params: str) -> str:
    return "?" + urllib.parse.urlencode(params)


@pytest.fixture(scope="module")
def tiny(tiny_bert_dir) -> str:
    return str(tiny_bert_dir)


def test_tokenization(server, page, shot):
    open_page(page, f"{server}/tokens" + q(model="minilm", text="Tokenization is unbelievably fun ☃", pair="the pen is red"))
    chips = page.locator(".chips .chip")
    assert chips.count() >= 10
    assert chips.first.inner_text().startswith("[CLS]")
    assert page.locator(".chips .chip.cont").count() >= 1 and page.locator(".chips .chip.seg1").count() >= 4
    assert page.locator(".chips .chip.unk").count() == 1
    shot(page, "1-tokenization")


def test_embeddings(server, page, shot):
    open_page(page, f"{server}/embeddings" + q(model="minilm"))
    plots(page, 2)
    assert visible(page, "The parts add up to exactly what the model feeds its first layer")
    shot(page, "2-embeddings")


def test_attention_bertviz_draws_offline(server, page, shot):
    text = "The cat sat on the mat because it was tired."
    open_page(page, f"{server}/attention" + q(model="minilm", text=text, view="Head view", layer="2"))
    frame = page.frame_locator("iframe").first
    frame.locator("svg line").first.wait_for(state="attached", timeout=30_000)
    assert frame.locator("svg line").count() > 100
    assert frame.get_by_text("[CLS]").first.is_visible()
    # one layer control on the page: the slider (layer 2 from the link); bertviz's one-choice menu is hidden
    assert frame.locator("select#layer").count() == 1 and not frame.locator("select#layer").is_visible()
    assert page.get_by_text("bertviz head view of layer 2").count() == 1
    shot(page, "3-attention")
    open_page(page, f"{server}/attention" + q(model="minilm", text=text, view="Model view"))
    frame = page.frame_locator("iframe").first
    frame.locator("svg line").first.wait_for(state="attached", timeout=30_000)
    assert frame.locator("svg line").count() > 1000
    assert not page.get_by_text("swipe sideways inside it").first.is_visible(), "the phone's hint, not a laptop's"


@pytest.mark.parametrize("view, check", [("Heatmap", "plot"), ("All heads", "img"), ("Statistics", "plot"), ("Rollout", "plot")])
def test_attention_views(server, page, view, check):
    open_page(page, f"{server}/attention" + q(model="minilm", text="The cat sat on the mat.", view=view))
    if check == "plot":
        plots(page, 1)
    else:
        page.locator("[data-testid=stImage] img").first.wait_for(state="visible", timeout=30_000)


def test_masked_lm(server, page, shot):
    # random weights with BERT's vocabulary: offline there is no pretrained MLM head, and the page says so
    open_page(page, f"{server}/masked-lm" + q(model="random:bert-mini", text="the quick brown [MASK] jumps over the lazy dog."))
    plots(page, 2)
    assert visible(page, "[MASK] at position 4")
    shot(page, "4-masked-lm")


def test_masked_lm_explains_missing_head(server, page):
    open_page(page, f"{server}/masked-lm" + q(model="minilm"))
    assert visible(page, "has no masked-LM head")


def test_bidirectional_vs_causal(server, page, shot):
    open_page(page, f"{server}/masking" + q(model="minilm", text="I went to the bank to deposit money."))
    plots(page, 5)
    assert visible(page, "causal mask: may query attend to key?")
    shot(page, "5-bidirectional-vs-causal")


def test_word_sense(server, page, shot):
    open_page(page, f"{server}/word-sense" + q(model="minilm"))
    plots(page, 4)
    assert visible(page, "causal: cosine similarity of 'bank'")
    shot(page, "6-word-sense")


def test_next_sentence(server, page, shot):
    open_page(page, f"{server}/next-sentence" + q(model="random:bert-mini", text="i have a pen", pair="the pen is red"))
    plots(page, 2)  # your second sentence and a random one, side by side
    assert page.get_by_text("P(IsNext)").count() == 2
    assert visible(page, "A random sentence")
    shot(page, "7-next-sentence")


def test_inside_a_head(server, page, shot):
    text = "The bank was robbed yesterday."
    open_page(page, f"{server}/head" + q(model="minilm", text=text, layer="3", head="5", query="robbed", mask="causal"))
    plots(page, 4)
    assert visible(page, "key(s) are blocked by the causal mask")
    assert page.locator("[aria-label='Query token (tap one)'] [aria-checked=true]").inner_text().strip() == "robbed", "the URL picks the query token"
    shot(page, "11-inside-a-head")


def test_layers_and_residual_stream(server, page, shot):
    open_page(page, f"{server}/layers" + q(model="minilm", text="The bank was robbed yesterday.", token="bank"))
    plots(page, 3)
    assert visible(page, "Checked against the model")
    shot(page, "12-layers")


def test_experiments_replay_from_a_link(server, page, shot):
    text = "the man went to the [MASK] to buy milk ."
    open_page(page, f"{server}/experiments" + q(model="random:bert-mini", text=text, experiment="Ablate heads") + "&heads=1.2&heads=0.1")
    plots(page, 4)
    assert visible(page, "how far removing 2 head(s) moved each token")
    shot(page, "13-experiments")
    open_page(page, f"{server}/experiments" + q(model="random:bert-mini", text=text, experiment="Attribution"))
    plots(page, 1)
    assert visible(page, "Completeness")


def test_link_reproduces_the_view(server, page):
    url = f"{server}/attention" + q(model="minilm", text="A shared link.", layer="3", head="5", mask="causal")
    open_page(page, url)
    assert visible(page, "layer 3, head 5 (causal)")
    from playwright.sync_api import expect

    # a condition, not a read: the sidebar's text box may be redrawn by the run that drew the heatmap
    expect(page.locator("textarea").first).to_have_value("A shared link.", timeout=30_000)


INJECTED = "img[src=x], b:has-text('bold'), tspan[style*='bold']:has-text('bold')"
"""What the typed HTML would create if it were rendered as HTML (plotly draws <b> as a bold tspan)."""


def test_html_typed_by_a_user_never_runs(server, page):
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    evil = '<img src=x onerror="alert(1)"> <script>alert(2)</script> <b>bold</b> cat'

    def drawn_as_text(path: str):
        """Wait until the view shows the typed text's tokens (or the text itself), so the check below sees it."""
        if path == "tokens":
            page.locator(".chips .chip", has_text="script").first.wait_for(timeout=30_000)
        elif path == "head view":
            page.frame_locator("iframe").first.locator("svg text", has_text="script").first.wait_for(timeout=30_000)
        elif path == "word-sense":  # the sentence itself is shown back, whole, under the sentences box
            page.locator("[data-testid=stCaptionContainer]", has_text=evil).first.wait_for(timeout=30_000)
        else:
            page.locator(".js-plotly-plot .xtick text", has_text="script").first.wait_for(timeout=30_000)

    for path, extra in (("tokens", {}), ("attention", {"view": "Head view"}), ("attention", {"view": "Heatmap"}),
                        ("masking", {}), ("word-sense", {"target": "cat", "sentences": f"{evil}\nthe cat sat."})):
        open_page(page, f"{server}/{path}" + q(model="minilm", text=evil, **extra))
        drawn_as_text("head view" if extra.get("view") == "Head view" else path)
        for frame in page.frames:
            assert frame.locator(INJECTED).count() == 0, (path, frame.url)
    assert dialogs == []


def test_exports_are_valid_files(server, page, tiny, tmp_path, reference):
    import json as jsonlib

    open_page(page, f"{server}/masked-lm" + q(model=tiny, text="the quick brown [MASK] jumps."))
    plots(page, 2)
    chart = page.locator(".js-plotly-plot").first
    chart.hover()
    with page.expect_download() as png:
        page.locator(".modebar-btn[data-title='Download plot as a PNG']").first.click()
    png_path = tmp_path / "chart.png"
    png.value.save_as(png_path)
    assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with page.expect_download() as exported:
        page.get_by_role("button", name="Download this analysis (JSON)").click()
    data = jsonlib.loads(Path(exported.value.path()).read_text())
    expected = reference("the quick brown [MASK] jumps.")  # the tokenizer and a fresh full model, not bertlab
    assert [(t["text"], t["id"]) for t in data["tokens"]] == [(t["text"], t["id"]) for t in expected["tokens"]]
    assert [m["position"] for m in data["mlm"]] == [m["position"] for m in expected["mlm"]] == [4]
    got, want = data["mlm"][0]["bidirectional"], expected["mlm"][0]["bidirectional"]
    assert [p["token"] for p in got] == [p["token"] for p in want]
    assert [p["prob"] for p in got] == pytest.approx([p["prob"] for p in want], abs=1e-4)
    with page.expect_download() as html_file:
        page.get_by_role("button", name="HTML").first.click()
    body = Path(html_file.value.path()).read_text()
    assert "<html" in body and "Plotly.newPlot" in body and '<script src="http' not in body


def test_lesson_link_round_trips(server, page, shot):
    open_page(page, f"{server}/" + q(model="minilm", step="Word sense"))
    assert visible(page, "Step 8 of 9: Word sense")
    page.get_by_role("button", name="Next →").click()
    assert visible(page, "Step 9 of 9: Next sentence")
    page.wait_for_function("() => location.search.includes('step=Next')", timeout=30_000)
    assert visible(page, "next sentence prediction")
    wait_idle(page)
    shot(page, "8-lesson")


def test_presenter_mode(server, page, shot):
    open_page(page, f"{server}/" + q(model="minilm", present="true"))
    # the presenter style applies to the title: large type (Streamlit's own h1 is 44 px)
    page.wait_for_function("() => parseFloat(getComputedStyle(document.querySelector('h1')).fontSize) >= 48", timeout=30_000)
    shot(page, "9-presenter-mode")


def test_table_downloads_as_csv(server, page, tmp_path):
    import pandas as pd

    # Streamlit saves through the File System Access picker where Chromium offers one; headless, take the
    # ordinary download it falls back to.
    page.add_init_script("delete window.showSaveFilePicker")
    open_page(page, f"{server}/tokens" + q(model="minilm", text="the cats sat, unbelievably."))
    table = page.locator("[data-testid=stDataFrame]").first
    table.hover()
    with page.expect_download() as csv:
        page.get_by_role("button", name="Download as CSV").first.click()
    frame = pd.read_csv(csv.value.path())
    assert list(frame["piece"])[:3] == ["[CLS]", "the", "cats"] and list(frame["piece"])[-1] == "[SEP]"


def test_all_heads_image_is_a_png_and_downloads_on_click(server, page):
    png_magic = b"\x89PNG\r\n\x1a\n"
    fetched: list[bytes] = []
    page.on("response", lambda r: fetched.append(r.body()[:8]) if "/media/" in r.url and "/static/" not in r.url else None)
    open_page(page, f"{server}/attention" + q(model="minilm", text="The cat sat on the mat.", view="All heads"))
    page.locator("[data-testid=stImage] img").first.wait_for(state="visible", timeout=30_000)
    assert fetched == [png_magic], "one image, shown as PNG; the download travels only when asked for"
    with page.expect_download() as png:
        page.get_by_role("button", name="PNG").first.click()
    assert Path(png.value.path()).read_bytes()[:8] == png_magic


def test_bench_app_figures_are_sane(server, browser):
    """The bench's browser figures, measured small on this server: bytes received per view, typing latency."""
    from labtools.appbench import measure_browser

    data = measure_browser("random:bert-tiny", url=server, browser=browser, tokens=(16,), views=("Heatmap", "All heads"), repeats=1)
    by_view = data["p3_bytes_by_view"][16]
    assert set(by_view) == {"Heatmap", "All heads"} and all(n > 1000 for n in by_view.values()), by_view
    assert data["p3_bytes_16"] == max(by_view.values())
    assert math.isfinite(data["p5_seconds"]) and data["p5_seconds"] > 0


# --- issue 20: every chart's title off its data, on every page and screen; axe-core on every page -----------------

SCREENS = {
    "laptop": {"viewport": {"width": 1400, "height": 1100}},
    "phone": {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True},
    "projector": {"viewport": {"width": 1280, "height": 720}},
}
MLM_TEXT = "the man went to the [MASK] to buy milk ."
VIEWS = {
    # every page, and the variants that draw other charts (lesson steps: tests/test_classroom.py, on the projector)
    "lesson-layers": "/?step=Layers",
    "lesson-word-sense": "/?step=Word+sense",
    "tokens": "/tokens",
    "embeddings": "/embeddings",
    "masked-lm": "/masked-lm" + q(model="random:bert-mini", text=MLM_TEXT, mask_each="true"),
    "next-sentence": "/next-sentence" + q(model="random:bert-mini", text="i have a pen", pair="the pen is red"),
    "attention": "/attention",
    "attention-statistics": "/attention?view=Statistics",
    "attention-rollout": "/attention?view=Rollout",
    "head": "/head",
    "layers": "/layers",
    "masking": "/masking",
    "word-sense": "/word-sense",
    "experiments": "/experiments" + q(model="random:bert-mini", text=MLM_TEXT) + "&heads=1.2&heads=0.1",
    "experiments-importance": "/experiments" + q(model="random:bert-mini", text=MLM_TEXT, experiment="Head importance"),
    "compare": "/compare",
}
OVERLAPS = """() => {
  // Every drawn plotly chart in the page's main area: its title's box against each plot area (the drag
  // rectangle of each subplot) and each subplot title, subplot titles against plot areas and each other, and
  // the title against the chart's own edges (plotly cuts what sticks out). More than 2 px is an overlap.
  const box = e => { const r = e.getBoundingClientRect(); return {l: r.left, t: r.top, r: r.right, b: r.bottom}; };
  const across = (a, b) => Math.min(Math.min(a.r, b.r) - Math.max(a.l, b.l), Math.min(a.b, b.b) - Math.max(a.t, b.t));
  const holders = [...document.querySelectorAll('[data-testid=stMain] [data-testid=stPlotlyChart]')];
  const bad = [];
  let drawn = 0;
  for (const holder of holders) {
    const plot = holder.querySelector('.js-plotly-plot');
    if (!plot || !plot.querySelector('.main-svg') || !plot._fullLayout) continue;
    drawn++;
    const name = (plot.querySelector('.gtitle') || {}).textContent || (plot.querySelector('.annotation') || {}).textContent || '(untitled)';
    const areas = [...plot.querySelectorAll('.draglayer .nsewdrag')].map(box);
    const notes = [...plot.querySelectorAll('.infolayer .annotation')].map(box);
    const edge = box(plot.querySelector('.main-svg'));
    const title = plot.querySelector('.gtitle');
    const note = (what, px) => { if (px > 2) bad.push(name.slice(0, 50) + ': ' + what + ' by ' + Math.round(px) + ' px'); };
    if (title && title.textContent.trim()) {
      const t = box(title);
      areas.forEach((a, i) => note('title over plot area ' + i, across(t, a)));
      notes.forEach((a, i) => note('title over subplot title ' + i, across(t, a)));
      note('title past the left edge', edge.l - t.l);
      note('title past the right edge', t.r - edge.r);
    }
    notes.forEach((n, i) => {
      areas.forEach((a, j) => note('subplot title ' + i + ' over plot area ' + j, across(n, a)));
      notes.forEach((m, j) => { if (j > i) note('subplot titles ' + i + ' and ' + j, across(n, m)); });
    });
  }
  return {charts: holders.length, drawn, bad};
}"""


def titles_clear(pg, where: str) -> int:
    """Wait until every chart on the page is drawn with its titles clear of its data (plotly lays a title out
    again after pushing the margin: the condition, not a time); fail with what overlaps. Returns the count."""
    try:
        pg.wait_for_function(f"() => {{ const r = ({OVERLAPS})(); return r.drawn === r.charts && r.bad.length === 0; }}",
                             timeout=30_000)
    except Exception:
        found = pg.evaluate(OVERLAPS)
        pytest.fail(f"{where}: {found['drawn']} of {found['charts']} charts drawn; overlaps: {found['bad']}")
    return pg.evaluate(OVERLAPS)["charts"]


SETTLED = "() => !document.querySelector('[data-stale=true]')"
"""No element is left over from the last run: Streamlit draws those faded while a run is in progress."""


def serious_axe_violations(pg) -> list[str]:
    """axe-core (PyPI axe-playwright-python, which bundles it) on the page, once the run is over and nothing is
    fading back in (axe measures contrast through opacity): its serious and critical violations."""
    from axe_playwright_python.sync_playwright import Axe

    targets: list[str] = []

    def serious() -> set[str]:
        wait_idle(pg)
        pg.wait_for_function(SETTLED, timeout=30_000)
        pg.add_style_tag(content="*, *::before, *::after { transition: none !important; animation: none !important; }")
        found = [(v, n) for v in Axe().run(pg).response["violations"] if v["impact"] in ("serious", "critical") for n in v["nodes"]]
        targets[:] = [n["target"][0] for _, n in found if n["target"] and isinstance(n["target"][0], str)]
        return {f"{v['id']} ({v['impact']}): {n['html'][:120]} [{(n['any'] or n['all'] or n['none'] or [{}])[0].get('message', '')[:140]}]"
                for v, n in found}

    found = serious()
    if not found:
        return []
    # A run that starts while axe reads the page (a busy machine) draws it faded for a moment: look again once
    # what it flagged is drawn at full opacity (or after 10 s, when it is simply so); what persists is real.
    try:
        pg.wait_for_function(OPAQUE, arg=targets, timeout=10_000)
    except Exception:
        pass
    return sorted(found & serious())


OPAQUE = """(selectors) => selectors.every(s => {
  let opacity = 1;
  for (let e = document.querySelector(s); e; e = e.parentElement) opacity *= parseFloat(getComputedStyle(e).opacity);
  return opacity > 0.999;
})"""


ON_PHONES_TOO = ["lesson-layers", "lesson-word-sense", "masked-lm", "next-sentence", "attention-statistics",
                 "attention-rollout", "experiments", "experiments-importance"]
"""The views the phone runs here: tests/test_classroom.py's phone visits every page (with the same checks), these
are the ones that draw other charts than its visit does."""


@pytest.mark.parametrize("screen", list(SCREENS))
def test_every_chart_keeps_its_title_off_its_data_and_every_page_passes_axe(server, browser, screen, tmp_path_factory):
    """Every page, as a laptop, a phone and a projector (presenter mode) draw it: no chart title over its plot area
    or its subplot titles, none cut at the chart's edge; and on the laptop and the phone, axe-core finds no serious
    or critical accessibility violation. The phone's and projector's screenshots go to a temporary folder."""
    context = browser.new_context(**SCREENS[screen])
    pg = context.new_page()
    folder = tmp_path_factory.mktemp(f"screens-{screen}")
    charts, problems = 0, []
    views = {name: path for name, path in VIEWS.items() if screen != "phone" or name in ON_PHONES_TOO}
    try:
        for name, path in views.items():
            url = server + path + ("&" if "?" in path else "?") + ("" if "model=" in path else "model=minilm")
            if screen == "projector":
                url += "&present=true"
            open_page(pg, url)
            charts += titles_clear(pg, f"{screen} {name}")
            if screen != "projector":
                problems += [f"{name}: {v}" for v in serious_axe_violations(pg)]
            if screen != "laptop":
                pg.screenshot(path=str(folder / f"{name}.png"))
    finally:
        context.close()
    assert charts >= len(views), (charts, len(views))  # the views really drew their charts
    assert not problems, problems


CONTROLS = """() => {
  // every visible control of the page and the sidebar (plotly's own toolbar aside), marked, and a listener that
  // marks each one the keyboard's focus reaches
  const visible = e => { const r = e.getBoundingClientRect(); return r.width > 0 && r.height > 0 && getComputedStyle(e).visibility !== 'hidden'; };
  const controls = [...document.querySelectorAll('button, input:not([type=hidden]), textarea, select, a[href], [role=slider], [role=combobox], [role=switch]')]
    // (a select box's "Open" arrow is out of the tab order by design: its text box opens the list from the keyboard)
    .filter(e => visible(e) && !e.closest('.modebar-container') && !e.closest('[data-testid=stHeader]') && !e.disabled
                 && !(e.matches('button[tabindex="-1"][aria-haspopup=listbox]') && e.parentElement.querySelector('input')));
  controls.forEach((e, i) => { e.dataset.kb = i; });
  document.addEventListener('focusin', ev => {
    for (const e of document.querySelectorAll('[data-kb]')) if (e === ev.target || e.contains(ev.target) || ev.target.contains(e)) e.dataset.reached = '1';
  });
  return controls.length;
}"""
UNREACHED = """() => [...document.querySelectorAll('[data-kb]:not([data-reached])')].map(e =>
  (e.getAttribute('aria-label') || e.innerText || e.getAttribute('placeholder') || e.tagName).trim().slice(0, 40))"""


@pytest.mark.parametrize("path", ["/?step=Bidirectional+vs+causal", "/head"])
def test_every_control_is_in_reach_of_the_keyboard(server, page, path):
    """Tab from the top of the page reaches every control (links, pills, buttons, sliders, boxes, switches), and
    Enter presses the lesson's Next."""
    open_page(page, f"{server}{path}&model=minilm" if "?" in path else f"{server}{path}?model=minilm")
    plots(page, 1)
    count = page.evaluate(CONTROLS)
    assert count >= 10
    for tab in range(1, 3 * count):  # some controls hold two stops (a box and its clear button)
        page.keyboard.press("Tab")
        if tab % 10 == 0 and not page.evaluate(UNREACHED):
            break
    assert page.evaluate(UNREACHED) == []
    if "step" in path:
        page.get_by_role("button", name="Next →").first.focus()
        page.keyboard.press("Enter")
        assert visible(page, "Step 7 of 9: BERT vs GPT")
