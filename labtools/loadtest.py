"""A bounded classroom load test: N real browser sessions against one local `streamlit run`.

Each session types new text and moves between pages inside its own Streamlit session for a fixed
time, then stops. Requests go only to the server's loopback address.

    python -m labtools.loadtest                      # the benchmark: 30 sessions for 60 s, judged by THRESHOLDS
    python -m labtools.loadtest --sessions 5 --seconds 20
    python -m labtools.loadtest --class --sessions 30 --seconds 60 [--burst]   # a live class: see run_class_load
    python -m labtools.loadtest --hall --ladder 5,10,20 --seconds 45            # one process vs ./lab hall: see hall_load

The default test suite runs a short smoke of the same code (`tests/test_load.py`) and asserts only that
nothing went wrong; how much a class gets done in a minute is a figure of this machine, judged here.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import statistics
import sys
import tempfile
import threading
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


# --- a live class: N phones answering the teacher's polls, the projector counting them ----------------

CLASS_THRESHOLDS = {"errors": 0, "p95_answer_to_projector_s": 3.0}
"""What the live-class run must reach: no errors a student would see, and 95% of answers on the projector within
3 s of the student's tap (the projector refreshes every BERTLAB_CLASS_REFRESH_S, default 1 s)."""
OPTIONS = ["alpha", "bravo", "charlie", "delta"]
SEND = re.compile(r"^(Send|Check)$")
# Samples, every 50 ms, the projector's "N of M answered" line for the poll on screen, and keeps the first time
# each count was shown for each poll (the page's own clock: the same machine's wall clock as the students').
PROJECTOR_WATCH = """() => {
  window.__seen = {};
  setInterval(() => {
    const panel = document.querySelector('.st-key-class_live');
    if (!panel) return;
    const text = panel.innerText;
    const poll = text.match(/Poll (\\d+):/), count = text.match(/(\\d+) of \\d+ answered/);
    if (poll && count) { const k = poll[1] + ':' + count[1]; if (!(k in window.__seen)) window.__seen[k] = Date.now() / 1000; }
  }, 50);
}"""


async def _class_student(browser, url: str, code: str, student: str, seed: int, polls: dict, clicks: dict, errors: list[str],
                         clock: dict) -> None:
    """One phone: opens its link, then answers each poll the teacher opens after a moment's thought."""
    from playwright.async_api import TimeoutError as PlaywrightTimeout

    rng = random.Random(seed)
    context = await browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    page = await context.new_page()
    page.set_default_timeout(60_000)
    page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    try:
        await page.goto(f"{url}/join?room={code}&me={student}", timeout=180_000)
        await page.get_by_role("button", name="Explore on my own").wait_for(timeout=600_000)
        clock["ready"] += 1  # joined: the polls start when every phone has
        k = 1
        while clock["end"] is None or time.monotonic() < clock["end"]:
            left = 600 if clock["end"] is None else clock["end"] - time.monotonic()
            try:
                await page.get_by_text(f"Poll {k}:").first.wait_for(timeout=max(1_000, left * 1000))
            except PlaywrightTimeout:
                break  # the run ended before the next poll
            await asyncio.sleep(rng.uniform(0.3, 2.0))  # a student thinks before tapping
            await page.get_by_text(rng.choice(OPTIONS), exact=True).click()
            clicks[(k, student)] = time.time()
            await page.get_by_role("button", name=SEND).click()  # a check's button says Check, other polls' Send
            await page.get_by_text("Saved:").first.wait_for()
            if await page.locator("[data-testid=stException]").count():
                errors.append(f"exception shown to student {seed}")
            k += 1
    except Exception as err:  # a stuck or broken phone is an error of the run
        errors.append(f"student {seed}: {type(err).__name__}: {str(err).splitlines()[0]}")
        if os.environ.get("BERTLAB_LOAD_DEBUG"):  # what the stuck phone showed
            await page.screenshot(path=os.path.join(os.environ["BERTLAB_LOAD_DEBUG"], f"student-{seed}.png"))
    finally:
        await context.close()


