"""A bounded classroom load test: N real browser sessions against one local `streamlit run`.

Each session types new text and moves between pages inside its own Streamlit session for a fixed
time, then stops. Requests go only to the server's loopback address.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time

from .browser import CHROMIUM, FLAGS

PAGES = ["Tokenization", "Embeddings", "Attention", "Bidirectional vs causal", "Word sense", "Next sentence"]
SENTENCES = [
    "I went to the bank to deposit money.",
    "I went to the bank to catch some fish.",
    "The river bank was very scenic.",
    "The quick brown [MASK] jumps over the lazy dog.",
    "Students typed <b>anything</b> they liked 🙂",
    "Attention heads look left and right in BERT.",
]
IDLE = "() => document.querySelector('[data-testid=stApp]')?.dataset.testScriptState === 'notRunning'"


async def _settle(page, timeout_ms: int) -> None:
    try:  # a run may start a moment after the action, or be over before we look
        await page.wait_for_function("() => document.querySelector('[data-testid=stApp]')?.dataset.testScriptState !== 'notRunning'", timeout=1500)
    except Exception:
        pass
    await page.wait_for_function(IDLE, timeout=timeout_ms)


async def _session(browser, url: str, model: str, seconds: float, seed: int, times: list[float], errors: list[str],
                   delay: float = 0.0, timeouts: list[str] | None = None) -> None:
    from playwright.async_api import TimeoutError as PlaywrightTimeout

    timeouts = [] if timeouts is None else timeouts
    await asyncio.sleep(delay)  # students arrive over a few seconds, not in the same millisecond
    rng = random.Random(seed)
    context = await browser.new_context(viewport={"width": 1200, "height": 900})
    page = await context.new_page()
    page.set_default_timeout(120_000)  # 30 renderers and the server share this machine's cores

    async def guard(route):
        if route.request.url.startswith(url) or route.request.url.startswith(("data:", "blob:", "about:")):
            await route.continue_()
        else:
            errors.append(f"request to another host: {route.request.url}")
            await route.abort()

    await context.route("**/*", guard)
    page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    try:
        # half the class opens the bare address (the default model, or its offline stand-in)
        await page.goto(f"{url}/?model={model}" if seed % 2 else f"{url}/", timeout=180_000)
        await page.wait_for_selector("[data-testid=stMainBlockContainer] h1", timeout=180_000)
        await page.wait_for_function(IDLE, timeout=180_000)
        end = time.monotonic() + seconds
        step = 0
        while time.monotonic() < end:
            step += 1
            start = time.perf_counter()
            try:
                if rng.random() < 0.5:
                    box = page.locator("textarea").first
                    await box.fill(f"{rng.choice(SENTENCES)} {seed}-{step}")
                    await box.press("Control+Enter")
                else:
                    await page.get_by_role("link", name=rng.choice(PAGES)).first.click()
                await _settle(page, 120_000)
            except PlaywrightTimeout as err:  # the client waited too long: slow, not broken; count it and go on
                timeouts.append(f"session {seed}: {str(err).splitlines()[0]}")
                continue
            times.append(time.perf_counter() - start)
            problems = await page.locator("[data-testid=stException]").count()
            if problems:
                errors.append(f"exception shown in session {seed}")
            await asyncio.sleep(rng.uniform(0.2, 1.0))
    except Exception as err:  # a stuck or broken session is an error of the test run
        errors.append(f"session {seed}: {type(err).__name__}: {str(err).splitlines()[0]}")
    finally:
        await context.close()


async def _run(url: str, model: str, sessions: int, seconds: float, chromium: str, server_pid: int | None) -> dict:
    from playwright.async_api import async_playwright

    times: list[float] = []
    errors: list[str] = []
    timeouts: list[str] = []
    memory = {}
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=chromium, args=FLAGS)
        # one teacher's page first: the model loads once, before the class arrives
        await _session(browser, url, model, 0.0, -1, [], errors)
        memory["server_rss_before_mb"] = _rss_mb(server_pid)
        await asyncio.gather(
            *(_session(browser, url, model, seconds, i, times, errors, delay=0.5 * i, timeouts=timeouts) for i in range(sessions))
        )
        memory["server_rss_after_mb"] = _rss_mb(server_pid)
        await browser.close()
    ordered = sorted(times)
    return {
        "sessions": sessions,
        "seconds": seconds,
        "actions": len(times),
        "errors": len(errors),
        "error_samples": errors[:5],
        "client_timeouts": len(timeouts),
        "timeout_samples": timeouts[:3],
        "median_s": statistics.median(ordered) if ordered else None,
        "p95_s": ordered[int(0.95 * (len(ordered) - 1))] if ordered else None,
        **memory,
    }


def _rss_mb(pid: int | None) -> float | None:
    if pid is None:
        return None
    import psutil

    return round(psutil.Process(pid).memory_info().rss / 2**20, 1)


def run_load(url: str, model: str = "minilm", sessions: int = 30, seconds: float = 60.0, chromium: str = CHROMIUM,
             server_pid: int | None = None) -> dict:
    """Run the sessions; returns actions, errors, median/p95 seconds to result and the server's memory."""
    return asyncio.run(_run(url, model, sessions, seconds, chromium, server_pid))
