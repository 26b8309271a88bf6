"""`./lab hall --replicas N --port P`: on one machine, every part a lecture hall runs on several.

    Redis (Debian's redis-server)   the class store (BERTLAB_CLASS_STORE), append-only, never evicted
    Redis, a second one             the result cache the replicas share (BERTLAB_RESULT_CACHE), LRU within a bound
    a Ray head on loopback          the model service (bertlab.hall.service) on Ray Serve: batching, model
                                    multiplexing, replica restarts (BERTLAB_MODEL_SERVER)
    N Streamlit replicas            lab_serve.py on their own loopback ports, each with the three above
    haproxy (Debian's)              one port in front: sticky sessions by a cookie it inserts (a Streamlit session
                                    lives in one process), WebSocket upgrades in http mode, long tunnel timeouts,
                                    health checks, and a dead replica's students sent to another (redispatch)

It prints one line with the address once every part answers, restarts a Streamlit replica that dies, and stops
everything it started on Ctrl-C or SIGTERM. Every part is a Debian package or a PyPI one; this file only starts
them with the settings a hall needs and waits for each to answer.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Callable

from .server import ROOT, SERVE, free_port

REDIS_SERVER = os.environ.get("BERTLAB_REDIS_SERVER", "/usr/bin/redis-server")
HAPROXY = os.environ.get("BERTLAB_HAPROXY", shutil.which("haproxy") or "/usr/sbin/haproxy")
COOKIE = "BERTLAB_REPLICA"
"""The cookie haproxy inserts: which Streamlit replica a browser's session lives in."""
REPLICA_HEADER = "X-Bertlab-Replica"
"""Every response through the proxy names the replica that served it (the operator's and the tests' check)."""
START_SECONDS = 300.0

HAPROXY_CONFIG = """\
global
    maxconn {maxconn}

defaults
    mode http
    option forwardfor
    option redispatch
    retries 2
    timeout connect 5s
    timeout http-request 30s
    timeout client 1h
    timeout server 1h
    timeout tunnel 12h

frontend hall
    bind {host}:{port}
    default_backend replicas

backend replicas
    balance leastconn
    cookie {cookie} insert indirect nocache httponly
    option httpchk GET /_stcore/health
    http-check expect status 200
    http-response set-header {header} %[srv_name]
{servers}
"""


