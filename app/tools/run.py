"""``make run``: the whole product on the embedded stack, with a summary for people.

Starts the Tansu broker and the Schema Registry, one Faust worker and the simulator (all eight
topics, a little bad input), prints the web address, then every ``--report-every`` seconds and
at the end a summary of the published aggregates and dead letters. ``DURATION`` seconds (0:
until Ctrl-C) of traffic, then it waits for the open windows to close, prints the final
summary and the accounting (per topic: what the simulator sent against what the worker
aggregated and dead-lettered, and the reasons), and stops everything.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from agents import DOMAINS
from app.settings import load_settings
from app.tools.results import (
    accounting,
    read_dead_letters,
    read_derived,
    read_metrics,
    summarize,
)
from app.tools.stack import EmbeddedStack, free_port

__all__ = ["main", "start_worker", "wait_ready"]


def start_worker(env: dict[str, str], web_port: int, log_path: Path) -> subprocess.Popen:
    """One ``faust -A app.main worker`` process with ``env`` added to ours."""
    faust = Path(sys.executable).with_name("faust")
    log = open(log_path, "ab")  # noqa: SIM115 - owned by the process
    return subprocess.Popen(
        [str(faust), "-A", "app.main", "worker", "-l", "info", "--web-port", str(web_port)],
        env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip


def wait_ready(web_port: int, process: subprocess.Popen, timeout: float = 90.0) -> None:
    """Block until the worker's /readyz says ready."""
    deadline = time.monotonic() + timeout
    url = f"http://127.0.0.1:{web_port}/readyz"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"worker exited with {process.returncode} while starting")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1.0) as response:
            if response.status == 200:
                return
        time.sleep(0.25)
    raise TimeoutError(f"worker not ready after {timeout:.0f}s ({url})")


def stop_process(process: subprocess.Popen, timeout: float = 20.0) -> None:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def print_summary(stack: EmbeddedStack, title: str) -> None:
    async def collect() -> str:
        derived = await read_derived(stack.bootstrap, stack.registry_url)
        return summarize(derived, await read_dead_letters(stack.bootstrap))

    print(f"\n=== {title} ===\n{asyncio.run(collect())}", flush=True)


def final_accounting(report: Path, worker_url: str) -> str:
    """The accounting of :func:`app.tools.results.accounting`, or why there is none."""
    samples = read_metrics(worker_url)
    if samples is None:
        return f"accounting unavailable: the worker's {worker_url}/metrics did not answer"
    if not report.exists():
        return f"accounting unavailable: the simulator wrote no report ({report})"
    settings = load_settings()
    consumed = [d.topic for d in DOMAINS
                if not settings.source_topics or d.topic in settings.source_topics]  # fmt: skip
    return accounting(json.loads(report.read_text()), samples, consumed)


def main(argv: Sequence[str] | None = None) -> int:
    logging.getLogger("httpx").setLevel(logging.WARNING)
    parser = argparse.ArgumentParser(prog="python -m app.tools.run", description=__doc__)
    parser.add_argument("--duration", type=float, default=float(os.environ.get("DURATION") or 0))
    parser.add_argument("--rate", type=float, default=float(os.environ.get("RATE") or 300))
    parser.add_argument("--seed", type=int, default=int(os.environ.get("SEED") or 1))
    parser.add_argument("--report-every", type=float, default=30.0)
    args = parser.parse_args(argv)

    window = os.environ.get("WINDOW_SECONDS") or "10"
    grace = os.environ.get("GRACE_SECONDS") or "2"
    # A click may follow its recommendation by this long: the CTR windows wait for it.
    attribution = os.environ.get("CTR_ATTRIBUTION_SECONDS") or "20"
    state = Path(tempfile.mkdtemp(prefix="streampulse-run-"))
    report = state / "simulator.json"
    web_port = int(os.environ.get("WEB_PORT") or free_port())
    signals = 0  # Ctrl-C or SIGTERM: the first stops the traffic, a second skips the settling

    def request_stop(signum: int, frame: object) -> None:
        nonlocal signals
        signals += 1

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    print(f"starting the embedded stack (logs in {state})", flush=True)
    with EmbeddedStack(log_dir=state, data_dir=state / "registry") as stack:
        env = {
            **stack.env(), "WINDOW_SECONDS": window, "GRACE_SECONDS": grace,
            "DATA_DIR": str(state / "worker"), "WEB_PORT": str(web_port),
            "IDLE_ADVANCE_SECONDS": "3", "CTR_ATTRIBUTION_SECONDS": attribution,
        }  # fmt: skip
        worker = start_worker(env, web_port, state / "worker.log")
        simulator: subprocess.Popen | None = None
        try:
            wait_ready(web_port, worker)
            if signals:
                return 130
            print(f"KAFKA_BROKER_URL={stack.kafka_url}\nSCHEMA_REGISTRY_URL={stack.registry_url}")
            print(
                f"worker web: http://127.0.0.1:{web_port}/ (tables: /tables/, metrics: /metrics,"
                f" UI: /ui/); windows of {window}s, grace {grace}s",
                flush=True,
            )
            simulator = subprocess.Popen(
                [sys.executable, "-m", "app.simulate", "--rate", str(args.rate),
                 "--duration", str(args.duration), "--seed", str(args.seed),
                 "--bad-rate", "0.01", "--v2-rate", "0.2", "--report", str(report)],
                env={**os.environ, **env}, stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own group: stop_process signals it, it reports
            )  # fmt: skip
            next_report = time.monotonic() + args.report_every
            while not signals and simulator.poll() is None:
                time.sleep(0.2)
                if worker.poll() is not None:
                    print("the worker stopped; see its log", file=sys.stderr)
                    return 1
                if time.monotonic() >= next_report:
                    next_report += args.report_every
                    print_summary(stack, "published so far")
            if not signals and simulator.returncode:
                print(f"the simulator failed (exit {simulator.returncode})", file=sys.stderr)
                return 1
            stop_process(simulator)  # SIGTERM: it stops sending and writes its report
            # The CTR metric's windows close last: attribution + a window after the others.
            settle = 2 * int(window) + int(grace) + int(attribution) + 5
            print(f"\ntraffic stopped; waiting {settle}s for the open windows to close"
                  " (Ctrl-C again to skip)", flush=True)  # fmt: skip
            deadline = time.monotonic() + settle
            before = signals
            while time.monotonic() < deadline and signals == before:
                time.sleep(0.2)
            print_summary(stack, "final aggregates")
            print(final_accounting(report, f"http://127.0.0.1:{web_port}"), flush=True)
            return 0
        finally:
            if simulator is not None:
                stop_process(simulator)
            stop_process(worker)


if __name__ == "__main__":
    sys.exit(main())
