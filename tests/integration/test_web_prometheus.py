"""``/metrics`` as a real Prometheus server sees it, and as ``promtool check metrics`` lints it.

Debian's ``prometheus`` package (the server and promtool) is installed when missing and root.
One worker gets telemetry; a Prometheus server on loopback scrapes it every second; the test
queries Prometheus' HTTP API for the contract's metrics (and one of Faust's sensor metrics).
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.parse
from pathlib import Path
from typing import Any

import pytest

from app.tools.run import stop_process
from app.tools.stack import free_port, wait_for_port
from tests.integration.web_support import (
    WORKER_ENV,
    debian_tool,
    http,
    produce_telemetry,
    telemetry_events,
    wait_for,
)

pytestmark = pytest.mark.integration

CONSUMED = re.compile(rb'^streampulse_events_consumed_total\{topic="acme-telemetry"\} (\S+)$', re.M)


@pytest.fixture(scope="module")
def prometheus_tools() -> tuple[str, str]:
    """(prometheus, promtool) from Debian's prometheus package."""
    promtool = debian_tool("promtool", "prometheus")
    return debian_tool("prometheus", "prometheus"), promtool


def start_prometheus(binary: str, target_port: int, tmp_path: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        json.dumps(  # JSON is YAML
            {
                "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
                "scrape_configs": [
                    {
                        "job_name": "streampulse",
                        "metrics_path": "/metrics",
                        "static_configs": [{"targets": [f"127.0.0.1:{target_port}"]}],
                    }
                ],
            }
        )
    )
    log = open(tmp_path / "prometheus.log", "ab")  # noqa: SIM115 - owned by the process
    process = subprocess.Popen(
        [binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    wait_for_port(port, timeout=20, process=process)
    return process, f"http://127.0.0.1:{port}"


def query(prometheus: str, promql: str) -> list[dict[str, Any]]:
    status, _, body = http(f"{prometheus}/api/v1/query?query={urllib.parse.quote(promql)}")
    assert status == 200, body[:500]
    answer = json.loads(body)
    assert answer["status"] == "success", answer
    return answer["data"]["result"]


def test_prometheus_scrapes_the_worker(
    stack, start_worker_process, prometheus_tools, tmp_path
) -> None:
    prometheus_bin, promtool = prometheus_tools
    t0 = time.monotonic()
    worker = start_worker_process("sp-prom", **WORKER_ENV)
    produce_telemetry(stack, telemetry_events(400, span_ms=15_000, seed=3))

    # The exposition passes promtool's lint (help texts, counter suffixes, base units).
    def consumed() -> bytes | None:
        status, _, body = http(f"{worker.url}/metrics")
        found = CONSUMED.search(body)
        return body if status == 200 and found and float(found.group(1)) > 0 else None

    exposition = wait_for("consumed events in /metrics", consumed, timeout=20)
    lint = subprocess.run(
        [promtool, "check", "metrics"], input=exposition, capture_output=True, timeout=30
    )
    assert lint.returncode == 0, (lint.stdout + lint.stderr).decode()
    text = exposition.decode()
    for name in ("streampulse_events_consumed_total", "streampulse_events_aggregated_total",
                 "streampulse_event_lag_seconds", "streampulse_registry_requests_total",
                 "streampulse_table_keys", "faust_assign_latency_seconds",
                 "faust_table_operations_total"):  # fmt: skip
        assert f"# HELP {name} " in text, name

    process, prometheus = start_prometheus(prometheus_bin, worker.web_port, tmp_path)
    try:

        def consumed_in_prometheus() -> list[dict[str, Any]] | None:
            result = query(prometheus, "streampulse_events_consumed_total")
            return [r for r in result if r["metric"].get("topic") == "acme-telemetry"
                    and float(r["value"][1]) > 0] or None  # fmt: skip

        (sample,) = wait_for("Prometheus to scrape the worker", consumed_in_prometheus, 30, 0.5)
        assert sample["metric"]["job"] == "streampulse"
        assert sample["metric"]["instance"] == f"127.0.0.1:{worker.web_port}"
        assert float(sample["value"][1]) == 400
        up = query(prometheus, 'up{job="streampulse"}')
        assert [float(r["value"][1]) for r in up] == [1.0]
        # Faust's sensor metrics arrive through the same scrape.
        assert query(prometheus, "faust_assignment_operations_total")
        # The table_keys timer (every 10 s) has counted the buffering table's keys.
        promql = 'streampulse_table_keys{table="agg.telemetry.buffering"} > 0'
        keys = wait_for(promql, lambda: query(prometheus, promql), timeout=25, every=1.0)
        assert len(keys) == 1
    finally:
        stop_process(process)
    print(f"test done in {time.monotonic() - t0:.1f}s")
