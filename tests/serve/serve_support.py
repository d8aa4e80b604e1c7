"""Fixtures of the service tests: apps over the fake engine (HTTP mechanics), the real engine
over the session's tiny store (behaviour), servers in subprocesses, and a real redis-server."""

from __future__ import annotations

import functools
import os
import shutil
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

import httpx
import pytest
from fakes import FakeEngine

with warnings.catch_warnings():  # starlette asks for httpx2, which TestClient does not need yet
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from shelfrank.config import Settings, load_settings
from shelfrank.serve.app import create_app
from shelfrank.serve.service import EngineSource

ADMIN = "test-admin-token-0123456789"
ADMIN_HEADERS = {"X-Admin-Token": ADMIN}


def settings_for(data_dir: Path, **serve: object) -> Settings:
    return load_settings(store={"data_dir": data_dir, "memory_limit": "1GB", "threads": 1},
                         serve={"admin_token": ADMIN, **serve})


def wait_ready(client, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = client.get("/readyz")
        if r.status_code == 200:
            return
        time.sleep(0.05)
    raise AssertionError(f"not ready after {timeout} s: {r.text}")


@pytest.fixture
def fake_client(tmp_path):
    """(client, engine) over a FakeEngine; extra settings via the `serve_overrides` marker."""
    clients = []

    def make(engine: FakeEngine | None = None, **serve: object):
        engine = engine or FakeEngine()
        settings = settings_for(tmp_path / f"data{len(clients)}", **serve)
        client = TestClient(create_app(settings, engine_factory=lambda s: EngineSource(engine)))
        client.__enter__()
        clients.append(client)
        wait_ready(client)
        return client, engine

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture(scope="session")
def world(request) -> dict:
    """The session's tiny store and models (tests/conftest.py). SHELFRANK_SERVE_TEST_WORLD=<root>
    reuses one built before (a folder holding data/shelfrank.duckdb and data/models)."""
    reuse = os.environ.get("SHELFRANK_SERVE_TEST_WORLD")
    if reuse:
        data_dir = Path(reuse) / "data"
        return {"data_dir": data_dir, "models_dir": data_dir / "models", "database": data_dir / "shelfrank.duckdb"}
    return request.getfixturevalue("tiny_world")


@pytest.fixture
def world_dir(world, tmp_path) -> Path:
    """A data folder of this test's own: a link to the session's store and models, so intake
    logs never mix between tests (the server opens the store read-only)."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "shelfrank.duckdb").symlink_to(world["database"])
    (data_dir / "models").symlink_to(world["models_dir"], target_is_directory=True)
    return data_dir


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """`shelfrank serve` in a subprocess on a free loopback port."""

    def __init__(self, data_dir: Path, log_path: Path, **env: str) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        environment = {**os.environ, "SHELFRANK_SERVE__ADMIN_TOKEN": ADMIN, "SHELFRANK_STORE__THREADS": "1",
                       **{f"SHELFRANK_SERVE__{k.upper()}": v for k, v in env.items()}}
        with log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "shelfrank.cli", "--data-dir", str(data_dir), "serve", "--port",
                 str(self.port)], stdout=log, stderr=subprocess.STDOUT, env=environment)
        self.client = httpx.Client(base_url=self.url, timeout=30.0)

    def wait_ready(self, timeout: float = 90.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited with {self.proc.returncode}:\n{self.log_path.read_text()}")
            try:
                r = self.client.get("/readyz")
                if r.status_code == 200:
                    return r.json()
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"server not ready after {timeout} s:\n{self.log_path.read_text()}")

    def kill(self) -> None:
        """SIGKILL: no shutdown hook runs."""
        self.proc.kill()
        self.proc.wait(timeout=10)
        self.client.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.client.close()


@pytest.fixture
def start_server(tmp_path):
    servers: list[ServerProcess] = []

    def start(data_dir: Path, **env: str) -> ServerProcess:
        server = ServerProcess(data_dir, tmp_path / f"server-{len(servers)}.log", **env)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def _redis_binary() -> str | None:
    return shutil.which("redis-server")


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    """A real redis-server on a free loopback port (no persistence), for the session."""
    binary = _redis_binary()
    if binary is None:
        pytest.skip("redis-server is not installed (make test installs it: apt-get install redis-server)")
    port = free_port()
    workdir = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", str(workdir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import redis

    client = redis.Redis(host="127.0.0.1", port=port)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                pytest.fail("redis-server did not start")
            time.sleep(0.05)
    yield f"redis://127.0.0.1:{port}/0"
    client.close()
    proc.terminate()
    proc.wait(timeout=10)


class InProcessServer:
    """An app served by uvicorn on a thread of this process, on a free loopback port."""

    def __init__(self, app) -> None:
        import threading

        import uvicorn

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    access_log=False))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise AssertionError("uvicorn did not start")
            time.sleep(0.02)
        self.client = httpx.Client(base_url=self.url, timeout=60.0)

    def stop(self) -> None:
        self.client.close()
        self.server.should_exit = True
        self.thread.join(timeout=30)


@functools.lru_cache
def store_end(database: Path):
    """The time of the store's last event (pages are requested just after it). DuckDB refuses a
    second connection to a file with another configuration: this one matches settings_for's."""
    import duckdb

    con = duckdb.connect(str(database), read_only=True, config={"memory_limit": "1GB", "threads": 1})
    try:
        return con.execute("SELECT max(ts) FROM events").fetchone()[0]
    finally:
        con.close()