class Part:
    """One process of the hall, started in its own process group (stopped by that group's id: Ray's head has
    children of its own)."""

    def __init__(self, name: str, args: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.name, self.args, self.log_path, self.env = name, args, log, env
        self.proc: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(self.args, cwd=ROOT, env={**os.environ, **(self.env or {})}, stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        log.close()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, grace: float = 20.0) -> None:
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # what is left of its group (children that ignored SIGTERM)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=10)


def wait_until(check, what: str, part: Part | None, deadline: float) -> None:
    """Poll `check()` (a process this command started) until true, or fail saying which part did not answer."""
    while time.monotonic() < deadline:
        if part is not None and not part.alive():
            raise RuntimeError(f"{what} exited (code {part.proc.returncode}); its log: {part.log_path}")
        try:
            if check():
                return
        except Exception:  # not answering yet
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{what} did not answer within {START_SECONDS:.0f} s; its log: {part.log_path if part else '-'}")


def http_ok(url: str) -> bool:
    return urllib.request.urlopen(url, timeout=3).status == 200


def redis_ok(url: str) -> bool:
    import redis

    return bool(redis.Redis.from_url(url, socket_timeout=2).ping())


class Hall:
    """Everything `./lab hall` runs; `start()` returns once every part answers, `stop()` ends them all."""

    def __init__(self, replicas: int, port: int, host: str, folder: Path, serve_replicas: int = 1,
                 cache_mb: int = 512, model: str | None = None) -> None:
        self.replicas, self.port, self.host, self.folder = replicas, port, host, folder
        self.serve_replicas, self.cache_mb, self.model = serve_replicas, cache_mb, model
        self.parts: list[Part] = []
        self.streamlit: list[Part] = []
        self.ports: list[int] = []
        self.gcs_port = free_port()
        self.class_url = self.cache_url = ""
        self._stopping = threading.Event()
        self.after_ray_init: Callable[[], None] = lambda: None

    @property
    def address(self) -> str:
        shown = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{shown}:{self.port}"

    def _part(self, name: str, args: list[str], env: dict[str, str] | None = None) -> Part:
        part = Part(name, args, self.folder / f"{name}.log", env)
        self.parts.append(part)
        return part

    def start(self) -> None:
        deadline = time.monotonic() + START_SECONDS
        # the class store: every acknowledged answer written to the append-only file before the reply (fsync always)
        class_port, cache_port = free_port(), free_port()
        (self.folder / "class").mkdir()
        store = self._part("redis-class", [REDIS_SERVER, "--bind", "127.0.0.1", "--port", str(class_port), "--dir",
                                           str(self.folder / "class"), "--save", "", "--appendonly", "yes",
                                           "--appendfsync", "always"])
        # the result cache: no file, least recently used keys out within its memory bound
        cache = self._part("redis-cache", [REDIS_SERVER, "--bind", "127.0.0.1", "--port", str(cache_port), "--save", "",
                                           "--appendonly", "no", "--maxmemory", f"{self.cache_mb}mb",
                                           "--maxmemory-policy", "allkeys-lru"])
        self.class_url, self.cache_url = f"redis://127.0.0.1:{class_port}/0", f"redis://127.0.0.1:{cache_port}/0"
        # Ray's token authentication, with the hall's own token (its folder, readable by this user only): the head,
        # this driver and every replica present it; another machine joins with the same two variables
        token = self.folder / "ray-token"
        token.touch(mode=0o600)
        token.write_text(secrets.token_hex(32))
        os.environ.update({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token), "RAY_USAGE_STATS_ENABLED": "0"})
        ray_bin = str(Path(sys.executable).with_name("ray"))
        head = self._part("ray-head", [ray_bin, "start", "--head", "--block", "--node-ip-address", "127.0.0.1",
                                       "--port", str(self.gcs_port), "--include-dashboard", "false",
                                       "--disable-usage-stats", "--temp-dir", str(self.folder / "ray")])
        wait_until(lambda: redis_ok(self.class_url), "the class store (redis-server)", store, deadline)
        wait_until(lambda: redis_ok(self.cache_url), "the result cache (redis-server)", cache, deadline)
        self._deploy(head, deadline)

        env = {"BERTLAB_MODEL_SERVER": f"127.0.0.1:{self.gcs_port}", "BERTLAB_CLASS_STORE": self.class_url,
               "BERTLAB_RESULT_CACHE": self.cache_url, "TOKENIZERS_PARALLELISM": "false"}
        for i in range(self.replicas):
            port = free_port()
            self.ports.append(port)
            part = self._part(f"streamlit-r{i + 1}", [sys.executable, str(SERVE), "--server.headless", "true",
                                                      "--server.address", "127.0.0.1", "--server.port", str(port),
                                                      "--browser.gatherUsageStats", "false",
                                                      "--server.fileWatcherType", "none"], env)
            self.streamlit.append(part)
        for part, port in zip(self.streamlit, self.ports):
            wait_until(lambda: http_ok(f"http://127.0.0.1:{port}/_stcore/health"), f"Streamlit replica {part.name}", part, deadline)

        servers = "\n".join(f"    server r{i + 1} 127.0.0.1:{port} check cookie r{i + 1} inter 2s fall 2 rise 1"
                            for i, port in enumerate(self.ports))
        config = self.folder / "haproxy.cfg"
        config.write_text(HAPROXY_CONFIG.format(maxconn=max(4096, 64 * self.replicas), host=self.host or "0.0.0.0",
                                                port=self.port, cookie=COOKIE, header=REPLICA_HEADER, servers=servers))
        proxy = self._part("haproxy", [HAPROXY, "-db", "-f", str(config)])
        wait_until(lambda: http_ok(f"{self.address}/_stcore/health"), "the proxy (haproxy)", proxy, deadline)
        (self.folder / "hall.json").write_text(json.dumps(self.state(), indent=1))

    def _deploy(self, head: Part, deadline: float) -> None:
        """The model service on the head (this process is a Ray driver while the hall runs), answering."""
        import ray
        from ray import serve

        from bertlab.hall import service

        address = f"127.0.0.1:{self.gcs_port}"
        wait_until(lambda: (self.folder / "ray" / "session_latest").exists(), "the Ray head", head, deadline)
        while True:
            try:
                ray.init(address=address, namespace="bertlab", log_to_driver=False, logging_level="WARNING")
                break
            except Exception:  # noqa: BLE001  (the head's GCS is still starting)
                if time.monotonic() > deadline or not head.alive():
                    raise RuntimeError(f"the Ray head at {address} did not answer; its log: {head.log_path}") from None
                time.sleep(0.5)
        self.after_ray_init()  # ray.init installs a SIGTERM handler of its own: the hall's must come back after it
        serve.start(proxy_location="Disabled")
        serve.run(service.app(replicas=self.serve_replicas), name=service.APP, route_prefix=None)
        handle = serve.get_deployment_handle(service.DEPLOYMENT, app_name=service.APP)
        model = self.model or os.environ.get("BERTLAB_DEFAULT_MODEL") or __import__("bertlab").DEFAULT_MODEL
        handle.options(multiplexed_model_id=model).info.remote().result(timeout_s=max(5.0, deadline - time.monotonic()))

    def state(self) -> dict:
        """What runs where (written to hall.json in the hall's folder): for the operator, and for the tests."""
        return {"address": self.address, "model_server": f"127.0.0.1:{self.gcs_port}", "class_store": self.class_url,
                "result_cache": self.cache_url, "folder": str(self.folder),
                "replicas": {f"r{i + 1}": {"port": port, "pid": part.proc.pid} for i, (part, port) in enumerate(zip(self.streamlit, self.ports))}}

    def supervise(self) -> None:
        """Until stopped: a Streamlit replica that died is started again on its port (haproxy's health check
        sends its students elsewhere meanwhile)."""
        while not self._stopping.wait(1.0):
            for part in self.streamlit:
                if not part.alive():
                    print(f"bertlab hall: {part.name} exited (code {part.proc.returncode}); starting it again", file=sys.stderr, flush=True)
                    part.start()
                    (self.folder / "hall.json").write_text(json.dumps(self.state(), indent=1))

    def stop(self) -> None:
        self._stopping.set()
        for part in reversed(self.parts):  # the proxy first, Redis last (replicas may still be writing)
            if part.name == "ray-head":
                try:
                    import ray
                    from ray import serve

                    if ray.is_initialized():
                        serve.shutdown()
                        ray.shutdown()
                except Exception:  # noqa: BLE001  (stopping anyway)
                    pass
            part.stop(grace=10.0 if part.name == "ray-head" else 20.0)  # the head drains for up to 30 s by itself


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="./lab hall", description=__doc__.split("\n\n")[0])
    parser.add_argument("--replicas", type=int, default=2, help="Streamlit server processes behind the proxy (default 2)")
    parser.add_argument("--port", type=int, default=8501, help="the one port students and the projector open (default 8501)")
    parser.add_argument("--host", default="0.0.0.0", help="where the proxy listens (default: every interface)")
    parser.add_argument("--serve-replicas", type=int, default=1, help="replicas of the model service on Ray (default 1)")
    parser.add_argument("--cache-mb", type=int, default=512, help="memory of the shared result cache (default 512)")
    parser.add_argument("--model", default=None, help="the model the service loads before the hall opens (default: the app's)")
    parser.add_argument("--folder", default=None, help="where logs, Redis' file and hall.json go (default: a new temporary folder)")
    args = parser.parse_args(argv)
    if args.replicas < 1:
        parser.error("--replicas must be 1 or more")
    for tool, package in ((REDIS_SERVER, "redis-server"), (HAPROXY, "haproxy")):
        if not Path(tool).exists():
            print(f"lab hall: {tool} is missing; as root: apt-get install --no-install-recommends {package}", file=sys.stderr)
            return 2
    folder = Path(args.folder) if args.folder else Path(tempfile.mkdtemp(prefix="bertlab-hall-"))
    folder.mkdir(parents=True, exist_ok=True)
    hall = Hall(args.replicas, args.port, args.host, folder, args.serve_replicas, args.cache_mb, args.model)
    stop = threading.Event()

    def on_signals() -> None:
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())

    on_signals()
    hall.after_ray_init = on_signals
    try:
        hall.start()
        if stop.is_set():
            return 0
        print(f"bertlab hall: {hall.address} ({args.replicas} Streamlit replicas behind haproxy, the model service on "
              f"Ray at 127.0.0.1:{hall.gcs_port}, class store {hall.class_url}, logs in {folder})", flush=True)
        watcher = threading.Thread(target=hall.supervise, daemon=True)
        watcher.start()
        stop.wait()
        return 0
    except RuntimeError as err:
        print(f"lab hall: {err}", file=sys.stderr)
        return 1
    finally:
        hall.stop()


if __name__ == "__main__":
    sys.exit(main())
