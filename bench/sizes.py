"""Seed 000's size claim, measured: Avro in the Confluent framing against JSON, per record type.

``python -m bench.sizes`` (``--samples N`` per record type, ``--seed S``) makes N records of
each of the eight source topics with the simulator's factories (plus the v2 download event),
encodes each as Avro with its schema (the 5-byte Confluent header, magic byte and schema id,
then fastavro's schemaless body: what the topic carries) and as UTF-8 JSON, compact and
indented like the seed's example, and prints the average sizes and the Avro/JSON ratios as a
Markdown table, with the seed's claim (850 -> 320 bytes per event) beside them. No broker or
registry: the size does not depend on the schema id.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import fastavro

from app.catalog import SOURCE_TOPICS, load_schema
from app.engine.codec import frame, parse_raw
from app.tools.simulate import load_factories
from app.tools.simulator.downloads import ContentDownloadV2Factory
from app.tools.simulator.population import EventFactory, Population

__all__ = ["SEED_CLAIM", "Sizes", "main", "measure", "measure_factory", "render"]

#: Seed 000: "60% size reduction vs JSON (850 bytes -> 320 bytes per event)".
SEED_CLAIM = (850, 320)
NOW_MS = 1_754_922_600_000


@dataclass(frozen=True)
class Sizes:
    """Average encoded sizes of one record type, in bytes."""

    record: str
    topic: str
    samples: int
    avro: float
    json_compact: float
    json_indented: float

    @property
    def ratio_compact(self) -> float:
        return self.avro / self.json_compact

    @property
    def ratio_indented(self) -> float:
        return self.avro / self.json_indented


def measure_factory(factory: EventFactory, record: str, samples: int, rng: random.Random) -> Sizes:
    """Average sizes of ``samples`` records made by ``factory``."""
    schema = parse_raw(load_schema(factory.schema_file))
    avro = compact = indented = 0
    for i in range(samples):
        _, value = factory.make(rng, NOW_MS + i)
        body = io.BytesIO()
        fastavro.schemaless_writer(body, schema, value)
        avro += len(frame(1, body.getvalue()))
        compact += len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())
        indented += len(json.dumps(value, ensure_ascii=False, indent=2).encode())
    return Sizes(record, factory.topic, samples, avro / samples, compact / samples,
                 indented / samples)  # fmt: skip


def measure(samples: int, seed: int = 1) -> list[Sizes]:
    """Average sizes of ``samples`` records of every source record type (and download v2)."""
    factories, _ = load_factories(seed, list(SOURCE_TOPICS))
    rng = random.Random(seed)
    out = []
    for topic, factory in factories.items():
        record = load_schema(factory.schema_file)["name"]
        out.append(measure_factory(factory, record, samples, rng))
        if topic == "content-downloads":
            v2 = ContentDownloadV2Factory(Population(seed))
            out.append(measure_factory(v2, f"{record} (v2)", samples, rng))
    return out


def render(rows: Sequence[Sizes]) -> str:
    """The Markdown table of :func:`measure`'s rows, then the seed's claim (which does not say
    whether its JSON was compact or indented)."""
    lines = [
        "| record | topic | Avro (framed) B | JSON compact B | JSON indented B "
        "| Avro / compact | Avro / indented |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.record} | `{r.topic}` | {r.avro:,.0f} | {r.json_compact:,.0f} "
            f"| {r.json_indented:,.0f} | {r.ratio_compact:.2f} | {r.ratio_indented:.2f} |"
        )
    json_bytes, avro_bytes = SEED_CLAIM
    lines.append(
        f"\nSeed 000's claim for ContentDownloadEvent: {json_bytes} bytes of JSON (compact or"
        f" indented, not said) -> {avro_bytes} of Avro, {avro_bytes / json_bytes:.2f}."
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sizes", description=__doc__)
    parser.add_argument("--samples", type=int, default=20_000, help="records per record type")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if args.samples < 1:
        parser.error("--samples must be at least 1")
    print(f"{args.samples:,} records per record type, seed {args.seed}\n")
    print(render(measure(args.samples, args.seed)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
