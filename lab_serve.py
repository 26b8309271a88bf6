"""`streamlit run app.py`, with st.navigation in charge from the server's first run.

app.py declares its pages with st.navigation, and they live in pages/. A folder with that name also switches on
Streamlit's older, file-based navigation, which it keeps until a script run calls st.navigation: so the very
first run of a fresh server would wrap app.py in a navigation of its own, and a first visitor who opens a link
to a page (/tokens, a teacher's shared link) would get a "Page not found" dialog. Streamlit has no setting for
this; the flag below is the one st.navigation itself sets on its first call, set before the server starts.

    python lab_serve.py [streamlit options]      (what ./lab app and `bertlab app` run)

It also warms the server (lab_warm.py): when it answers, the default model is loaded and the lesson's first
screens are computed in the background, and it prints one line when it is ready (BERTLAB_WARM=0: off).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path

APP = Path(__file__).resolve().with_name("app.py")


def warm_when_serving(announce=print) -> None:
    """Once the server answers, fill the caches the first visitor would wait for (lab_warm.py), then say it is
    ready. A daemon thread: the server does not wait for it, and a visitor before it finishes shares its work."""
    import threading

    def run() -> None:
        from streamlit import config
        from streamlit.runtime import Runtime

        while not (Runtime.exists() and Runtime.instance().state.name in ("NO_SESSIONS_CONNECTED", "ONE_OR_MORE_SESSIONS_CONNECTED")):
            time.sleep(0.2)  # waiting for a server this process is starting: no other signal to wait on
        sys.path.insert(0, str(APP.parent))
        logging.getLogger("streamlit.runtime.scriptrunner_utils.script_run_context").setLevel(logging.ERROR)
        try:
            import lab_warm

            done = lab_warm.warm()
        except Exception:  # a warm-up that fails leaves a cold server, which still works
            logging.getLogger("bertlab.app").exception("warming the server failed; the first visitor will wait instead")
            return
        port = config.get_option("server.port")
        announce(f"bertlab is ready: http://localhost:{port} ({done['model']} loaded, the lesson's first screens computed "
                 f"in {sum(done['seconds'].values()):.0f} s)", flush=True)
        try:
            seconds = lab_warm.warm_index(done["loaded"])
            logging.getLogger("bertlab.app").info("the lesson's word-sense index is ready (%.1f s)", seconds)
        except Exception:
            logging.getLogger("bertlab.app").exception("the word-sense index could not be prepared; the lesson builds it when asked")

    threading.Thread(target=run, name="bertlab-warm-up", daemon=True).start()


def main(argv: list[str]) -> int:
    from streamlit.runtime.pages_manager import PagesManager
    from streamlit.web import cli

    PagesManager.uses_pages_directory = False
    if os.environ.get("BERTLAB_WARM", "1") != "0":
        warm_when_serving()
    sys.argv = ["streamlit", "run", str(APP), *argv]
    return cli.main()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
