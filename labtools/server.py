"""A real `streamlit run` of the app on 127.0.0.1, and the Chromium flags this machine needs.

Shared by the browser tests, the load test and the bench's app figures: Debian's Chromium driven by the
PyPI `playwright` package (never `playwright install`).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
"""The repository root, where `app.py` lives."""
APP = ROOT / "app.py"
SERVE = ROOT / "lab_serve.py"
"""How the app is started: `streamlit run app.py` with st.navigation in charge from the first run."""
CHROMIUM = os.environ.get("BERTLAB_CHROMIUM", "/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"]
IDLE = "() => document.querySelector('[data-testid=stApp]')?.dataset.testScriptState === 'notRunning'"
"""True once Streamlit reports that the page's script run has finished."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class AppServer:
    """`streamlit run app.py` on a free loopback port, offline; stopped on exit. `log` keeps its output."""

    def __init__(self, env: dict[str, str] | None = None, log: Path | None = None, port: int | None = None) -> None:
        self.port = port or free_port()  # a given port: a server restarted where its pages will reconnect
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log
        self._log = log.open("w") if log else subprocess.DEVNULL
        self.proc = subprocess.Popen(
            [sys.executable, str(SERVE), "--server.headless", "true",
             "--server.address", "127.0.0.1", "--server.port", str(self.port), "--browser.gatherUsageStats", "false",
             "--server.fileWatcherType", "none"],
            cwd=ROOT,
            # warm-up off unless asked for (BERTLAB_WARM=1): a test server's first visit is part of what tests time
            env={**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "BERTLAB_WARM": "0", **(env or {})},
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def __enter__(self) -> "AppServer":
        deadline = time.time() + 120
        while time.time() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                if urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2).status == 200:
                    return self
            except OSError:
                time.sleep(0.5)  # polling a process we started, not waiting on the page
        self.__exit__()
        raise RuntimeError(f"streamlit did not start within 120 s (exit code {self.proc.returncode})")

    def wait_for_log(self, text: str, timeout: float = 120.0) -> bool:
        """Whether `text` appears in the server's output within `timeout` seconds (needs `log`)."""
        deadline = time.time() + timeout
        while time.time() < deadline and self.proc.poll() is None:
            if self.log_path is not None and text in self.log_path.read_text(errors="replace"):
                return True
            time.sleep(0.5)  # polling a file another process writes
        return False

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        if self._log is not subprocess.DEVNULL:
            self._log.close()


def wait_idle(page, timeout_ms: int = 120_000) -> None:
    """Until the page has its title and Streamlit reports the script run finished."""
    page.wait_for_selector("[data-testid=stMainBlockContainer] h1", timeout=timeout_ms)
    page.wait_for_function(IDLE, timeout=timeout_ms)
