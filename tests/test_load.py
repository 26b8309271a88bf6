"""30 students at once for 60 seconds on one server: no errors, one model in memory.

Errors are what a student would see go wrong (an exception in the page, a page error, a request to
another host). Figures (median and p95 time to result, client timeouts while 30 browsers share this
machine's cores with the server, server memory) are printed for the record, never asserted.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from bertlab.browser import CHROMIUM, AppServer

SESSIONS = int(os.environ.get("BERTLAB_LOAD_SESSIONS", "30"))
SECONDS = float(os.environ.get("BERTLAB_LOAD_SECONDS", "60"))


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (./lab installs it)")
def test_a_classroom_at_once(tmp_path):
    from bertlab.loadtest import run_load

    log = tmp_path / "server.log"
    with AppServer(env={"BERTLAB_ALLOWED_MODELS": "minilm,bert-base-uncased"}, log=log) as app:
        result = run_load(app.url, "minilm", SESSIONS, SECONDS, CHROMIUM, server_pid=app.proc.pid)
    loads = log.read_text().count("bertlab: loaded ")
    result["model_loads"] = loads
    print("\nload test:", json.dumps(result))
    assert result["errors"] == 0, result["error_samples"]
    assert result["actions"] >= SESSIONS // 2
    assert loads == 1
