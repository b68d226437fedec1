"""Durability and concurrency: restarts keep everything, concurrent registrations agree on one
id, and a SIGKILL mid-write loses nothing that was acknowledged and leaves no half-written state."""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor

import aiohttp
import httpx

from app.registry.store import DB_FILENAME

from .conftest import Http


def schema(name: str, *extra_fields: str) -> dict:
    fields = [{"name": "id", "type": "string"}]
    fields += [{"name": f, "type": ["null", "string"], "default": None} for f in extra_fields]
    return {"type": "record", "name": name, "namespace": "com.streampulse.test", "fields": fields}


def test_restart_keeps_ids_versions_and_config(registry_factory, tmp_path):
    data_dir = tmp_path / "durable"
    first = registry_factory(data_dir)
    http = Http(first.url)
    ids = {
        ("a", 1): http.register("a", schema("A")).body["id"],
        ("a", 2): http.register("a", schema("A", "x")).body["id"],
        ("a", 3): http.register("a", schema("A", "x", "y")).body["id"],
        ("b", 1): http.register("b", schema("B")).body["id"],
        ("c", 1): http.register("c", schema("A")).body["id"],  # shared with a/1
    }
    http.put("/config", {"compatibility": "FULL"})
    http.put("/config/b", {"compatibility": "NONE"})
    http.delete("/subjects/a/versions/3")
    http.close()
    first.stop()

    second = registry_factory(data_dir)
    http = Http(second.url)
    assert http.get("/subjects").body == ["a", "b", "c"]
    assert http.get("/subjects/a/versions").body == [1, 2]
    assert http.get("/subjects/a/versions?deleted=true").body == [1, 2, 3]
    for (subject, version), schema_id in ids.items():
        got = http.get(f"/subjects/{subject}/versions/{version}?deleted=true").body
        assert got["id"] == schema_id
    assert ids[("c", 1)] == ids[("a", 1)]
    assert http.get("/config").body == {"compatibilityLevel": "FULL"}
    assert http.get("/config/b").body == {"compatibilityLevel": "NONE"}
    # Re-registering is idempotent across the restart; new schemas continue the sequence.
    assert http.register("a", schema("A", "x")).body["id"] == ids[("a", 2)]
    assert http.register("d", schema("D")).body["id"] == max(ids.values()) + 1
    # Soft-deleted a/3 registered again: its old id, the next version.
    assert http.register("a", schema("A", "x", "y")).body["id"] == ids[("a", 3)]
    assert http.get("/subjects/a/versions").body == [1, 2, 4]
    http.close()


def test_concurrent_registrations_of_one_schema_get_one_id(registry):
    async def scenario() -> None:
        body = {"schema": json.dumps(schema("Same"))}
        async with aiohttp.ClientSession(registry.url) as session:

            async def register(subject: str) -> int:
                async with session.post(f"/subjects/{subject}/versions", json=body) as response:
                    assert response.status == 200, await response.text()
                    return (await response.json())["id"]

            same_subject = await asyncio.gather(*(register("s") for _ in range(50)))
            other_subjects = await asyncio.gather(*(register(f"s{i}") for i in range(20)))
            assert set(same_subject) == set(other_subjects) == {1}
            async with session.get("/subjects/s/versions") as response:
                assert await response.json() == [1]

    asyncio.run(scenario())


def test_concurrent_distinct_registrations_get_distinct_ids_and_versions(registry):
    http = Http(registry.url)
    http.put("/config/evolving", {"compatibility": "NONE"})

    def register(i: int) -> int:
        with httpx.Client(base_url=registry.url) as client:
            text = json.dumps(schema(f"R{i}"))
            answer = client.post("/subjects/evolving/versions", json={"schema": text})
            assert answer.status_code == 200, answer.text
            return answer.json()["id"]

    with ThreadPoolExecutor(max_workers=16) as pool:
        ids = list(pool.map(register, range(40)))
    assert sorted(ids) == list(range(1, 41))
    assert http.get("/subjects/evolving/versions").body == list(range(1, 41))
    http.close()


def test_sigkill_mid_write_loses_nothing_acknowledged(process_factory, tmp_path):
    data_dir = tmp_path / "crash"
    server = process_factory(data_dir)
    acknowledged: list[tuple[str, str, int]] = []
    stop = threading.Event()

    def writer(worker: int) -> None:
        with httpx.Client(base_url=server.url, timeout=5) as client:
            for i in range(10_000):
                if stop.is_set():
                    return
                subject = f"w{worker}"
                text = json.dumps(schema("W", *(f"f{n}" for n in range(i))))
                try:
                    answer = client.post(f"/subjects/{subject}/versions", json={"schema": text})
                except httpx.HTTPError:
                    return
                if answer.status_code == 200:
                    acknowledged.append((subject, text, answer.json()["id"]))

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    while len(acknowledged) < 40:
        threading.Event().wait(0.01)
    server.kill()  # SIGKILL while writers are mid-request
    stop.set()
    for thread in threads:
        thread.join(10)

    with sqlite3.connect(data_dir / DB_FILENAME) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)

    restarted = process_factory(data_dir)
    http = Http(restarted.url)
    for subject, text, schema_id in acknowledged:
        found = http.post(f"/subjects/{subject}", {"schema": text})
        assert found.status == 200 and found.body["id"] == schema_id
    for subject in http.get("/subjects").body:
        versions = http.get(f"/subjects/{subject}/versions").body
        assert versions == list(range(1, len(versions) + 1))  # no holes, no half-written version
        for version in versions:
            got = http.get(f"/subjects/{subject}/versions/{version}").body
            assert http.get(f"/schemas/ids/{got['id']}").body["schema"] == got["schema"]
    http.close()


def test_entry_point_logs_ready_line_and_exits_cleanly(process_factory, tmp_path):
    server = process_factory(tmp_path / "entry")
    assert server.url.startswith("http://127.0.0.1:")
    assert httpx.get(server.url + "/").json() == {}
    assert server.signal(signal.SIGTERM) == 0
    assert any("registry shutting down" in line for line in server.drain_log())

    again = process_factory(tmp_path / "entry")
    assert again.signal(signal.SIGINT) == 0
