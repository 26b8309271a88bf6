"""How the app reaches a hall (used by lab_ui.cached when BERTLAB_MODEL_SERVER or BERTLAB_RESULT_CACHE is set;
unset, everything runs in the process as before).

BERTLAB_MODEL_SERVER names the Ray cluster that runs the model service (bertlab.hall.service): `host:port` of
its head (the GCS port, 6379 unless changed), or `auto`. The app's engine calls keep their names and inputs (the
result cache's `what` and `inputs`); the ones the service answers (SERVED) go there through a Serve handle, the
rest run here on the process's own model. A replica of the service that died is restarted by Ray; meanwhile a
call is retried, and a page that waits too long says the service is busy, never shows a traceback.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from collections import OrderedDict
from typing import Callable, TypeVar

import bertlab
from bertlab.errors import BertlabError
from bertlab.tokens import Encoding, encode, with_masks

from .shared import SharedResults, result_key

T = TypeVar("T")
log = logging.getLogger("bertlab.hall")

SERVED = ("analysis", "head", "layers", "senses")
"""The app's engine calls (lab_ui's `what`) that the model service answers."""
RETRY_SECONDS = float(os.environ.get("BERTLAB_MODEL_SERVER_WAIT", "120"))
"""How long a call waits and retries while the service restarts a replica or is full, before giving up."""
PATIENCE = 5.0
"""Seconds without an answer after which the page hears that the service is busy (and the call keeps waiting)."""
BUSY_NOW = "The model service is busy (a replica may be restarting); retrying…"
BUSY = ("The model service is busy (one of its replicas is restarting, or all are full): retried for {seconds:.0f} s "
        "without an answer. This view will load when you try again in a moment.")
ENCODINGS_KEPT = 4096


class ServiceBusy(bertlab.BusyError):
    """The model service did not answer in time (restarting, overloaded, or not started): retried, then said."""


def _ids(encoding: Encoding) -> tuple:
    return tuple((t.id, t.segment) for t in encoding.tokens)


class ModelServer:
    """A Serve handle to the hall's model service, connected on first use (this process joins the Ray cluster
    as a driver; it runs no tasks itself)."""

    def __init__(self, address: str, retry_seconds: float = RETRY_SECONDS) -> None:
        self.address = address
        self.retry_seconds = retry_seconds
        self._handle = None
        self._lock = threading.Lock()

    def handle(self):
        with self._lock:
            if self._handle is None:
                import ray
                from ray import serve

                from .service import APP, DEPLOYMENT

                if not ray.is_initialized():
                    ray.init(address=self.address, namespace="bertlab", log_to_driver=False, logging_level=logging.WARNING)
                self._handle = serve.get_deployment_handle(DEPLOYMENT, app_name=APP)
            return self._handle

    def call(self, model: str, method: str, *args, on_busy: Callable[[str], None] | None = None):
        """`method(*args)` on the service with `model` loaded there. The engine's own errors come back as they
        are (a bad layer number reads the same either way). No answer within PATIENCE seconds (a replica is
        restarting, or every replica is full): `on_busy` hears "busy, retrying" once, and the call goes on
        waiting (Serve routes it to the restarted replica; a dead one's request is sent again) until
        `retry_seconds` have passed: then ServiceBusy, a plain message."""
        from ray import exceptions as rex
        from ray.serve import exceptions as sex

        retried = (rex.RayActorError, rex.ActorUnavailableError, sex.BackPressureError, sex.DeploymentUnavailableError,
                   sex.RequestCancelledError, ConnectionError)
        deadline = time.monotonic() + self.retry_seconds
        said = False

        def busy() -> None:
            nonlocal said
            if on_busy is not None and not said:
                on_busy(BUSY_NOW)
            said = True

        while True:
            response = None
            try:
                handle = self.handle().options(multiplexed_model_id=model)
                response = getattr(handle, method).remote(*args)
                while True:
                    left = deadline - time.monotonic()
                    try:
                        return response.result(timeout_s=max(0.05, min(PATIENCE, left)))
                    except TimeoutError:
                        if left <= PATIENCE:
                            raise
                        busy()
            except rex.RayTaskError as err:
                cause = getattr(err, "cause", None)
                if isinstance(cause, BertlabError):
                    raise cause from None  # the engine's own message, without the remote traceback
                if not isinstance(cause, retried):
                    raise
                error: Exception = err
            except (TimeoutError, *retried) as err:
                error = err
            except ValueError as err:  # the application is not (yet) deployed: Serve says so with a ValueError
                if "application" not in str(err).lower() and "deployment" not in str(err).lower():
                    raise
                error = err
                self._handle = None
            if time.monotonic() >= deadline:
                if response is not None:
                    response.cancel()
                log.warning("model service: no answer after %.0f s (%s)", self.retry_seconds, type(error).__name__)
                raise ServiceBusy(BUSY.format(seconds=self.retry_seconds)) from None
            log.info("model service busy (%s): retrying", type(error).__name__)
            busy()
            time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))

    def stats(self) -> dict:
        """The service's counters (one replica's: passes, requests, pid)."""
        handle = self.handle()
        return handle.stats.remote().result(timeout_s=30)


class Hall:
    """The lab's way to the hall: the shared result cache (optional) and the model service (optional)."""

    def __init__(self, server: ModelServer | None, shared: SharedResults | None) -> None:
        self.server = server
        self.shared = shared
        self.encodings: OrderedDict[tuple, Encoding] = OrderedDict()  # what head/layer requests name by ids
        self._lock = threading.Lock()

    def remember(self, result: object) -> None:
        encoding = getattr(result, "encoding", None)
        if isinstance(encoding, Encoding):
            with self._lock:
                self.encodings[_ids(encoding)] = encoding
                self.encodings.move_to_end(_ids(encoding))
                while len(self.encodings) > ENCODINGS_KEPT:
                    self.encodings.popitem(last=False)

    def remote_work(self, loaded: bertlab.LoadedModel, what: str, inputs: tuple,
                    on_busy: Callable[[str], None] | None = None) -> Callable[[], object] | None:
        """The service call that computes `what` for these inputs, or None (computed here)."""
        if self.server is None or what not in SERVED:
            return None
        name = loaded.info.name

        def call(model: str, method: str, *args):
            return self.server.call(model, method, *args, on_busy=on_busy)

        if what == "analysis":
            text, pair, masked, top_k = inputs
            encoding = encode(loaded, text, pair or None)  # tokenizing only; bad text is the same message here
            encoding = with_masks(loaded, encoding, masked) if masked else encoding
            return lambda: dataclasses.replace(call(name, "analysis", encoding, top_k), model=loaded.info)
        if what == "senses":
            target, sentences = inputs
            return lambda: call(name, "senses", target, tuple(sentences))
        encoding = self.encodings.get(inputs[0])
        if encoding is None:
            return None  # an input this process never analysed: computed here
        if what == "head":
            _ids_, layer, head, query, mask = inputs
            return lambda: call(name, "head", encoding, layer, head, query, mask)
        if what == "layers":
            _ids_, mask = inputs
            return lambda: call(name, "layers", encoding, mask)
        return None

    def fetch(self, loaded: bertlab.LoadedModel, what: str, inputs: tuple, compute: Callable[[], T], remote: bool = True,
              on_busy: Callable[[str], None] | None = None) -> T:
        """The result the app's cache missed: from the hall's shared cache, else the model service, else here
        (`remote=False`: a look that must not compute anything anywhere)."""
        work = (self.remote_work(loaded, what, inputs, on_busy) if remote else None) or compute
        if self.shared is None:
            result = work()
        else:
            result = self.shared.fetch(result_key(loaded.info, what, inputs), work, wait=remote and what in SERVED)
        self.remember(result)
        return result


_hall: Hall | None = None
_made = False
_made_lock = threading.Lock()


def hall_from_env() -> Hall | None:
    """The process's Hall from BERTLAB_MODEL_SERVER and BERTLAB_RESULT_CACHE (read once), or None: no hall."""
    global _hall, _made
    with _made_lock:
        if not _made:
            address = os.environ.get("BERTLAB_MODEL_SERVER", "").strip()
            cache = os.environ.get("BERTLAB_RESULT_CACHE", "").strip()
            if address or cache:
                _hall = Hall(ModelServer(address) if address else None, SharedResults(cache) if cache else None)
            _made = True
        return _hall
