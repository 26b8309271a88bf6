"""A live class: students join a room by code, answer the teacher's polls on their phones, and the projector
shows the room's answers beside the model's.

The class lives in a store, never in a server process: SQLite in a file by default (BERTLAB_CLASS_DB,
WAL mode, created on first use; it survives a server restart mid-class), or Redis
(BERTLAB_CLASS_STORE=redis://host:port/db) when several server processes serve one class. Both back ends
implement `ClassStore` and pass the same tests. What a poll asks and what the model answers are computed
from the live engine by `bertlab.classroom.polls`; the lesson steps' checks by `bertlab.classroom.lesson`.

    >>> from bertlab.classroom import open_store
    >>> store = open_store()                       # the store named by the environment
    >>> room, key = store.create_room("Monday")    # key: the teacher's secret, for the teacher's link only
    >>> me = store.join(room.code, "Sam")
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable

from .base import (
    ALPHABET, ANSWER_LIMIT, ANSWER_WINDOW_S, CODE_LENGTH, MAX_ANSWER_CHARS, MAX_NICKNAME_CHARS, POLL_KINDS, POLL_STATES,
    Answer, AnswerRefused, ClassError, ClassStore, Forbidden, NoSuchPoll, NotAStudent, Poll, PollLocked, RateLimited, Room,
    RoomClosed, RoomNotFound, StoreUnavailable, Student, group_key, iso, normalize_code,
)

__all__ = [
    "ALPHABET", "ANSWER_LIMIT", "ANSWER_WINDOW_S", "CODE_LENGTH", "MAX_ANSWER_CHARS", "MAX_NICKNAME_CHARS", "POLL_KINDS",
    "POLL_STATES", "Answer", "AnswerRefused", "ClassError", "ClassStore", "Forbidden", "NoSuchPoll", "NotAStudent", "Poll", "PollLocked",
    "RateLimited", "Room", "RoomClosed", "RoomNotFound", "StoreUnavailable", "Student", "default_db_path", "group_key",
    "iso", "normalize_code", "open_store", "store_url",
]

REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


def default_db_path() -> Path:
    """Where the SQLite store lives when BERTLAB_CLASS_DB is not set: the user's cache folder."""
    from platformdirs import user_cache_path

    return user_cache_path("bertlab") / "class.sqlite3"


def store_url() -> str:
    """The store the environment names: BERTLAB_CLASS_STORE (redis://..., or sqlite:///path), else the SQLite
    file BERTLAB_CLASS_DB, else the default file. Read on every call: tests and operators change it."""
    url = os.environ.get("BERTLAB_CLASS_STORE", "").strip()
    if url:
        return url
    path = os.environ.get("BERTLAB_CLASS_DB", "").strip()
    return "sqlite:///" + str(Path(path).expanduser() if path else default_db_path())


def open_store(url: str | None = None, clock: Callable[[], float] = time.time) -> ClassStore:
    """The class store at `url` (default: `store_url()`): SQLite (`sqlite:///path`) or Redis (`redis://...`)."""
    url = url or store_url()
    if url.startswith(REDIS_SCHEMES):
        from .redis_store import RedisStore

        return RedisStore(url, clock=clock)
    if url.startswith("sqlite:///"):  # sqlite:///relative/path or sqlite:////absolute/path
        from .sqlite_store import SqliteStore

        return SqliteStore(url[len("sqlite:///"):], clock=clock)
    raise ClassError(f"BERTLAB_CLASS_STORE must start with redis://, rediss://, unix:// or sqlite:///, not '{url[:40]}'.")
