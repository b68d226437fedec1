"""Helpers of the web tests (tests/integration/test_web_*.py): telemetry in, HTTP out.

Telemetry is produced with confluent-kafka's producer and AvroSerializer (an independent client
of our registry), event times fixed and window-aligned so each test knows its windows. The
expected buffering table is computed here with plain Python from the contract's definitions,
sharing no code with ``models/``.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import defaultdict
from collections.abc import Callable
from typing import Any, TypeVar

import pytest

from app.catalog import SCHEMA_DIR, SOURCE_TOPICS
from app.tools.simulator.downloads import ContentDownloadFactory
from app.tools.simulator.orders import OrderFactory
from app.tools.simulator.population import Population
from app.tools.simulator.telemetry import TelemetryFactory

T = TypeVar("T")

WINDOW_MS = 10_000
BASE_MS = 1_754_922_600_000  # 2025-08-11T14:30:00Z, aligned to the window
BUFFERING = "agg.telemetry.buffering"
TELEMETRY_TABLES = (BUFFERING, "agg.telemetry.completion", "agg.telemetry.errors")
#: every table the worker declares, in the order of its domains (agents/__init__.py)
ALL_TABLES = (
    *TELEMETRY_TABLES, "agg.downloads.errors", "agg.orders.summary",
    "agg.model.metrics.reported", "agg.model.metrics.requests", "agg.model.metrics.latency",
    "agg.model.metrics.errors", "ab.conversions", "agg.model.metrics.ctr",
)  # fmt: skip
WORKER_ENV = {"WINDOW_SECONDS": "10", "GRACE_SECONDS": "2", "IDLE_ADVANCE_SECONDS": "2"}


def telemetry_events(count: int, span_ms: int, seed: int) -> list[dict[str, Any]]:
    """``count`` valid telemetry events spread over ``span_ms`` from :data:`BASE_MS`."""
    factory = TelemetryFactory(seed=seed, customers=300, titles=30)
    rng = random.Random(seed)
    events = []
    for i in range(count):
        _, event = factory.make(rng, BASE_MS)
        event["event_timestamp"] = BASE_MS + (i * span_ms) // count + rng.randint(0, 300)
        events.append(event)
    return events


def produce_telemetry(stack: Any, events: list[dict[str, Any]]) -> None:
    from confluent_kafka import Producer
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.avro import AvroSerializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    serializer = AvroSerializer(
        SchemaRegistryClient({"url": stack.registry_url}),
        (SCHEMA_DIR / "telemetry/TelemetryEvent.avsc").read_text(),
    )
    producer = Producer({"bootstrap.servers": stack.bootstrap, "linger.ms": 5})
    ctx = SerializationContext("acme-telemetry", MessageField.VALUE)
    for event in events:
        producer.produce("acme-telemetry", key=event["customer_id"], value=serializer(event, ctx))
    assert producer.flush(30) == 0


def produce_downloads_and_orders(
    stack: Any, count: int, span_ms: int, seed: int
) -> dict[str, list[dict[str, Any]]]:
    """``count`` valid downloads and ``count`` valid orders spread over ``span_ms`` from
    :data:`BASE_MS` (the simulator's factories), produced; returns them by topic."""
    from confluent_kafka import Producer
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.avro import AvroSerializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    population = Population(seed, size=200)
    rng = random.Random(seed)
    registry = SchemaRegistryClient({"url": stack.registry_url})
    producer = Producer({"bootstrap.servers": stack.bootstrap, "linger.ms": 5})
    produced: dict[str, list[dict[str, Any]]] = {}
    for factory in (ContentDownloadFactory(population), OrderFactory(population)):
        spec = SOURCE_TOPICS[factory.topic]
        serializer = AvroSerializer(registry, (SCHEMA_DIR / spec.schema_file).read_text())
        ctx = SerializationContext(factory.topic, MessageField.VALUE)
        events = produced[factory.topic] = []
        for i in range(count):
            key, event = factory.make(rng, BASE_MS)
            event["timestamp"] = BASE_MS + (i * span_ms) // count
            events.append(event)
            producer.produce(factory.topic, key=key, value=serializer(event, ctx))
    assert producer.flush(30) == 0
    return produced


def expected_buffering(events: list[dict[str, Any]]) -> dict[tuple[str, int], dict[str, Any]]:
    """(encoded key, window start) -> the buffering record's metric fields."""
    sums: dict[tuple[str, int], dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for e in events:
        key = f"{e['country']}|{e['isp']}"
        assert "|" not in e["country"] + e["isp"] and "%" not in e["country"] + e["isp"]
        s = sums[(key, e["event_timestamp"] // WINDOW_MS * WINDOW_MS)]
        s["events"] += 1
        s["buffering_events"] += e["buffering_events"]
        s["buffering_seconds"] += e["buffering_duration_seconds"]
        s["watch_seconds"] += e["watch_duration_seconds"]
    out = {}
    for k, s in sums.items():
        ratio = s["buffering_seconds"] / s["watch_seconds"] if s["watch_seconds"] else None
        out[k] = {
            "events": s["events"], "buffering_events": s["buffering_events"],
            "buffering_seconds": s["buffering_seconds"], "watch_seconds": s["watch_seconds"],
            "buffering_ratio": ratio,
        }  # fmt: skip
    return out


def http(url: str, timeout: float = 10.0) -> tuple[int, str, bytes]:
    """GET ``url``: (status, content type, body), error statuses included."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.headers.get("Content-Type", ""), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type", ""), exc.read()


def get_json(url: str, expect: int = 200) -> Any:
    status, content_type, body = http(url)
    assert status == expect, (url, status, body[:500])
    assert content_type.startswith("application/json"), (url, content_type)
    return json.loads(body)


def key_path(table: str, key: str) -> str:
    return f"/tables/{table}/{urllib.parse.quote(key, safe='')}/"


def wait_for(what: str, probe: Callable[[], T | None], timeout: float, every: float = 0.25) -> T:
    """Call ``probe`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            result = probe()
            if result:
                return result
        except (OSError, AssertionError, KeyError, ValueError) as exc:
            last_error = exc
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}") from (
                last_error
            )
        time.sleep(every)


def wait_split(urls: list[str], timeout: float = 40.0) -> dict[str, list[int]]:
    """Wait until every worker's Faust ``/router/`` names all of ``urls`` as owners of
    buffering changelog partitions, the same way on each; return url -> partitions."""

    def probe() -> dict[str, list[int]] | None:
        views = []
        for url in urls:
            routes = get_json(f"{url}/router/")
            owners = {
                owner: sorted(p for topic, parts in topics.items()
                              if topic.endswith(f"{BUFFERING}-changelog") for p in parts)
                for owner, topics in routes.items()
            }  # fmt: skip
            views.append({o: p for o, p in owners.items() if p})
        first = views[0]
        if set(first) == set(urls) and all(v == first for v in views):
            return first
        return None

    return wait_for("the partitions to be split between the workers", probe, timeout, 0.5)


def _apt_install(package: str) -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", package]
    result = subprocess.run(install, capture_output=True, text=True, env=env, timeout=900)
    if result.returncode != 0:  # a fresh machine may have no (or stale) package lists
        subprocess.run(["apt-get", "update", "-q"], capture_output=True, env=env, timeout=900)
        result = subprocess.run(install, capture_output=True, text=True, env=env, timeout=900)
    assert result.returncode == 0, f"apt-get install {package} failed:\n{result.stderr[-3000:]}"


def debian_tool(binary: str, package: str) -> str:
    """Path of ``binary``; installs Debian's ``package`` first when missing and root."""
    found = shutil.which(binary)
    if found:
        return found
    if hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
        _apt_install(package)
        found = shutil.which(binary)
        assert found, f"Debian's {package} installed no {binary}"
        return found
    message = f"{binary} is missing and cannot be installed (not root): apt-get install {package}"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)
