"""The live class's store fixtures: both back ends behind one parametrized fixture, and Debian's redis-server
started on a free loopback port in a temporary folder (and stopped) by the tests themselves."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Callable, Iterator

import pytest

from bertlab.classroom import ClassStore, open_store
from labtools.server import free_port

REDIS_SERVER = os.environ.get("BERTLAB_REDIS_SERVER", "/usr/bin/redis-server")


class RedisServer:
    """`redis-server` on 127.0.0.1 in `folder`, with an append-only file fsynced on every write (so that an
    acknowledged write survives a killed server, as README asks of a class's Redis); stopped on exit."""

    def __init__(self, folder: Path, port: int | None = None) -> None:
        self.folder, self.port = folder, port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None

    def start(self) -> "RedisServer":
        self.folder.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [REDIS_SERVER, "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.folder), "--save", "",
             "--appendonly", "yes", "--appendfsync", "always", "--protected-mode", "yes", "--daemonize", "no"],
            stdout=(self.folder / "redis.log").open("ab"), stderr=subprocess.STDOUT,
        )
        import redis

        client = redis.Redis.from_url(self.url, socket_connect_timeout=1)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                if client.ping():
                    client.close()
                    return self
            except redis.exceptions.RedisError:
                time.sleep(0.05)  # polling a server we started until it answers
        self.stop()
        raise RuntimeError(f"redis-server did not start: {(self.folder / 'redis.log').read_text()[-500:]}")

    def kill(self) -> None:
        """SIGKILL: no shutdown, no final save."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def need_redis_server() -> None:
    """Debian's redis-server (./lab installs it): a skip with the reason on a workstation, a failure in CI."""
    if shutil.which(REDIS_SERVER) is None and not Path(REDIS_SERVER).exists():
        problem = f"Debian's redis-server is not installed at {REDIS_SERVER} (./lab installs it: apt-get install redis-server)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"CI=true and {problem}", pytrace=False)
        pytest.skip(problem)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    need_redis_server()
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


class Clock:
    """A clock the tests move by hand (rooms expire, rate windows pass) without waiting; it starts now, so that
    Redis key expiry (real time) never runs ahead of it."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(params=["sqlite", "redis"])
def store_url(request, tmp_path: Path) -> str:
    """A fresh store of each kind: a new SQLite file, or the test Redis emptied."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'class.sqlite3'}"
    server: RedisServer = request.getfixturevalue("redis_server")
    import redis

    client = redis.Redis.from_url(server.url)
    client.flushdb()
    client.close()
    return server.url


@pytest.fixture
def make_store(store_url: str) -> Iterator[Callable[..., ClassStore]]:
    """`make_store(clock=None)`: another store object on the same database (as another process would open it)."""
    made: list[ClassStore] = []

    def make(clock: Callable[[], float] | None = None) -> ClassStore:
        store = open_store(store_url, clock=clock or time.time)
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()


@pytest.fixture
def store(make_store) -> ClassStore:
    return make_store()