async def _run_class(url: str, store, sessions: int, seconds: float, chromium: str, burst: bool) -> dict:
    import threading

    from playwright.async_api import async_playwright

    from bertlab.classroom import ClassError, RateLimited

    room, key = store.create_room("load test")
    students = [store.join(room.code, f"load {i}").id for i in range(sessions)]
    polls: dict[int, int] = {}
    clicks: dict[tuple[int, str], float] = {}
    errors: list[str] = []
    flood = {"sent": 0, "stored": 0, "limited": 0}
    flood_first: dict[int, float] = {}  # poll -> when the flood's first answer to it was stored
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=chromium, args=FLAGS)
        projector = await (await browser.new_context(viewport={"width": 1280, "height": 720})).new_page()
        await projector.goto(f"{url}/teach?room={room.code}&key={key}&present=true", timeout=180_000)
        await projector.get_by_text("Students in the room").wait_for(timeout=180_000)
        await projector.evaluate(PROJECTOR_WATCH)
        clock = {"ready": 0, "end": None}  # the phones load first (~2-4 s each of a 2-CPU machine), then the clock runs
        phones = [asyncio.create_task(_class_student(browser, url, room.code, s, i, polls, clicks, errors, clock))
                  for i, s in enumerate(students)]
        stop_flood = threading.Event()

        def flooding() -> None:  # one student sends answers as fast as the store takes them: refused past the limit
            me = store.join(room.code, "flood").id
            while not stop_flood.is_set():
                current = store.current_poll(room.code)
                if current is None or current.status != "open":
                    time.sleep(0.05)
                    continue
                flood["sent"] += 1
                try:
                    stored = store.answer(room.code, me, current.id, OPTIONS[flood["sent"] % 4])
                    flood_first.setdefault(current.id, stored.at)
                    flood["stored"] += 1
                except RateLimited:
                    flood["limited"] += 1
                except ClassError:
                    pass

        flooder = threading.Thread(target=flooding, daemon=True) if burst else None
        joined_by = time.monotonic() + 600
        while clock["ready"] < sessions and time.monotonic() < joined_by and any(not t.done() for t in phones):
            await asyncio.sleep(0.5)
        end = time.monotonic() + seconds
        clock["end"] = end + 30
        if flooder:
            flooder.start()
        k = 0
        while time.monotonic() < end and any(not t.done() for t in phones):
            k += 1
            poll = store.open_poll(room.code, key, "check", f"Poll {k}: which option?",
                                   {"answer_kind": "choice", "options": OPTIONS, "correct": ["bravo"], "hints": []})
            polls[k] = poll.id
            deadline = time.monotonic() + 60
            while store.answer_count(room.code, poll.id) < sessions and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            await asyncio.sleep(1.5)  # the projector's last refresh
            store.reveal_poll(room.code, key, poll.id)
        stop_flood.set()
        seen = await projector.evaluate("() => window.__seen")
        if os.environ.get("BERTLAB_LOAD_DEBUG"):
            print(json.dumps(seen), file=sys.stderr)
        for t in phones:
            t.cancel()
        await asyncio.gather(*phones, return_exceptions=True)
        await browser.close()
    latencies = []
    for k, poll_id in polls.items():
        shown = {int(count): t for name, t in seen.items() for number, count in [name.split(":")] if int(number) == k}
        phones_in = sorted((a.at, a.student) for a in store.answers(room.code, poll_id) if (k, a.student) in clicks)
        for rank, (at, student) in enumerate(phones_in, start=1):
            rank += flood_first.get(poll_id, float("inf")) <= at  # the flood's first answer counted before this one
            first = min((t for count, t in shown.items() if count >= rank), default=None)
            if first is not None:
                latencies.append(first - clicks[(k, student)])
    ordered = sorted(latencies)
    return {
        "mode": "class",
        "sessions": sessions,
        "seconds": seconds,
        "polls": len(polls),
        "answers": len(clicks),
        "answers_measured": len(ordered),
        "p50_answer_to_projector_s": round(statistics.median(ordered), 3) if ordered else None,
        "p95_answer_to_projector_s": round(ordered[int(0.95 * (len(ordered) - 1))], 3) if ordered else None,
        "max_answer_to_projector_s": round(ordered[-1], 3) if ordered else None,
        "errors": len(errors),
        "error_samples": errors[:5],
        **({"burst": flood} if burst else {}),
    }


