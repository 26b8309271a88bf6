"""Operator settings for a shared server: what users may load, how much they may ask for.

Read from the environment at each call, so an operator sets them where the server starts:

    BERTLAB_ALLOWED_MODELS   comma-separated names or globs users may load (e.g. "bert-base-*,minilm");
                             unset: any
    BERTLAB_ALLOWED_PATHS    os.pathsep-separated directories local checkpoints must be inside;
                             "" (empty): no local paths at all; unset: none in the app (a server others
                             reach, `for_server()`), any directory in the command line and notebooks
    BERTLAB_ALLOW_PICKLE     "1" lets checkpoints with only pickle weights (.bin) load; unset: safetensors only
    BERTLAB_MAX_CHARS        longest text accepted (default 20000 characters)
    BERTLAB_MAX_SENTENCES    most word-sense sentences (default 16)
    BERTLAB_MAX_CONCURRENT   model runs at once in one process, across all sessions (default 2)
"""

from __future__ import annotations

import fnmatch
import os
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from .errors import BertlabError, ModelLoadError


class PolicyError(ModelLoadError):
    """The operator of this server does not allow that model or path."""


class BusyError(BertlabError):
    """The server is at its limit of concurrent model runs."""


def _int(name: str, default: int) -> int:
    try:
        return max(1, int(os.environ.get(name, default)))
    except ValueError:
        return default


@dataclass(frozen=True)
class Policy:
    allowed_models: tuple[str, ...] | None
    allowed_paths: tuple[Path, ...] | None
    allow_pickle: bool
    max_chars: int
    max_sentences: int
    max_concurrent: int

    @classmethod
    def from_env(cls, server: bool = False) -> "Policy":
        """The operator's settings; `server`: for the app, where BERTLAB_ALLOWED_PATHS unset means no local folder
        (students must not read, or probe, the serving machine's disk unless its operator lists a folder)."""
        models = os.environ.get("BERTLAB_ALLOWED_MODELS")
        paths = os.environ.get("BERTLAB_ALLOWED_PATHS")
        if paths is None:
            roots = () if server else None
        else:
            roots = tuple(Path(p).expanduser().resolve() for p in paths.split(os.pathsep) if p.strip())
        return cls(
            allowed_models=None if models is None else tuple(m.strip() for m in models.split(",") if m.strip()),
            allowed_paths=roots,
            allow_pickle=os.environ.get("BERTLAB_ALLOW_PICKLE") == "1",
            max_chars=_int("BERTLAB_MAX_CHARS", 20_000),
            max_sentences=_int("BERTLAB_MAX_SENTENCES", 16),
            max_concurrent=_int("BERTLAB_MAX_CONCURRENT", 2),
        )

    def check_model(self, name: str, source: str, is_local: bool) -> None:
        """Refuse, before any download or file read, what the operator did not allow."""
        if self.allowed_models is not None and not any(fnmatch.fnmatchcase(name, pattern) for pattern in self.allowed_models):
            raise PolicyError(
                f"This server does not offer '{name}'. Models available here: {', '.join(self.allowed_models) or 'none'}."
            )
        if is_local and self.allowed_paths == ():
            # the same words whether the path exists, is a file or a folder: the disk is not the students' to probe
            raise PolicyError(f"This server does not load models from folders on its own disk ('{name}'). Choose one of "
                              "the models it offers; to serve a local checkpoint, its operator sets BERTLAB_ALLOWED_PATHS.")
        if is_local and self.allowed_paths is not None:
            resolved = Path(source).expanduser().resolve()
            if not any(resolved == root or root in resolved.parents for root in self.allowed_paths):
                raise PolicyError(f"'{name}' is outside the folders this server may read models from.")


def policy() -> Policy:
    return Policy.from_env()


def for_server() -> Policy:
    """The app's settings: as policy(), but with BERTLAB_ALLOWED_PATHS unset no local folder may be read."""
    return Policy.from_env(server=True)


def looks_local(source: str) -> bool:
    """Would the loader read `source` from the disk (a path, or a relative name that exists here) rather than
    ask the Hub? Decided as the loader decides, so the app's rule covers everything the loader reads."""
    path = Path(source)
    return source.startswith((".", "/", "~", "\\")) or path.is_absolute() or path.exists()


def check_served(name: str, source: str, packaged: bool) -> None:
    """Refuse, in the app, a local path its operator did not list in BERTLAB_ALLOWED_PATHS (unset: none), before
    anything reads it: the message never says whether the path exists."""
    for_server().check_model(name, source, is_local=not packaged and looks_local(source))


_slots_lock = threading.Lock()
_slots: dict[int, threading.BoundedSemaphore] = {}


@contextmanager
def model_slot(wait_seconds: float = 120.0) -> Iterator[None]:
    """At most BERTLAB_MAX_CONCURRENT forward passes at once: more only thrash the same cores."""
    limit = policy().max_concurrent
    with _slots_lock:
        semaphore = _slots.setdefault(limit, threading.BoundedSemaphore(limit))
    if not semaphore.acquire(timeout=wait_seconds):
        raise BusyError("The server is busy with other people's requests; please try again in a moment.")
    try:
        yield
    finally:
        semaphore.release()
