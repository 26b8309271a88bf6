"""Figures for papers: every chart in the app downloads as SVG as well as PNG, in a real browser.

The SVG button (`bertlab/modebar.py`) is added beside plotly's camera on every chart; the file it
downloads must parse as SVG, hold the chart that was on the page, and open as an SVG document in
Chromium; the camera must still give a PNG afterwards. Same server and Chromium as tests/test_browser.py.
"""

from __future__ import annotations

import re
import urllib.parse
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

from bertlab.modebar import SVG_BUTTON_TITLE
from labtools.server import FLAGS, wait_idle

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def page(app_server, chromium):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=FLAGS)
        context = browser.new_context(viewport={"width": 1400, "height": 1100}, accept_downloads=True)
        outside: list[str] = []

        def guard(route):
            url = route.request.url
            if url.startswith(("data:", "blob:", "about:", "file:")) or urllib.parse.urlparse(url).hostname == "127.0.0.1":
                route.continue_()
            else:
                outside.append(url)
                route.abort()

        context.route("**/*", guard)
        yield context.new_page()
        browser.close()
        assert not outside, f"the page asked hosts other than 127.0.0.1: {outside[:5]}"


def test_every_chart_downloads_as_svg_and_png(app_server, page, tiny_bert_dir, tmp_path):
    query = urllib.parse.urlencode({"model": str(tiny_bert_dir), "text": "the quick brown [MASK] jumps over the lazy dog ."})
    page.goto(f"{app_server.url}/masked-lm?{query}")
    wait_idle(page, 90_000)
    # two drawn charts (each plotly chart holds two .main-svg layers, so count the charts)
    page.wait_for_function("() => [...document.querySelectorAll('.js-plotly-plot')].filter(p => p.querySelector('.main-svg')).length >= 2",
                           timeout=60_000)
    charts = page.locator(".js-plotly-plot")
    page.wait_for_function(
        "() => document.querySelectorAll('.modebar-btn[data-bertlab-svg]').length === document.querySelectorAll('.js-plotly-plot').length",
        timeout=30_000,
    )
    assert charts.count() >= 2, "the Masked LM page draws its bars and the logit lens"

    chart = charts.first
    shown = [t.strip() for t in chart.locator(".ytick text").all_text_contents() if t.strip()]
    assert shown, "the chart's guesses, as drawn on the page"
    chart.hover()
    with page.expect_download() as svg_download:
        chart.locator(f".modebar-btn[data-title='{SVG_BUTTON_TITLE}']").click()
    path = tmp_path / "chart.svg"
    svg_download.value.save_as(path)
    assert svg_download.value.suggested_filename.endswith(".svg")

    root = ElementTree.parse(path).getroot()
    assert root.tag == f"{SVG}svg"
    texts = {"".join(e.itertext()).strip() for e in root.iter(f"{SVG}text")}
    assert set(shown) <= texts, "the SVG is the chart that was on the page"
    assert any("bars" in (e.get("class") or "") for e in root.iter(f"{SVG}g")), "with its bars as vector shapes"

    viewer = page.context.new_page()  # and Chromium opens it as an SVG document
    viewer.goto(path.as_uri())
    assert viewer.evaluate("document.documentElement.namespaceURI") == "http://www.w3.org/2000/svg"
    assert viewer.locator("parsererror").count() == 0
    viewer.close()

    chart.hover()
    with page.expect_download() as png_download:
        chart.locator(".modebar-btn[data-title='Download plot as a PNG']").click()
    assert Path(png_download.value.path()).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", "the camera still gives a PNG"


def test_the_script_survives_streamlits_sanitizer():
    """st.html runs scripts after DOMPurify, which empties a script whose text looks like markup (`<` then a
    letter, `/` or `!`): the SVG button was silently missing once for that reason."""
    from bertlab.modebar import SVG_BUTTON_SCRIPT

    body = SVG_BUTTON_SCRIPT.split("<script data-bertlab-svg-script>", 1)[1].removesuffix("</script>")
    assert body.strip() and not re.search(r"<[/\w!]", body)