def run_class_load(sessions: int = 30, seconds: float = 60.0, burst: bool = False, model: str = "minilm", chromium: str = CHROMIUM) -> dict:
    """A fresh server with its own class store (SQLite in a temporary folder): a projector (the teacher's page in
    presenter mode) and `sessions` phones; the harness opens a poll, every phone answers it after 0.3-2 s, the
    harness reveals it once all have answered, and again until `seconds` have passed. Reports how long each answer
    took from the student's tap to the projector's count including it (p50, p95, max). `burst`: one more student
    sends answers as fast as the store takes them the whole time (refused past the rate limit)."""
    from bertlab.classroom import open_store

    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "class.sqlite3"
        env = {"BERTLAB_CLASS_DB": str(db), "BERTLAB_CLASS_STORE": "", "BERTLAB_ALLOWED_MODELS": f"{model},bert-base-uncased"}
        with AppServer(env=env, log=Path(tmp) / "server.log") as app:
            store = open_store(f"sqlite:///{db}")
            result = asyncio.run(_run_class(app.url, store, sessions, seconds, chromium, burst))
            store.close()
    return result


def judge_class(result: dict) -> list[str]:
    missed = []
    if result["errors"] > CLASS_THRESHOLDS["errors"]:
        missed.append(f"errors: {result['errors']} > {CLASS_THRESHOLDS['errors']} ({result['error_samples']})")
    p95 = result["p95_answer_to_projector_s"]
    if p95 is None or p95 > CLASS_THRESHOLDS["p95_answer_to_projector_s"]:
        missed.append(f"p95 answer-to-projector: {p95} s > {CLASS_THRESHOLDS['p95_answer_to_projector_s']} s")
    return missed


# --- a lecture hall: the same sessions through `./lab hall`'s proxy, against one process ----------------

HALL_P95_S = 2.0
"""A page view (a click or a new text, to the finished script run) within this many seconds, for 95% of them:
the bound 'sessions held' is measured against."""


