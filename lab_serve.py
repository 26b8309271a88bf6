"""`streamlit run app.py`, with st.navigation in charge from the server's first run.

app.py declares its pages with st.navigation, and they live in pages/. A folder with that name also switches on
Streamlit's older, file-based navigation, which it keeps until a script run calls st.navigation: so the very
first run of a fresh server would wrap app.py in a navigation of its own, and a first visitor who opens a link
to a page (/tokens, a teacher's shared link) would get a "Page not found" dialog. Streamlit has no setting for
this; the flag below is the one st.navigation itself sets on its first call, set before the server starts.

    python lab_serve.py [streamlit options]      (what ./lab app and `bertlab app` run)
"""

from __future__ import annotations

import sys
from pathlib import Path

APP = Path(__file__).resolve().with_name("app.py")


def main(argv: list[str]) -> int:
    from streamlit.runtime.pages_manager import PagesManager
    from streamlit.web import cli

    PagesManager.uses_pages_directory = False
    sys.argv = ["streamlit", "run", str(APP), *argv]
    return cli.main()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
