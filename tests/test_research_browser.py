"""The influence panel and the head atlas in a real browser against a real `streamlit run`: they draw offline, on a
laptop and on a phone, and a Stop button ends the atlas within one batch.

Screenshots go to a temporary folder, or to BERTLAB_SCREENSHOTS (docs/screenshots for README). Every wait is for a
condition on the page.
"""

from __future__ import annotations

import os
import re
import urllib.parse
from pathlib import Path

import pytest

from labtools.server import FLAGS, wait_idle

LAPTOP, PHONE = {"width": 1400, "height": 1100}, {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def browser(chromium):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=FLAGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    folder = os.environ.get("BERTLAB_SCREENSHOTS")
    return Path(folder) if folder else tmp_path_factory.mktemp("screenshots")


def context(browser, viewport: dict):
    """A page that may ask nothing of any host but the app's (127.0.0.1)."""
    phone = viewport["width"] < 600
    ctx = browser.new_context(viewport=viewport, is_mobile=phone, has_touch=phone)
    outside: list[str] = []

    def guard(route):
        host = urllib.parse.urlparse(route.request.url).hostname
        if route.request.url.startswith(("data:", "blob:", "about:")) or host == "127.0.0.1":
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    ctx.route("**/*", guard)
    return ctx, outside


def q(**params: str) -> str:
    return "?" + urllib.parse.urlencode(params)


def plots(pg, at_least: int) -> None:
    pg.wait_for_function(f"() => [...document.querySelectorAll('.js-plotly-plot')].filter(p => p.querySelector('.main-svg')).length >= {at_least}",
                         timeout=120_000)


def no_errors(pg) -> None:
    assert pg.locator("[data-testid=stException]").count() == 0
    assert pg.locator("[data-testid=stAlertContentError]").count() == 0


@pytest.mark.parametrize("name, viewport", [("laptop", LAPTOP), ("phone", PHONE)])
def test_influence_panel_draws(app_server, browser, shots, name, viewport):
    ctx, outside = context(browser, viewport)
    pg = ctx.new_page()
    text = "The quick brown fox jumps over the lazy dog."
    pg.goto(f"{app_server.url}/influence" + q(model="minilm", text=text, influence_position="fox"))
    wait_idle(pg, 180_000)
    plots(pg, 3)
    no_errors(pg)
    pg.get_by_text("What the measures say here").first.wait_for(state="visible")
    assert pg.get_by_text("position 4 can see").count() == 1, "the link picked P"
    pg.locator(".js-plotly-plot").first.scroll_into_view_if_needed()
    pg.screenshot(path=str(shots / ("20-influence.png" if name == "laptop" else "20-phone-influence.png")))
    ctx.close()
    assert not outside, outside[:5]


def test_atlas_stops_within_a_batch(app_server, browser):
    """BERT-base's shape over the whole shipped corpus takes minutes on a CPU: Stop ends it at the next batch."""
    ctx, outside = context(browser, LAPTOP)
    pg = ctx.new_page()
    pg.goto(f"{app_server.url}/atlas" + q(model="random:bert-base"))
    stop = pg.get_by_role("button", name="Stop")
    stop.wait_for(state="visible", timeout=180_000)
    pg.get_by_text(re.compile(r"of 528 sentences")).first.wait_for(state="visible", timeout=180_000)
    stop.click()
    pg.get_by_text(re.compile(r"Stopped after [\d,]+ of 528 sentences")).wait_for(state="visible", timeout=120_000)
    wait_idle(pg, 60_000)
    done = int(re.search(r"Stopped after ([\d,]+) of", pg.get_by_text(re.compile("Stopped after")).inner_text()).group(1).replace(",", ""))
    assert done < 528
    assert pg.get_by_role("button", name="Start again").is_visible()
    assert pg.locator(".js-plotly-plot").count() == 0 and pg.get_by_role("button", name="Stop").count() == 0
    no_errors(pg)
    ctx.close()
    assert not outside, outside[:5]


@pytest.mark.parametrize("name, viewport", [("laptop", LAPTOP), ("phone", PHONE)])
def test_atlas_draws_and_links_to_the_experiment(app_server, browser, shots, name, viewport):
    ctx, outside = context(browser, viewport)
    pg = ctx.new_page()
    pg.goto(f"{app_server.url}/atlas" + q(model="minilm", atlas_head="0.2"))
    wait_idle(pg, 240_000)
    plots(pg, 3)
    no_errors(pg)
    pg.get_by_text("mostly attends to the previous token").first.wait_for(state="visible")  # MiniLM's head 0.2
    link = pg.get_by_role("link", name="Remove head 0.2 on the Experiments page")
    assert "experiment=Ablate+heads" in link.get_attribute("href") and "heads=0.2" in link.get_attribute("href")
    pg.locator(".js-plotly-plot").first.scroll_into_view_if_needed()
    pg.screenshot(path=str(shots / ("21-atlas.png" if name == "laptop" else "21-phone-atlas.png")))
    if name == "laptop":
        link.click()
        pg.wait_for_url(re.compile(r"/experiments\?"), timeout=60_000)
        wait_idle(pg, 120_000)
        pg.get_by_text("how far removing 1 head(s) moved each token").first.wait_for(state="visible", timeout=60_000)
    ctx.close()
    assert not outside, outside[:5]
