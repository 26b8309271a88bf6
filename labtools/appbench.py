"""The bench's figures that need the app: P3 (bytes the attention page receives) and P5 (typing to a redrawn
view) from a real `streamlit run` driven by Chromium, and P6 (the app's resident memory) under AppTest.

`python -m bertlab bench` calls `measure_app` when these figures are asked for; the keys it returns are
part of the bench's JSON contract.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path
from typing import Callable

from bertlab.sample import WORDS, text_of

from .server import APP, CHROMIUM, FLAGS, IDLE, ROOT, AppServer, wait_idle

ATTENTION_VIEWS = ("Heatmap", "Head view", "Model view", "All heads", "Statistics", "Rollout")
DRAWN = "() => (" + IDLE + ")() && Array.from(document.images).every(img => img.complete)"
"""The script run is over and every image the page asked for has arrived: all bytes of the view are in."""
PLOT_SIGNATURE = """() => Array.from(document.querySelectorAll('.js-plotly-plot')).map(g => JSON.stringify((g.data || []).map(
  d => [d.x, d.y, d.z].map(v => !v ? null : v.bdata ? v.bdata.slice(0, 96) : JSON.stringify(v).slice(0, 400))))).join('|')"""
"""What each drawn plotly chart holds (typed arrays arrive as base64 `bdata`), to see when new data is drawn."""


def measure_app(model: str, browser: bool = True, analyses: int = 200) -> dict:
    """Every app figure asked for, each None with a note when it cannot be measured here."""
    result: dict = {"notes": []}
    if browser and Path(CHROMIUM).exists():
        try:
            result.update(measure_browser(model))
        except Exception as err:  # a bench reports what it could not measure instead of dying
            result["notes"].append(f"p3/p5: browser measurement failed: {type(err).__name__}: {err}")
        try:
            result.update(measure_first_page())
        except Exception as err:
            result["notes"].append(f"p10: first-page measurement failed: {type(err).__name__}: {err}")
    elif browser:
        result["notes"].append(f"p3/p5: no Chromium at {CHROMIUM}.")
    if analyses:
        try:
            result.update(measure_memory(model, analyses))
        except Exception as err:
            result["notes"].append(f"p6: memory measurement failed: {type(err).__name__}: {err}")
    return result


def measure_browser(
    model: str, url: str | None = None, browser=None, tokens: tuple[int, ...] = (128, 512),
    views: tuple[str, ...] = ATTENTION_VIEWS, repeats: int = 3,
) -> dict:
    """P3 (bytes the attention page receives, per view) and P5 (typing to drawn views), in Chromium.

    `url`: an app already running (else a fresh one is started); `browser`: a playwright Chromium already
    launched (else one is)."""
    from contextlib import ExitStack

    with ExitStack() as stack:
        if url is None:
            url = stack.enter_context(AppServer()).url
        if browser is None:
            from playwright.sync_api import sync_playwright

            browser = stack.enter_context(sync_playwright()).chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            stack.callback(browser.close)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        stack.callback(page.close)
        return _measure_page(page, url, model, tokens, views, repeats)


def _measure_page(page, url: str, model: str, tokens: tuple[int, ...], views: tuple[str, ...], repeats: int) -> dict:
    out: dict = {}
    meter = ByteMeter(page)
    query = lambda **kw: "?" + urllib.parse.urlencode({"model": model, **kw})  # noqa: E731
    # warm the process: the model load and imports are not what P3/P5 measure
    page.goto(f"{url}/attention" + query(text="warm up"))
    wait_idle(page)
    for n in tokens:
        per_view = {}
        for view in views:
            meter.reset()
            page.goto(f"{url}/attention" + query(text=text_of(n), view=view))
            wait_idle(page)
            page.wait_for_function(DRAWN, timeout=60_000)
            page.evaluate("1")  # one round trip, so the CDP events of the last response are counted
            per_view[view] = meter.bytes
        out[f"p3_bytes_{n}"] = max(per_view.values())
        out.setdefault("p3_bytes_by_view", {})[n] = per_view
    out["p5_seconds"] = typing_latency(page, url, query, repeats)
    return out


class ByteMeter:
    """Bytes the page receives for its data: websocket frames plus HTTP bodies other than the app's static shell."""

    def __init__(self, page) -> None:
        self.bytes = 0
        self.urls: dict[str, str] = {}
        cdp = page.context.new_cdp_session(page)
        cdp.send("Network.enable")
        cdp.on("Network.webSocketFrameReceived", lambda e: self._add(len(e["response"]["payloadData"])))
        cdp.on("Network.responseReceived", lambda e: self.urls.__setitem__(e["requestId"], e["response"]["url"]))
        cdp.on("Network.loadingFinished", self._finished)

    def _add(self, n: int) -> None:
        self.bytes += n

    def _finished(self, event: dict) -> None:
        url = self.urls.get(event["requestId"], "")
        if "/static/" not in url and not url.endswith((".js", ".css", ".woff2", ".svg", ".ico")):
            self.bytes += int(event.get("encodedDataLength", 0))

    def reset(self) -> None:
        self.bytes = 0