class CpuMeter:
    """User + system CPU seconds of a set of process trees (the server side of a run), sampled every half second
    in a thread, each process's last sample kept: a process that exits during the run (a Ray worker, a replica
    restarted) keeps what it used instead of taking it out of the total."""

    def __init__(self, pids) -> None:
        self.pids = pids  # a callable: the tree roots now
        self.last: dict[tuple[int, float], float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.sample()
        self._thread.start()

    def sample(self) -> float:
        import psutil

        for pid in self.pids():
            try:
                root = psutil.Process(pid)
                for proc in [root, *root.children(recursive=True)]:
                    try:
                        times = proc.cpu_times()
                        self.last[(proc.pid, proc.create_time())] = times.user + times.system
                    except psutil.NoSuchProcess:
                        continue
            except psutil.NoSuchProcess:
                continue
        return sum(self.last.values())

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            self.sample()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


IDLE_SECONDS = 10.0


def _ladder_run(url: str, model: str, ladder: list[int], seconds: float, pids) -> list[dict]:
    """Each rung of sessions for `seconds`; beside each p95, the server side's CPU seconds: in all and per page view
    (gross: an upper bound of a page view's cost), and above what it burns idle (measured first over IDLE_SECONDS;
    a noisy baseline on a shared machine, where Ray starts and stops workers of its own)."""
    rungs = []
    run_load(url, model, 1, 5.0, CHROMIUM)  # the model loaded and the first page built before anything is measured
    meter = CpuMeter(pids)
    start, before = time.monotonic(), meter.sample()
    time.sleep(IDLE_SECONDS)  # measuring what the server side burns with nobody on it (Ray's own processes, say)
    idle = (meter.sample() - before) / (time.monotonic() - start)
    for sessions in ladder:
        start, before = time.monotonic(), meter.sample()
        result = run_load(url, model, sessions, seconds, CHROMIUM)
        gross = meter.sample() - before
        cpu = gross - idle * (time.monotonic() - start)
        rungs.append({"sessions": sessions, "actions": result["actions"], "errors": result["errors"],
                      "error_samples": result["error_samples"], "client_timeouts": result["client_timeouts"],
                      "median_s": result["median_s"] and round(result["median_s"], 3),
                      "p95_s": result["p95_s"] and round(result["p95_s"], 3), "server_cpu_s": round(gross, 1),
                      "server_cpu_above_idle_s": round(cpu, 1),
                      "cpu_per_session": round(cpu / (sessions * seconds), 4), "idle_cpu_per_s": round(idle, 3),
                      "cpu_per_page_view_s": round(gross / result["actions"], 3) if result["actions"] else None})
        print(json.dumps({"rung": rungs[-1]}), file=sys.stderr, flush=True)
    meter.close()
    return rungs


def held(rungs: list[dict]) -> int:
    """The most sessions of a rung whose page views had p95 <= HALL_P95_S and no errors (0: none did)."""
    return max([r["sessions"] for r in rungs if r["errors"] == 0 and r["p95_s"] is not None and r["p95_s"] <= HALL_P95_S], default=0)


def hall_load(ladder: list[int], seconds: float = 45.0, replicas: int = 2, model: str = "minilm", single: bool = True) -> dict:
    """The classroom load test at each rung of `ladder` sessions: through a hall on this machine (labtools.hall:
    haproxy, `replicas` Streamlit processes, the model service on Ray, Redis) and, with `single`, against one
    `streamlit run` as today. Reports the sessions held at p95 <= 2 s per page view and the server side's CPU
    seconds per session per second (what sizes a hall on paper: cores = sessions x that)."""
    from .hall import Hall
    from .server import free_port

    out: dict = {"ladder": ladder, "seconds": seconds, "p95_bound_s": HALL_P95_S, "cpus": os.cpu_count()}
    env = {"BERTLAB_ALLOWED_MODELS": "minilm,bert-base-uncased", "BERTLAB_WARM": "0", "HF_HUB_OFFLINE": "1"}
    os.environ.update(env)
    if single:
        with tempfile.TemporaryDirectory() as tmp, AppServer(env=env, log=Path(tmp) / "server.log") as app:
            out["single"] = _ladder_run(app.url, model, ladder, seconds, lambda: [app.proc.pid])
        out["single_held"] = held(out["single"])
    with tempfile.TemporaryDirectory(prefix="bertlab-hall-load-") as tmp:
        hall = Hall(replicas, free_port(), "127.0.0.1", Path(tmp), model=model)
        try:
            hall.start()
            out["hall"] = _ladder_run(hall.address, model, ladder, seconds, lambda: [p.proc.pid for p in hall.parts if p.alive()])
        finally:
            hall.stop()
    out["hall_held"] = held(out["hall"])
    out["replicas"] = replicas
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m labtools.loadtest", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=30)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--class", dest="live_class", action="store_true",
                        help="a live class: phones answering polls; reports p95 seconds from a tap to the projector")
    parser.add_argument("--burst", action="store_true", help="(--class) one more student floods answers all along")
    parser.add_argument("--hall", action="store_true",
                        help="through ./lab hall's proxy and against one process: sessions held at p95 <= 2 s, CPU per session")
    parser.add_argument("--ladder", default="5,10,20", help="(--hall) session counts to try, comma-separated")
    parser.add_argument("--replicas", type=int, default=2, help="(--hall) Streamlit replicas behind the proxy")
    parser.add_argument("--hall-only", action="store_true", help="(--hall) skip the single-process run")
    args = parser.parse_args(argv)
    if args.hall:
        ladder = [int(n) for n in args.ladder.split(",") if n.strip()]
        result = hall_load(ladder, args.seconds, args.replicas, args.model, single=not args.hall_only)
        print(json.dumps(result))
        return 0
    if args.live_class:
        result = run_class_load(args.sessions, args.seconds, args.burst, args.model)
        result["missed"] = judge_class(result)
        print(json.dumps(result))
        return 1 if result["missed"] else 0
    result = classroom(args.model, args.sessions, args.seconds)
    result["missed"] = judge(result)
    print(json.dumps(result))
    return 1 if result["missed"] else 0


if __name__ == "__main__":
    sys.exit(main())
