"""A bounded classroom load test: N real browser sessions against one local `streamlit run`.

Each session types new text and moves between pages inside its own Streamlit session for a fixed
time, then stops. Requests go only to the server's loopback address.

    python -m labtools.loadtest                      # the benchmark: 30 sessions for 60 s, judged by THRESHOLDS
    python -m labtools.loadtest --sessions 5 --seconds 20

The default test suite runs a short smoke of the same code (`tests/test_load.py`) and asserts only that
nothing went wrong; how much a class gets done in a minute is a figure of this machine, judged here.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from .server import CHROMIUM, FLAGS, IDLE, AppServer

PAGES = ["Tokenization", "Embeddings", "Attention", "Bidirectional vs causal", "Word sense", "Next sentence"]
SENTENCES = [
    "I went to the bank to deposit money.",
    "I went to the bank to catch some fish.",
    "The river bank was very scenic.",
    "The quick brown [MASK] jumps over the lazy dog.",
    "Students typed <b>anything</b> they liked 🙂",
    "Attention heads look left and right in BERT.",
]
THRESHOLDS = {"errors": 0, "model_loads": 1, "actions_per_session": 0.5}
"""What the benchmark run must reach: no errors a student would see, the model loaded once for the whole
class, and at least half an action per session in the run (30 sessions for 60 s on 2 CPUs: >= 15)."""

# Counts the script runs Streamlit starts after `ARM` is called, so a session can wait for the run its own
# action caused to finish, however quickly it starts or ends (instead of sleeping and hoping). It watches the
# whole document, so a re-mounted app element is still seen.
ARM = """() => {
  window.__bertlabRuns = 0;
  if (!window.__bertlabObserver) {
    window.__bertlabObserver = new MutationObserver(records => {
      for (const r of records) if (r.target.dataset && r.target.dataset.testScriptState === 'running') window.__bertlabRuns++;
    });
    window.__bertlabObserver.observe(document.body, {attributes: true, subtree: true, attributeFilter: ['data-test-script-state']});
  }
}"""
RAN = "() => window.__bertlabRuns > 0 && (" + IDLE + ")()"


async def _session(browser, url: str, model: str, seconds: float, seed: int, times: list[float], errors: list[str],
                   delay: float = 0.0, timeouts: list[str] | None = None, action_timeout_s: float = 120.0) -> None:
    from playwright.async_api import TimeoutError as PlaywrightTimeout

    timeouts = [] if timeouts is None else timeouts
    await asyncio.sleep(delay)  # students arrive over a few seconds, not in the same millisecond
    rng = random.Random(seed)
    context = await browser.new_context(viewport={"width": 1200, "height": 900})
    page = await context.new_page()
    page.set_default_timeout(action_timeout_s * 1000)  # 30 renderers and the server share this machine's cores

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
        step, here = 0, None
        while time.monotonic() < end:
            step += 1
            start = time.perf_counter()
            try:
                await page.evaluate(ARM)
                if rng.random() < 0.5:
                    box = page.locator("textarea").first
                    await box.fill(f"{rng.choice(SENTENCES)} {seed}-{step}")
                    await box.press("Control+Enter")
                else:
                    here = rng.choice([p for p in PAGES if p != here])  # a new page, so the click starts a run
                    await page.get_by_role("link", name=here).first.click()
                await page.wait_for_function(RAN, timeout=action_timeout_s * 1000)
            except PlaywrightTimeout as err:  # the client waited too long: slow, not broken; count it and go on
                timeouts.append(f"session {seed}: {str(err).splitlines()[0]}")
                continue
            times.append(time.perf_counter() - start)
            problems = await page.locator("[data-testid=stException]").count()
            if problems:
                errors.append(f"exception shown in session {seed}")
            await asyncio.sleep(rng.uniform(0.2, 1.0))  # a student reads before the next action
    except Exception as err:  # a stuck or broken session is an error of the test run
        errors.append(f"session {seed}: {type(err).__name__}: {str(err).splitlines()[0]}")
    finally:
        await context.close()


async def _run(url: str, model: str, sessions: int, seconds: float, chromium: str, server_pid: int | None,
               action_timeout_s: float) -> dict:
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
            *(_session(browser, url, model, seconds, i, times, errors, delay=0.5 * i, timeouts=timeouts,
                       action_timeout_s=action_timeout_s) for i in range(sessions))
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
             server_pid: int | None = None, action_timeout_s: float = 120.0) -> dict:
    """Run the sessions; returns actions, errors, median/p95 seconds to result and the server's memory.
    An action that takes longer than `action_timeout_s` counts as a client timeout (slow), not an error."""
    return asyncio.run(_run(url, model, sessions, seconds, chromium, server_pid, action_timeout_s))


def classroom(model: str = "minilm", sessions: int = 30, seconds: float = 60.0, log: Path | None = None) -> dict:
    """A fresh server, the sessions against it, and how many times the server loaded a model."""
    with tempfile.TemporaryDirectory() as tmp:
        log = log or Path(tmp) / "server.log"
        with AppServer(env={"BERTLAB_ALLOWED_MODELS": "minilm,bert-base-uncased"}, log=log) as app:
            result = run_load(app.url, model, sessions, seconds, CHROMIUM, server_pid=app.proc.pid)
        result["model_loads"] = log.read_text().count("bertlab: loaded ")
    return result


def judge(result: dict) -> list[str]:
    """The thresholds this run missed (empty: it passed)."""
    missed = []
    if result["errors"] > THRESHOLDS["errors"]:
        missed.append(f"errors: {result['errors']} > {THRESHOLDS['errors']} ({result['error_samples']})")
    if result["model_loads"] != THRESHOLDS["model_loads"]:
        missed.append(f"model_loads: {result['model_loads']} != {THRESHOLDS['model_loads']}")
    least = THRESHOLDS["actions_per_session"] * result["sessions"]
    if result["actions"] < least:
        missed.append(f"actions: {result['actions']} < {least:g} ({THRESHOLDS['actions_per_session']} per session)")
    return missed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m labtools.loadtest", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=30)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--model", default="minilm")
    args = parser.parse_args(argv)
    result = classroom(args.model, args.sessions, args.seconds)
    result["missed"] = judge(result)
    print(json.dumps(result))
    return 1 if result["missed"] else 0


if __name__ == "__main__":
    sys.exit(main())
