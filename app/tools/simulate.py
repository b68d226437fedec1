"""The event simulator: realistic, seeded events to all eight source topics via the registry.

``python -m app.simulate --rate 200 --duration 60 --seed 7`` produces about 200 events/s for
60 s (``--duration 0``: until Ctrl-C; ``--count N``: exactly N events). ``--topics`` narrows
the topics, ``--bad-rate`` mixes in broken messages (garbage bytes, wrong magic byte, unknown
schema id, truncated body on every topic; data-quality rule violations on the topics whose
simulator module has ``RULE_BREAKERS``; an event type this reader does not know, written with
an evolved writer schema, where the module names a ``NEWER_EVENT_TYPE``), ``--v2-rate`` writes
that share of content downloads with the evolved v2 schema. ``--report FILE`` writes what was
sent, per topic, and the DLQ reason each broken message must get. A progress line goes to
stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import json
import logging
import random
import signal
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, NamedTuple

from app.catalog import SOURCE_TOPICS, load_schema, subject_for
from app.engine.codec import RegistryCodec, frame
from app.settings import load_settings
from app.tools.simulator.population import EventFactory, Population

__all__ = ["BAD_KINDS", "Message", "Simulator", "corrupt", "main", "with_extra_symbol"]

log = logging.getLogger(__name__)

#: share of traffic per topic (telemetry is the high-volume stream, seed 002)
TOPIC_WEIGHTS = {
    "acme-telemetry": 40, "content-downloads": 8, "orders.raw": 8, "user-interactions": 16,
    "recommendation-requests": 8, "recommendation-responses": 8, "model-metrics": 2,
    "ab-test-events": 10,
}  # fmt: skip
DOMAIN_MODULES = ("telemetry", "downloads", "orders", "lens")
UNKNOWN_SCHEMA_ID = 987654

#: kind of broken message -> the DLQ reason the worker must give it
BAD_KINDS = {
    "garbage": "decode.magic_byte",
    "wrong_magic": "decode.magic_byte",
    "unknown_schema": "decode.unknown_schema",
    "truncated": "decode.malformed",
    "rule_violation": "validation.<the rule broken>",
    "unknown_event_type": "unknown_event_type",
}
#: the kinds every topic gets (the others need its simulator module's help)
FRAMING_KINDS = ("garbage", "wrong_magic", "unknown_schema", "truncated")


def with_extra_symbol(schema: dict[str, Any], field_name: str, symbol: str) -> dict[str, Any]:
    """A newer producer's schema: ``field_name``'s enum with one more symbol (BACKWARD
    compatible: the old schema's data is still readable with it)."""
    evolved = json.loads(json.dumps(schema))
    for item in evolved["fields"]:
        if item["name"] == field_name:
            item["type"]["symbols"].append(symbol)
            return evolved
    raise ValueError(f"{schema['name']} has no field {field_name}")


def corrupt(kind: str, good: bytes, rng: random.Random) -> bytes:
    """A broken variant of a good framed message (not for ``rule_violation``)."""
    if kind == "garbage":
        return b"{" + bytes(rng.getrandbits(8) for _ in range(rng.randint(8, 64)))
    if kind == "wrong_magic":
        return bytes([rng.randint(1, 255)]) + good[1:]
    if kind == "unknown_schema":
        return frame(UNKNOWN_SCHEMA_ID, good[5:])
    if kind == "truncated":
        return good[: 5 + max(1, (len(good) - 5) // 3)]
    raise ValueError(f"unknown bad-message kind {kind!r}")


def load_factories(
    seed: int, topics: Sequence[str]
) -> tuple[dict[str, EventFactory], dict[str, ModuleType]]:
    """One factory per requested topic, and the module it comes from, from the domain modules
    under ``app.tools.simulator``."""
    population = Population(seed)
    found: dict[str, EventFactory] = {}
    modules: dict[str, ModuleType] = {}
    for name in DOMAIN_MODULES:
        module = importlib.import_module(f"app.tools.simulator.{name}")
        kwargs = {"seed": seed} if name == "telemetry" else {}
        for factory in module.factories(population, **kwargs):
            found.setdefault(factory.topic, factory)
            modules.setdefault(factory.topic, module)
    missing = [t for t in topics if t not in found]
    if missing:
        raise SystemExit(f"no simulator factory for {', '.join(missing)}")
    return {t: found[t] for t in topics}, {t: modules[t] for t in topics}


class Message(NamedTuple):
    """One message to send, and the DLQ reason it must get (None: it must be counted)."""

    topic: str
    key: bytes
    value: bytes
    reason: str | None


@dataclass
class Simulator:
    """Produces events through an aiokafka producer; counts what it sent by topic, and the
    broken messages by topic and the DLQ reason each must get."""

    bootstrap: str
    registry_url: str
    seed: int = 1
    topics: Sequence[str] = tuple(SOURCE_TOPICS)
    bad_rate: float = 0.0
    v2_rate: float = 0.0
    #: the registry client side (tests pass one with a fake registry)
    codec: RegistryCodec | None = None
    sent: Counter = field(default_factory=Counter)
    #: (topic, DLQ reason) -> broken messages sent
    bad: Counter = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.factories, self.modules = load_factories(self.seed, self.topics)
        self.weights = [TOPIC_WEIGHTS.get(t, 1) for t in self.topics]
        if self.codec is None:
            self.codec = RegistryCodec(self.registry_url, max_retries=20)
        self._ids: dict[str, int] = {}
        self._v2: EventFactory | None = None
        #: per topic, the kinds of broken message it can get
        self.bad_kinds = {topic: self._kinds_for(topic) for topic in self.topics}

    def _kinds_for(self, topic: str) -> list[str]:
        module = self.modules[topic]
        kinds = list(FRAMING_KINDS)
        if getattr(module, "RULE_BREAKERS", None):
            kinds.append("rule_violation")
        if getattr(module, "NEWER_EVENT_TYPE", None):
            kinds.append("unknown_event_type")
        return kinds

    async def start(self) -> None:
        from aiokafka import AIOKafkaProducer

        await self.register_schemas()
        self.producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap, linger_ms=5, max_batch_size=512 * 1024
        )
        await self.producer.start()

    async def register_schemas(self) -> None:
        """Register (idempotently) every writer schema the messages will use."""
        assert self.codec is not None
        for topic, factory in self.factories.items():
            schema = load_schema(factory.schema_file)
            self._ids[topic] = await self.codec.schema_id_for(subject_for(topic), schema)
            newer = getattr(self.modules[topic], "NEWER_EVENT_TYPE", None)
            if self.bad_rate and newer:
                evolved = with_extra_symbol(schema, "event_type", newer)
                self._ids[f"{topic}.newer"] = await self.codec.schema_id_for(
                    subject_for(topic), evolved
                )
        if self.v2_rate and "content-downloads" in self.factories:
            from app.tools.simulator.downloads import ContentDownloadV2Factory

            self._v2 = ContentDownloadV2Factory(Population(self.seed))
            self._ids["content-downloads.v2"] = await self.codec.schema_id_for(
                subject_for("content-downloads"), load_schema(self._v2.schema_file)
            )

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            await self.producer.flush()
            await self.producer.stop()
        if self.codec is not None:
            await self.codec.close()

    def next_message(self, now_ms: int) -> Message:
        """The next event, possibly broken or v2 (not counted until :meth:`count`)."""
        assert self.codec is not None
        rng = self.rng
        topic = rng.choices(self.topics, self.weights)[0]
        factory, id_key = self.factories[topic], topic
        if self._v2 is not None and topic == "content-downloads" and rng.random() < self.v2_rate:
            factory, id_key = self._v2, "content-downloads.v2"
        key, value = factory.make(rng, now_ms)
        kind = reason = None
        if self.bad_rate and rng.random() < self.bad_rate:
            kind = rng.choice(self.bad_kinds[topic])
            reason = BAD_KINDS[kind]
        module = self.modules[topic]
        if kind == "rule_violation":
            # unknown_event_type is its own kind: it needs the evolved writer schema.
            rules = sorted(r for r in module.RULE_BREAKERS if r != "unknown_event_type")
            rule = rng.choice(rules)
            value = module.RULE_BREAKERS[rule](value)
            reason = f"validation.{rule}"
        elif kind == "unknown_event_type":
            value = {**value, "event_type": module.NEWER_EVENT_TYPE}
            id_key = f"{topic}.newer"
        encoded = self.codec.encode(self._ids[id_key], value)
        if kind in FRAMING_KINDS:
            encoded = corrupt(kind, encoded, rng)
        return Message(topic, key.encode(), encoded, reason)

    def count(self, message: Message) -> None:
        """Count ``message`` as sent (once the producer has taken it)."""
        self.sent[message.topic] += 1
        if message.reason is not None:
            self.bad[(message.topic, message.reason)] += 1

    def report(self) -> dict[str, Any]:
        """What was sent per topic, and the DLQ reasons the broken messages must get."""
        broken: dict[str, dict[str, int]] = {}
        for (topic, reason), count in sorted(self.bad.items()):
            broken.setdefault(topic, {})[reason] = count
        return {"sent": dict(sorted(self.sent.items())), "broken": broken}

    async def run(self, rate: float, duration: float, count: int | None, progress: bool) -> None:
        """Send at ``rate`` events/s (0 = flat out) for ``duration`` s (0 = forever) or
        ``count`` events."""
        started = time.monotonic()
        total = 0
        last_report = 0.0
        flat_out_for = duration if rate <= 0 and count is None and duration else None
        if count is not None:
            target: int | None = count
        else:
            target = int(rate * duration) if duration and rate > 0 else None
        while target is None or total < target:
            if flat_out_for is not None and time.monotonic() - started >= flat_out_for:
                break
            elapsed = time.monotonic() - started
            due = int(elapsed * rate) + 1 if rate > 0 else (target or total + 1000)
            if target is not None:
                due = min(due, target)
            now_ms = int(time.time() * 1000)
            while total < due:
                message = self.next_message(now_ms)
                await self.producer.send(message.topic, message.value, key=message.key)
                self.count(message)  # after the send: a cancelled send was not sent
                total += 1
            if progress and time.monotonic() - last_report >= 0.5:
                last_report = time.monotonic()
                _report(total, target, elapsed, self.bad)
            if rate > 0:
                await asyncio.sleep(0.02)
        await self.producer.flush()
        if progress:
            _report(total, target, time.monotonic() - started, self.bad, final=True)


def _report(total: int, target: int | None, elapsed: float, bad: Counter,
            final: bool = False) -> None:  # fmt: skip
    rate = total / elapsed if elapsed > 0 else 0.0
    if target:
        filled = int(30 * total / target)
        bar = f"[{'#' * filled}{'.' * (30 - filled)}] {total}/{target}"
    else:
        bar = f"{total} events"
    line = f"\r{bar} {rate:,.0f}/s, {sum(bad.values())} broken"
    if sys.stderr.isatty():
        print(line, end="\n" if final else "", file=sys.stderr, flush=True)
    elif final or int(elapsed) // 10 != _report.last_bucket:  # a line every 10 s in logs
        _report.last_bucket = int(elapsed) // 10
        print(line.strip(), file=sys.stderr, flush=True)


_report.last_bucket = -1  # type: ignore[attr-defined]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m app.simulate", description=__doc__)
    parser.add_argument("--rate", type=float, default=200.0, help="events/s (0: flat out)")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds; 0 runs until Ctrl-C")
    parser.add_argument("--count", type=int, default=None, help="send exactly this many events")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--topics", default=",".join(SOURCE_TOPICS),
                        help="comma-separated source topics (default: all eight)")
    parser.add_argument("--bad-rate", type=float, default=0.0, help="share of broken messages")
    parser.add_argument("--v2-rate", type=float, default=0.0,
                        help="share of content-downloads written with the v2 schema")
    parser.add_argument("--report", type=Path, default=None,
                        help="write what was sent (JSON: per topic, broken messages by reason)")
    parser.add_argument("--quiet", action="store_true", help="no progress line")
    return parser.parse_args(argv)  # fmt: skip


async def _main(args: argparse.Namespace) -> int:
    topics = [t.strip() for t in args.topics.split(",") if t.strip()]
    unknown = [t for t in topics if t not in SOURCE_TOPICS]
    if unknown:
        print(f"unknown topics: {', '.join(unknown)}", file=sys.stderr)
        return 2
    settings = load_settings()  # every broker of KAFKA_BROKER_URL, not just the last
    bootstrap, registry = settings.broker_bootstrap, settings.schema_registry_url
    simulator = Simulator(bootstrap, registry, args.seed, topics, args.bad_rate, args.v2_rate)

    async def session() -> None:
        await simulator.start()
        await simulator.run(args.rate, args.duration, args.count, progress=not args.quiet)

    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(session())  # a signal stops it cleanly, even while starting
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)
    try:
        await task
    except asyncio.CancelledError:
        pass
    finally:
        await simulator.stop()
    by_topic = ", ".join(f"{t}={n}" for t, n in sorted(simulator.sent.items()))
    print(f"sent {sum(simulator.sent.values())} events: {by_topic}", file=sys.stderr)
    if simulator.bad:
        kinds = Counter()
        for (_, reason), count in simulator.bad.items():
            kinds[reason] += count
        print(f"broken on purpose, by the DLQ reason due: {dict(kinds)}", file=sys.stderr)
    if args.report:
        args.report.write_text(json.dumps(simulator.report(), indent=2))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING)
    return asyncio.run(_main(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
