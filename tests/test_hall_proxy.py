"""`./lab hall` end to end on loopback: Redis, a Ray head with the model service, two Streamlit replicas and
haproxy, started by the command itself (python -m labtools.hall) and stopped by SIGTERM, leaving no process.

Through the proxy: a browser session's requests (pages, the WebSocket) stay on one replica; a poll answered by a
phone served by replica 1 appears on the projector served by replica 2 (the class is in Redis, the analyses come
from the model service); replica 1 killed mid-class loses no acknowledged answer, and its phone carries on
through the proxy. Waits are for conditions (the one line the command prints, text on a page), never fixed times."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from bertlab.classroom import open_store
from labtools.hall import COOKIE, HAPROXY, REPLICA_HEADER
from labtools.server import FLAGS, ROOT, free_port, wait_idle
from class_fixtures import need_redis_server

pytest.importorskip("ray")
WAIT = 90_000
PROJECTOR = dict(viewport={"width": 1280, "height": 720})
PHONE = dict(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)


def leftovers(folder: Path) -> list[str]:
    """Processes whose command line names the hall's folder (Redis' and Ray's do)."""
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if str(folder) in line]


@pytest.fixture(scope="module")
def hall(tmp_path_factory):
    need_redis_server()
    if not Path(HAPROXY).exists():
        pytest.fail(f"Debian's haproxy is not installed at {HAPROXY} (./lab installs it)")
    folder = tmp_path_factory.mktemp("hall")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "labtools.hall", "--replicas", "2", "--port", str(port), "--host", "127.0.0.1",
                             "--model", "minilm", "--folder", str(folder)], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=(folder / "hall.err").open("w"), text=True, start_new_session=True,
                            env={**os.environ, "HF_HUB_OFFLINE": "1", "BERTLAB_WARM": "0", "BERTLAB_CLASS_REFRESH_S": "1"})
    line = []
    reader = threading.Thread(target=lambda: line.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout=300)
    try:
        assert line and line[0].startswith("bertlab hall: http://127.0.0.1:"), (line, (folder / "hall.err").read_text()[-2000:])
        state = json.loads((folder / "hall.json").read_text())
        yield {"proc": proc, "url": f"http://127.0.0.1:{port}", "state": state, "folder": folder, "line": line[0]}
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            code = None
        left = leftovers(folder)
        for row in left:  # never leave them behind, even when the test fails
            try:
                os.kill(int(row.split()[0]), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
        assert code == 0 and not left, (code, left)


def shown(page, text: str) -> None:
    """Wait until `text` is visible on the page (a hidden copy, e.g. a button's label in a collapsed part, does not count)."""
    page.get_by_text(text).filter(visible=True).first.wait_for()


def served_by(url: str, cookie: str | None = None) -> tuple[str, str | None]:
    request = urllib.request.Request(url, headers={"Cookie": f"{COOKIE}={cookie}"} if cookie else {})
    with urllib.request.urlopen(request, timeout=30) as response:
        inserted = response.headers.get("Set-Cookie")
        return response.headers[REPLICA_HEADER], inserted


def test_the_command_prints_one_line_and_a_session_stays_on_one_replica(hall):
    assert hall["line"].count("\n") == 1 and hall["url"] in hall["line"]
    first = [served_by(hall["url"] + "/") for _ in range(4)]
    assert {replica for replica, _ in first} == {"r1", "r2"}  # new sessions are spread
    assert all(cookie and cookie.startswith(f"{COOKIE}={replica}") for replica, cookie in first)
    for replica in ("r1", "r2"):  # a session's later requests, the WebSocket's upgrade among them, stay where it began
        assert {served_by(hall["url"] + path, replica)[0] for path in ("/", "/_stcore/health", "/join", "/")} == {replica}

        async def upgrade() -> str:
            from tornado.httpclient import HTTPRequest
            from tornado.websocket import websocket_connect

            ws_url = hall["url"].replace("http://", "ws://") + "/_stcore/stream"
            connection = await websocket_connect(HTTPRequest(ws_url, headers={"Cookie": f"{COOKIE}={replica}"}),
                                                 subprotocols=["streamlit"])
            try:
                return connection.headers[REPLICA_HEADER]
            finally:
                connection.close()

        assert asyncio.run(upgrade()) == replica


def test_a_poll_answered_on_one_replica_shows_on_the_other_and_a_killed_replica_loses_nothing(hall, chromium):
    from playwright.sync_api import sync_playwright

    url, state = hall["url"], hall["state"]
    store = open_store(state["class_store"])
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=FLAGS)
        seen: dict[str, set] = {"r1": set(), "r2": set()}

        def page_on(replica: str, **options):
            context = browser.new_context(**options)
            context.add_cookies([{"name": COOKIE, "value": replica, "url": url}])  # which replica this browser's session lives in
            page = context.new_page()
            page.set_default_timeout(WAIT)
            page.on("response", lambda r: seen[replica].add(r.headers.get(REPLICA_HEADER.lower())))
            return page

        teacher, phone = page_on("r2", **PROJECTOR), page_on("r1", **PHONE)
        teacher.goto(f"{url}/teach?model=minilm&present=true")
        wait_idle(teacher, 180_000)
        teacher.get_by_role("button", name="Start a class").click()
        shown(teacher, "Students in the room")
        code = teacher.evaluate("() => new URLSearchParams(location.search).get('room')")
        phone.goto(f"{url}/join?room={code}&model=minilm")
        phone.get_by_role("button", name="Join").click()
        shown(phone, "Explore on my own")

        teacher.get_by_text("Which token does this head look at?", exact=True).first.click()  # the head's weights: the model service
        wait_idle(teacher, WAIT)
        teacher.get_by_role("button", name="Open this poll on every phone").click()
        pills = phone.locator("[data-testid=stForm] [data-testid=stButtonGroup] button")

        def answers() -> list[str]:
            poll = store.current_poll(code)
            return [] if poll is None else [a.answer for a in store.answers(code, poll.id)]

        def tap(n: int) -> str:
            """Tap the n-th token and send, and again (as a student would) if the store did not change: a tap while the
            page's WebSocket is still reconnecting goes nowhere. Returns the answer the store then holds."""
            before = answers()
            for _attempt in range(3):
                pills.nth(n).click()
                phone.get_by_role("button", name="Send").click()
                deadline = time.monotonic() + 20
                while answers() == before and time.monotonic() < deadline:
                    phone.wait_for_timeout(200)  # polling the store (another process writes it), not the page
                if answers() != before:
                    break
            shown(phone, "Saved:")
            return answers()[0]

        pills.first.wait_for()  # the poll is open on the phone
        first = tap(1)
        shown(teacher, "1 of 1 answered")  # answered through replica 1, shown by replica 2
        assert seen == {"r1": {"r1"}, "r2": {"r2"}}
        poll = store.current_poll(code)
        acknowledged = {a.student: a.answer for a in store.answers(code, poll.id)}
        assert list(acknowledged.values()) == [first]

        os.kill(state["replicas"]["r1"]["pid"], signal.SIGKILL)  # the phone's replica, mid-class
        assert {a.student: a.answer for a in store.answers(code, poll.id)} == acknowledged
        shown(phone, "Saved:")  # reconnected through the proxy (another replica, or r1 restarted) and still saved
        pills.first.wait_for()
        second = tap(2)  # a changed mind, after the kill
        assert second != first and store.student_count(code) == 1
        assert {a.student for a in store.answers(code, poll.id)} == set(acknowledged)
        teacher.get_by_role("button", name="Reveal", exact=True).click()
        shown(teacher, "1 of 1 answered · locked")
        for page in (teacher, phone):
            assert page.locator("[data-testid=stException]").count() == 0
        browser.close()
