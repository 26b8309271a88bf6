"""30 students at once for 60 seconds on one server: no errors, one model in memory.

Errors are what a student would see go wrong (an exception in the page, a page error, a request to
another host). Figures (median and p95 time to result, client timeouts while 30 browsers share this
machine's cores with the server, server memory) are printed for the record, never asserted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("BERTLAB_CHROMIUM", "/usr/bin/chromium")
SESSIONS = int(os.environ.get("BERTLAB_LOAD_SESSIONS", "30"))
SECONDS = float(os.environ.get("BERTLAB_LOAD_SECONDS", "60"))


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (./lab installs it)")
def test_a_classroom_at_once(tmp_path):
    from bertlab.bench import _free_port
    from bertlab.loadtest import run_load

    port = _free_port()
    log = tmp_path / "server.log"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "BERTLAB_ALLOWED_MODELS": "minilm,bert-base-uncased"}
    with log.open("w") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.headless", "true",
             "--server.address", "127.0.0.1", "--server.port", str(port), "--browser.gatherUsageStats", "false",
             "--server.fileWatcherType", "none"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(180):
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).status == 200:
                    break
            except OSError:
                time.sleep(0.5)
        result = run_load(url, "minilm", SESSIONS, SECONDS, CHROMIUM, server_pid=server.pid)
    finally:
        server.terminate()
        server.wait(timeout=20)
    loads = log.read_text().count("bertlab: loaded ")
    result["model_loads"] = loads
    print("\nload test:", json.dumps(result))
    assert result["errors"] == 0, result["error_samples"]
    assert result["actions"] >= SESSIONS // 2
    assert loads == 1
