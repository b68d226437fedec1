"""GDPR erasure end to end: one user's per-user state removed, the others' kept, and the
removal still there after a restart on a fresh data directory (tables restored from the
changelogs alone)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

import pytest

from app.tools.erase import erase
from app.tools.results import metric_sum, read_metrics
from app.tools.run import stop_process
from tests.integration import join_data
from tests.integration.test_join_pipeline import WORKER_ENV, produce

pytestmark = pytest.mark.integration

TOKEN = "s3cret-erasure-token"


def state_counts(data: join_data.JoinData, user: str) -> dict[str, int]:
    """What the users table holds for ``user`` once every event is applied (nothing pruned:
    the data set spans less than the join's horizon)."""
    ab = [e for _, e in data.by_topic["ab-test-events"] if e["userId"] == user]
    interactions = [e for _, e in data.by_topic["user-interactions"] if e["userId"] == user]
    orders = [e for _, e in data.by_topic["orders.raw"] if e["payload"]["user_id"] == user]
    responses = [e for _, e in data.by_topic["recommendation-responses"]
                 if e["userId"] == user and e["status"] != "error"]  # fmt: skip
    assigned = {e["experimentId"] for e in ab if e["eventType"] == "assignment"}
    conversions = (
        sum(e["eventType"] == "conversion" for e in ab)
        + len(orders)
        + sum(e["interactionType"] == "purchase" for e in interactions)
    )
    return {"assignments": len(assigned), "conversions": conversions,
            "responses": len(responses),
            "clicks": sum(e["interactionType"] == "click" for e in interactions)}  # fmt: skip


def post(url: str, body: bytes, token: str | None) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(f"{url}/erasure/", data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def wait_applied(url: str, count: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        samples = read_metrics(url) or {}
        if metric_sum(samples, "streampulse_join_events_total") >= count:
            return
        time.sleep(0.5)
    raise AssertionError(f"fewer than {count} join events applied")


def test_erasure_removes_exactly_one_user_and_survives_a_restart(
    stack: Any, start_worker_process: Any, tmp_path: Any
) -> None:
    data = join_data.build(seed=9, users=30)
    # 60 s windows: the join keeps two windows and graces (140 s) behind a user's newest
    # events, more than the data set spans, so nothing is pruned before the checks.
    env = {**WORKER_ENV, "WINDOW_SECONDS": "60", "ERASURE_TOKEN": TOKEN}
    worker = start_worker_process("sp-erasure", DATA_DIR=str(tmp_path / "before"), **env)
    produce(stack, data)
    join_events = sum(
        1 for topic in join_data.JOIN_TOPICS for _, e in data.by_topic[topic]
        if (topic == "ab-test-events" and e["eventType"] in ("assignment", "conversion"))
        or (topic == "user-interactions" and e["interactionType"] in ("click", "purchase"))
        or (topic == "orders.raw" and e["event_type"] == "ORDER_CREATED")
        or (topic == "recommendation-responses" and e["status"] != "error")
    )  # fmt: skip
    wait_applied(worker.url, join_events)

    body = json.dumps({"user_id": "user_0003"}).encode()
    assert post(worker.url, body, None) == 401
    assert post(worker.url, body, "wrong-token") == 401
    assert post(worker.url, b"not json", TOKEN) == 400
    assert post(worker.url, json.dumps({"user_id": " "}).encode(), TOKEN) == 400

    erased, kept = "user_0003", "user_0004"
    status, answer = erase(worker.url, erased, TOKEN)
    assert status == 200 and answer["erased"] is True
    removed = {k: v for k, v in answer["removed"].items() if k in state_counts(data, erased)}
    assert removed == state_counts(data, erased)
    assert erase(worker.url, erased, TOKEN)[0] == 404  # gone
    assert erase(worker.url, "user_never_seen", TOKEN)[0] == 404
    samples = read_metrics(worker.url) or {}
    assert metric_sum(samples, "streampulse_erasures_total", outcome="erased") == 1
    time.sleep(3.0)  # a commit interval, so the restart does not replay the erased user
    stop_process(worker.process)

    # A fresh data directory: the users table is rebuilt from its changelog alone.
    restarted = start_worker_process("sp-erasure", DATA_DIR=str(tmp_path / "after"), **env)
    assert erase(restarted.url, erased, TOKEN)[0] == 404  # the tombstone was restored
    status, answer = erase(restarted.url, kept, TOKEN)  # the others' state is all there
    assert status == 200
    assert {k: v for k, v in answer["removed"].items() if k in state_counts(data, kept)} == (
        state_counts(data, kept)
    )
