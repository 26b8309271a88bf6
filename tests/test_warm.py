"""A warm server: lab_serve.py loads the default model (offline: its stand-in) and computes the lesson's first
screens when the server starts, says when it is ready, and the first visitor waits for none of it."""

from __future__ import annotations

import re


def test_the_server_warms_itself_and_the_first_visit_loads_nothing(chromium, tmp_path):
    from playwright.sync_api import sync_playwright

    from labtools.server import FLAGS, AppServer, wait_idle

    log = tmp_path / "server.log"
    with AppServer(env={"BERTLAB_WARM": "1"}, log=log) as app:
        assert app.wait_for_log("bertlab is ready", timeout=300), log.read_text()[-2000:]
        before = log.read_text()
        assert re.search(r"loaded minilm on cpu", before), "the model loaded before anyone came"
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=FLAGS)
            page = browser.new_page()
            page.goto(app.url + "/")
            page.wait_for_selector(".chips", timeout=120_000)
            wait_idle(page)
            browser.close()
        after = log.read_text()[len(before):]
        assert "loaded " not in after, "the first visit found the model loaded"
        assert "Traceback" not in log.read_text()
