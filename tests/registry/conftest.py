"""Fixtures for the registry tests: a real server on a free loopback port, and HTTP helpers.

``registry_factory(data_dir)`` runs ``create_app`` in a background thread with its own event loop
(stop and start again on the same directory to test restarts); ``registry`` is one such server
on ``tmp_path``. ``http`` speaks raw JSON to it.
"""

from __future__ import annotations

import asyncio
import json
import queue
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web

from app.registry import create_app

MEDIA_TYPE = "application/vnd.schemaregistry.v1+json"
REPO_ROOT = Path(__file__).resolve().parents[2]


class RegistryThread:
    """The registry app served from a daemon thread on 127.0.0.1 and an OS-chosen port."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> RegistryThread:
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            runner = web.AppRunner(create_app(self.data_dir), access_log=None)
            try:
                loop.run_until_complete(runner.setup())
                site = web.TCPSite(runner, "127.0.0.1", 0)
                loop.run_until_complete(site.start())
                self.port = runner.addresses[0][1]
            except BaseException as exc:
                self._error = exc
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(runner.cleanup())
                loop.close()

        self._thread = threading.Thread(target=run, name="registry-under-test", daemon=True)
        self._thread.start()
        if not ready.wait(15):
            raise RuntimeError("registry did not start within 15 s")
        if self._error is not None:
            raise self._error
        return self

    def stop(self) -> None:
        if self._thread is None or self._loop is None:
            return
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(15)
        self._thread = None


@pytest.fixture
def registry_factory(tmp_path: Path) -> Iterator[Callable[..., RegistryThread]]:
    started: list[RegistryThread] = []

    def start(data_dir: Path | None = None) -> RegistryThread:
        server = RegistryThread(data_dir or tmp_path / "registry").start()
        started.append(server)
        return server

    yield start
    for server in reversed(started):
        server.stop()


@pytest.fixture
def registry(registry_factory: Callable[..., RegistryThread]) -> RegistryThread:
    return registry_factory()


@dataclass
class Answer:
    status: int
    body: Any
    content_type: str

    @property
    def error_code(self) -> int | None:
        return self.body.get("error_code") if isinstance(self.body, dict) else None


class Http:
    """Raw calls to the registry: ``http.post("/subjects/s/versions", {"schema": ...})``."""

    def __init__(self, base_url: str) -> None:
        self._client = httpx.Client(base_url=base_url, timeout=10.0)

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content_type: str = MEDIA_TYPE,
        raw: bytes | None = None,
    ) -> Answer:
        content = raw if raw is not None else None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": content_type} if content is not None else {}
        response = self._client.request(method, path, content=content, headers=headers)
        try:
            parsed = response.json()
        except ValueError:
            parsed = response.text
        return Answer(response.status_code, parsed, response.headers.get("content-type", ""))

    def get(self, path: str) -> Answer:
        return self.call("GET", path)

    def post(self, path: str, body: Any = None, **kwargs: Any) -> Answer:
        return self.call("POST", path, body, **kwargs)

    def put(self, path: str, body: Any = None) -> Answer:
        return self.call("PUT", path, body)

    def delete(self, path: str) -> Answer:
        return self.call("DELETE", path)

    def register(self, subject: str, schema: dict | str) -> Answer:
        text = schema if isinstance(schema, str) else json.dumps(schema)
        return self.post(f"/subjects/{subject}/versions", {"schema": text})

    def close(self) -> None:
        self._client.close()


@pytest.fixture
def http(registry: RegistryThread) -> Iterator[Http]:
    client = Http(registry.url)
    yield client
    client.close()


class RegistryProcess:
    """``python -m app.registry`` as a child process on a free port (read from its log line)."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""
        self.log: list[str] = []

    def start(self, timeout: float = 20.0) -> RegistryProcess:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "app.registry",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--data-dir",
                str(self.data_dir),
            ],
            cwd=REPO_ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        lines: queue.Queue[str | None] = queue.Queue()

        def pump() -> None:
            assert self.proc is not None and self.proc.stderr is not None
            for line in self.proc.stderr:
                lines.put(line)
            lines.put(None)

        threading.Thread(target=pump, daemon=True).start()
        self._lines = lines
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=0.2)
            except queue.Empty:
                continue
            if line is None:
                break
            self.log.append(line)
            match = re.search(r"registry listening on (http://\S+)", line)
            if match:
                self.url = match.group(1)
                return self
        self.kill()
        raise RuntimeError("registry process did not start:\n" + "".join(self.log))

    def drain_log(self) -> list[str]:
        while True:
            try:
                line = self._lines.get(timeout=2)
            except queue.Empty:
                return self.log
            if line is None:
                return self.log
            self.log.append(line)

    def signal(self, signum: int) -> int:
        assert self.proc is not None
        self.proc.send_signal(signum)
        return self.proc.wait(timeout=15)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=15)


@pytest.fixture
def process_factory(tmp_path: Path) -> Iterator[Callable[..., RegistryProcess]]:
    started: list[RegistryProcess] = []

    def start(data_dir: Path | None = None) -> RegistryProcess:
        process = RegistryProcess(data_dir or tmp_path / "registry").start()
        started.append(process)
        return process

    yield start
    for process in started:
        process.kill()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryThread]:
    """One registry for a whole test module (its tests use distinct subjects)."""
    registry = RegistryThread(Path(tmp_path_factory.mktemp("registry"))).start()
    yield registry
    registry.stop()


@pytest.fixture
def api(server: RegistryThread) -> Iterator[Http]:
    client = Http(server.url)
    yield client
    client.close()
