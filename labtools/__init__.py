"""Tooling that drives the app from outside: a real `streamlit run`, Chromium, the classroom load test, and
the app-side figures of the bench (bytes on the wire, typing latency, memory).

It lives outside `bertlab/` because the engine must not know where `app.py` is or how a browser reaches it:
this package depends on the engine and the app, never the other way round.
"""
