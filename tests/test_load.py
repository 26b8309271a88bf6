"""A few students at once against one server for a few seconds: nothing goes wrong, one model in memory.

Errors are what a student would see go wrong (an exception in the page, a page error, a request to
another host). This is a smoke run of the classroom load test with no speed threshold, on the server the
browser tests use; the full run (30 sessions for 60 s on a fresh server) and its thresholds are a
benchmark: `python -m labtools.loadtest`.
"""

from __future__ import annotations

import json
import os

SESSIONS = int(os.environ.get("BERTLAB_LOAD_SESSIONS", "3"))
SECONDS = float(os.environ.get("BERTLAB_LOAD_SECONDS", "5"))


def test_a_few_students_at_once(app_server, chromium):
    from labtools.loadtest import run_load

    result = run_load(app_server.url, "minilm", SESSIONS, SECONDS, chromium, server_pid=app_server.proc.pid, action_timeout_s=45)
    print("\nload smoke:", json.dumps(result))
    assert result["errors"] == 0, result["error_samples"]
    assert result["actions"] + result["client_timeouts"] > 0, "the sessions did something"
    # half the sessions asked for minilm, half for the default model, which offline stands in with minilm:
    # the server holds one copy, loaded once for every session
    assert app_server.log.read_text().count("bertlab: loaded minilm ") == 1
