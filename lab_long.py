"""Long engine work on a page (the head atlas over a corpus, the six influence measures on a long text): a progress
bar, a Stop button that ends the work within one batch, and the result in lab_ui's one cache.

How Stop ends it: the engine calls `progress(done, total)` after each batch, which updates the bar, and every
Streamlit call is a point where a running script yields to a pending rerun. Clicking Stop asks for a rerun, so
the work ends at its next batch (no result is cached); the rerun runs Stop's callback, which records where it
stopped, and the page says so with a button to start again. `should_stop` (a threading.Event set by the same
callback) stops the engine between batches too, should the script still be running when the callback runs.
"""

from __future__ import annotations

import threading
from typing import Callable, TypeVar

import streamlit as st

import lab_ui
from bertlab import Stopped

T = TypeVar("T")
Work = Callable[[Callable[[int, int], None], Callable[[], bool]], T]
"""work(progress, should_stop) -> result: an engine call with its progress callback and its stop question."""


class _Absent(Exception):
    """Not in the cache (a look that computes nothing)."""


def _absent() -> None:
    raise _Absent


def _stop(state: str, token: str, event: threading.Event, seen: list[int]) -> None:
    st.session_state[state] = (token, *seen)
    event.set()


def _again(state: str) -> None:
    st.session_state.pop(state, None)


def cached_only(loaded, what: str, inputs: tuple) -> object | None:
    """The cached result for these inputs, or None: never computes."""
    try:
        return lab_ui.cached(loaded, what, inputs, _absent)
    except _Absent:
        return None


def long_work(loaded, what: str, inputs: tuple, work: Work[T], label: str, unit: str) -> T | None:
    """The cached result of `work`, or computed now with a progress bar and a Stop button; None after a Stop (the
    page has then said so and offered to start again). Bad input is a message, never a traceback (lab_ui.guarded)."""
    state, token = f"_stopped_{what}", repr((loaded.info, inputs))
    stopped = st.session_state.get(state)
    if stopped and stopped[0] == token:
        hit = cached_only(loaded, what, inputs)  # it finished as Stop was clicked
        if hit is not None:
            st.session_state.pop(state, None)
            return hit
        done, total = stopped[1:]
        st.info(f"Stopped after {done:,} of {total:,} {unit}: nothing was kept.", icon="⏹️")
        st.button("Start again", key=f"{what}_again", on_click=_again, args=(state,), icon=":material/play_arrow:")
        return None

    seen = [0, 0]

    def compute() -> T:
        slot = st.empty()  # one placeholder: emptied when the work ends, bar and button with it
        box = slot.container()
        bar = box.progress(0.0, text=f"{label}…")
        event = threading.Event()
        box.button("Stop", key=f"{what}_stop", on_click=_stop, args=(state, token, event, seen), icon=":material/stop:",
                   help="Ends the work after the batch it is on; nothing is kept.")

        def progress(done: int, total: int) -> None:
            seen[:] = [done, total]
            bar.progress(done / max(total, 1), text=f"{label}: {done:,} of {total:,} {unit}")

        try:
            return work(progress, event.is_set)
        finally:
            slot.empty()

    def attempt() -> T | None:
        try:
            return lab_ui.cached(loaded, what, inputs, compute)
        except Stopped as err:  # bertlab.Stopped: the engine's own says how far it got
            st.session_state[state] = (token, getattr(err, "done", seen[0]), getattr(err, "total", seen[1]))
            return None

    result = lab_ui.guarded(attempt)
    if result is None:
        st.rerun()
    return result
