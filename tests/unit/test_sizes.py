"""``bench/sizes.py``: Avro and JSON sizes per record type (seed 000's size claim).

The Avro size of the seed's own example event is computed here from the Avro specification's
binary encoding (zig-zag varints, length-prefixed strings, 4-byte floats, union indexes), not
with fastavro; CI runs the script itself on a small sample.
"""

from __future__ import annotations

import json
from typing import Any

from app.catalog import SOURCE_TOPICS
from bench import sizes

SEED_EXAMPLE: dict[str, Any] = {
    "event_id": "550e8400-e29b-41d4-a716-446655440000",
    "timestamp": 1698768000000,
    "user_id": "user_abc123",
    "content": {"content_id": "mov_avengers_2", "title": "Avengers: Endgame 2",
                "type": "movie", "category": "action", "size_mb": 4200, "price": 19.99},
    "download": {"status": "success", "duration_seconds": 120, "speed_mbps": 35.0,
                 "error_code": None, "error_message": None},
    "user_context": {"region": "US-California", "city": "San Francisco",
                     "device": "iPhone 15 Pro", "os_version": "iOS 18.1",
                     "connection_type": "wifi"},
}  # fmt: skip


def varint_size(n: int) -> int:
    """Bytes of a zig-zag varint (Avro int and long)."""
    zigzag = (n << 1) ^ (n >> 63)
    return max(1, (zigzag.bit_length() + 6) // 7)


def string_size(s: str) -> int:
    data = s.encode()
    return varint_size(len(data)) + len(data)


def seed_example_avro_size() -> int:
    e, c, d, u = (SEED_EXAMPLE, SEED_EXAMPLE["content"], SEED_EXAMPLE["download"],
                  SEED_EXAMPLE["user_context"])  # fmt: skip
    body = string_size(e["event_id"]) + varint_size(e["timestamp"]) + string_size(e["user_id"])
    body += sum(string_size(c[k]) for k in ("content_id", "title", "type", "category"))
    body += varint_size(c["size_mb"]) + 4  # int, float
    body += string_size(d["status"]) + varint_size(d["duration_seconds"]) + 4
    body += 1 + 1  # two null union branches: index 0, nothing else
    body += sum(string_size(u[k]) for k in u)
    return 5 + body  # magic byte and 4-byte schema id


class OneEvent:
    topic = "content-downloads"
    schema_file = SOURCE_TOPICS["content-downloads"].schema_file

    def make(self, rng: Any, now_ms: int) -> tuple[str, dict[str, Any]]:
        return "user_abc123", json.loads(json.dumps(SEED_EXAMPLE))


def test_sizes_of_the_seed_example_follow_the_avro_specification() -> None:
    measured = sizes.measure_factory(OneEvent(), "ContentDownloadEvent", 3, None)  # type: ignore[arg-type]
    assert measured.avro == seed_example_avro_size()
    assert measured.json_compact == len(
        json.dumps(SEED_EXAMPLE, separators=(",", ":")).encode()
    )
    assert measured.json_indented == len(json.dumps(SEED_EXAMPLE, indent=2).encode())
    assert measured.avro < measured.json_compact < measured.json_indented


def test_every_source_record_type_is_measured_and_smaller_in_avro() -> None:
    rows = sizes.measure(samples=200, seed=3)
    assert [r.topic for r in rows].count("content-downloads") == 2  # v1 and v2
    assert {r.topic for r in rows} == set(SOURCE_TOPICS)
    for row in rows:
        assert row.samples == 200
        assert 0 < row.avro < row.json_compact < row.json_indented, row
    v1, v2 = (r for r in rows if r.topic == "content-downloads")
    assert v2.avro > v1.avro  # v2 adds content_rating


def test_the_script_runs_on_a_small_sample(capsys: Any) -> None:
    assert sizes.main(["--samples", "50"]) == 0
    out = capsys.readouterr().out
    for topic in SOURCE_TOPICS:
        assert f"`{topic}`" in out
    assert "Seed 000's claim for ContentDownloadEvent: 850 bytes of JSON" in out
