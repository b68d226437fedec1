"""Shared fixtures: the embedded stack (one per test session) and worker processes.

Integration tests start their own broker, registry and workers on free loopback ports and
stop them afterwards; unit tests need none of this.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from app.tools.run import start_worker, stop_process, wait_ready
from app.tools.stack import EmbeddedStack, free_port

PARTITIONS = 4


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[EmbeddedStack]:
    """A fresh broker + registry with every topic and schema (starting one takes ~1 s, and a
    fresh one keeps each test's topics to itself)."""
    base = tmp_path / "stack"
    with EmbeddedStack(partitions=PARTITIONS, log_dir=base, data_dir=base / "registry") as s:
        yield s


class Worker:
    """A running ``faust -A app.main worker`` process."""

    def __init__(self, process: subprocess.Popen, web_port: int, log_path: Path) -> None:
        self.process = process
        self.web_port = web_port
        self.log_path = log_path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture
def start_worker_process(
    stack: EmbeddedStack, tmp_path: Path
) -> Iterator[Callable[..., Worker]]:
    """Factory: start a worker against ``stack`` with extra env; all are stopped at teardown."""
    started: list[Worker] = []

    def start(app_id: str, **env: str) -> Worker:
        index = len(started)
        port = free_port()
        log_path = tmp_path / f"worker-{index}.log"
        full_env = {
            **stack.env(),
            "APP_ID": app_id,
            "WEB_PORT": str(port),
            "DATA_DIR": str(tmp_path / f"worker-{index}"),
            "WORKER_CANONICAL_URL": f"http://127.0.0.1:{port}",
            **env,
        }
        process = start_worker(full_env, port, log_path)
        worker = Worker(process, port, log_path)
        started.append(worker)
        try:
            wait_ready(port, process)
        except Exception:
            print(worker.log()[-5000:])
            raise
        return worker

    yield start
    for worker in started:
        stop_process(worker.process)
        if os.environ.get("SHOW_WORKER_LOGS"):
            with contextlib.suppress(OSError):
                print(worker.log()[-20000:])