def typing_latency(page, url: str, query: Callable[..., str], repeats: int = 3) -> float:
    """Seconds from committing a new 32-token sentence to the attention heatmap / MLM bars redrawn with its data."""
    times = []
    for page_name in ("attention", "masked-lm"):
        page.goto(f"{url}/{page_name}" + query(text=text_of(34)))
        wait_idle(page)
        page.wait_for_function(f"() => ({PLOT_SIGNATURE})().length > 0", timeout=60_000)
        for r in range(repeats):
            words = text_of(34).split()
            words[0], words[-1] = WORDS[(r * 7 + 5) % len(WORDS)], WORDS[(r * 11 + 3) % len(WORDS)]
            before = page.evaluate(PLOT_SIGNATURE)
            box = page.locator("textarea").first
            box.fill(" ".join(words))
            start = time.perf_counter()
            box.press("Control+Enter")
            page.wait_for_function(
                f"(before) => {{ const now = ({PLOT_SIGNATURE})();"
                " return now !== before && now.length > 0"
                " && document.querySelector('[data-testid=stApp]').dataset.testScriptState === 'notRunning'; }",
                arg=before,
                timeout=60_000,
            )
            times.append(time.perf_counter() - start)
    return statistics.median(times)


READY = "bertlab is ready"


def measure_first_page(wait: float = 30.0) -> dict:
    """P10: a fresh server (lab_serve.py, warm-up on), then, once it says it is ready (at most `wait` seconds after
    it answers, as a student arriving 30 s after the teacher started it), one browser visit to the lesson: seconds
    from the request to its first step drawn (the token chips) and the script finished."""
    import tempfile

    from playwright.sync_api import sync_playwright

    log = Path(tempfile.mkdtemp(prefix="bertlab-first-page-")) / "server.log"
    started = time.perf_counter()
    with AppServer(env={"BERTLAB_WARM": "1"}, log=log) as app:
        answered = time.perf_counter() - started
        ready = app.wait_for_log(READY, timeout=max(wait, 240.0))
        warmed = time.perf_counter() - started
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            begin = time.perf_counter()
            page.goto(app.url + "/")
            page.wait_for_selector(".chips", timeout=240_000)
            wait_idle(page, 240_000)
            seconds = time.perf_counter() - begin
            browser.close()
    return {"p10_first_page_seconds": seconds,
            "p10_detail": {"server_answered_s": answered, "warm_s": warmed, "said_ready": ready}}


def measure_memory(model: str, analyses: int) -> dict:
    """P6: resident memory of the app (the real app under AppTest) in a fresh process, across many analyses."""
    code = (
        "import json, sys; from labtools.appbench import memory_in_this_process as m; "
        f"print(json.dumps(m({model!r}, {analyses})))"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "memory run failed")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def memory_in_this_process(model: str, analyses: int) -> dict:
    """The app under AppTest in this process: peak and growth of resident memory over `analyses` new texts."""
    import psutil
    from streamlit.testing.v1 import AppTest

    proc = psutil.Process()
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.session_state["model"] = model
    at.session_state["text"] = text_of(34)
    at.run()
    at.switch_page("pages/attention_maps.py").run()
    first = peak = proc.memory_info().rss
    samples = []
    for i in range(analyses):
        words = text_of(34).split()
        words[i % len(words)] = str(1000 + i)
        at.session_state["text"] = " ".join(words)
        at.run()
        peak = max(peak, proc.memory_info().rss)
        samples.append(proc.memory_info().rss)
    half = samples[len(samples) // 2] if samples else first
    return {
        "p6_rss_mb": peak / 2**20,
        "p6_rss_growth_mb": (peak - first) / 2**20,
        "p6_rss_first_mb": first / 2**20,
        "p6_rss_second_half_growth_mb": (samples[-1] - half) / 2**20 if samples else 0.0,
    }
