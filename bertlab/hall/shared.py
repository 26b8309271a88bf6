"""The result cache a hall's Streamlit replicas share (BERTLAB_RESULT_CACHE=redis://host:port/db): the same
lesson sentence is computed once for the whole hall, not once per replica.

Keyed as the app's in-process cache is (lab_ui.cached): the loaded model's identity (its ModelInfo: name,
device, dtype, notice), what was computed, and the inputs. Values are pickled results (numpy arrays and CPU
tensors), so this Redis must be private to the hall, like the class store (a loopback or a private network):
whoever can write to it can make the replicas unpickle what they wrote. Entries expire (a TTL) and the Redis
that `./lab hall` starts for it evicts least recently used keys within its memory bound.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
from contextlib import contextmanager
from typing import Callable, Iterator, TypeVar

T = TypeVar("T")
log = logging.getLogger("bertlab.hall")

PREFIX = "bertlab:result:"
ENTRY_MB = float(os.environ.get("BERTLAB_RESULT_CACHE_ENTRY_MB", "32"))
"""Results larger than this (pickled) are not shared: each replica keeps its own (a corpus index, say)."""
TTL_SECONDS = int(os.environ.get("BERTLAB_RESULT_CACHE_TTL", str(6 * 3600)))
WAIT_SECONDS = 30.0
"""How long a replica waits for another that is computing the same result before computing it itself."""


def result_key(identity: object, what: str, inputs: tuple) -> str:
    """A stable key (the same in every process) for one result: a digest of the identity, the name and the inputs
    as Python writes them (ModelInfo is a dataclass; inputs are tuples of str, int, float and bool)."""
    return PREFIX + hashlib.sha256(repr((identity, what, inputs)).encode()).hexdigest()


class SharedResults:
    """Get or compute a result once for every process that names the same Redis. While one process computes a
    key, the others wait on its lock (redis-py's own Lock) and then read what it stored."""

    def __init__(self, url: str) -> None:
        import redis

        self.url = url
        self.r = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2, health_check_interval=30)
        self._errors = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, redis.exceptions.LockError)
        self.computed = 0  # results this process computed and stored (tests count them)

    def get(self, key: str) -> object | None:
        try:
            data = self.r.get(key)
        except self._errors as err:
            log.warning("result cache %s unreachable (%s): computing here", self.url, err)
            return None
        return None if data is None else pickle.loads(data)

    def put(self, key: str, value: object) -> None:
        data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        if len(data) > ENTRY_MB * 2**20:
            return
        try:
            self.r.set(key, data, ex=TTL_SECONDS)
        except self._errors as err:
            log.warning("result cache %s unreachable (%s): not shared", self.url, err)

    @contextmanager
    def _computing(self, key: str) -> Iterator[None]:
        """Hold the key's lock while computing (others wait for it, up to WAIT_SECONDS); no Redis: no lock."""
        lock = self.r.lock(key + ":lock", timeout=120, blocking_timeout=WAIT_SECONDS)
        try:
            held = lock.acquire()
        except self._errors:
            held = False
        try:
            yield
        finally:
            if held:
                try:
                    lock.release()
                except self._errors:
                    pass  # expired while computing: another process may have computed it too

    def fetch(self, key: str, compute: Callable[[], T], wait: bool = True) -> T:
        """The shared result for `key`, else `compute()` (once per hall: with `wait`, under the key's lock), stored."""
        hit = self.get(key)
        if hit is not None:
            return hit
        if not wait:
            result = compute()
        else:
            with self._computing(key):
                hit = self.get(key)  # computed by another replica while this one waited
                if hit is not None:
                    return hit
                result = compute()
        self.computed += 1
        self.put(key, result)
        return result
