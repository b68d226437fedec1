"""``/ui/`` in a real browser: headless Chromium (Debian's), driven over the DevTools protocol.

One worker gets telemetry; Chromium opens the page; the test waits until the page's live
refresh shows rows of every table (with keys the produced events make), clicks a row (the key
view, routed), and saves a full-page screenshot under the test's tmp_path. Chromium is installed
with apt-get when missing and root; no browser download, no Playwright.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.integration.web_support import (
    ALL_TABLES,
    TELEMETRY_TABLES,
    WORKER_ENV,
    debian_tool,
    expected_buffering,
    produce_downloads_and_orders,
    produce_telemetry,
    telemetry_events,
)

pytestmark = pytest.mark.integration

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--hide-scrollbars", "--window-size=1400,1000",
    "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
]  # fmt: skip

ROWS_SCRIPT = """
(() => Object.fromEntries([...document.querySelectorAll("section[data-table]")].map(
  (s) => [s.dataset.table, [...s.querySelectorAll(".rows tbody tr[data-key]")].map(
    (tr) => tr.dataset.key)])))()
"""


@pytest.fixture(scope="module")
def chromium() -> str:
    return debian_tool("chromium", "chromium")


class DevTools:
    """A minimal Chrome DevTools Protocol client over one page's websocket."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.next_id = 0

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        call_id = self.next_id
        await self.ws.send_json({"id": call_id, "method": method, "params": params})
        while True:
            message = await asyncio.wait_for(self.ws.receive(), timeout=30)
            assert message.type == aiohttp.WSMsgType.TEXT, message
            data = json.loads(message.data)
            if data.get("id") == call_id:
                assert "error" not in data, data
                return data["result"]

    async def evaluate(self, expression: str) -> Any:
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True,
                                 awaitPromise=True)  # fmt: skip
        assert "exceptionDetails" not in result, result
        return result["result"].get("value")

    async def wait(self, what: str, expression: str, timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = await self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"page: timed out waiting for {what}")
            await asyncio.sleep(0.25)


def devtools_port(profile: Path, process: subprocess.Popen, timeout: float = 30) -> int:
    """Chromium writes the port it chose (``--remote-debugging-port=0``) to its profile."""
    marker = profile / "DevToolsActivePort"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"chromium exited with {process.returncode}")
        with contextlib.suppress(OSError, ValueError, IndexError):
            return int(marker.read_text().splitlines()[0])
        time.sleep(0.1)
    raise TimeoutError("chromium did not open its DevTools port")


#: the tables the produced topics (telemetry, downloads, orders) give rows to
FED_TABLES = (*TELEMETRY_TABLES, "agg.downloads.errors", "agg.orders.summary")


async def drive(port: int, url: str, screenshot: Path, buffering_keys: set[str]) -> dict:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{port}/json/list") as response:
            targets = await response.json()
        page = next(t for t in targets if t["type"] == "page")
        async with session.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0) as ws:
            tools = DevTools(ws)
            await tools.call("Page.enable")
            await tools.call("Page.navigate", url=url)
            await tools.wait("the tables", "document.querySelectorAll('section[data-table]')"
                             f".length === {len(ALL_TABLES)}", timeout=15)  # fmt: skip
            rows = await tools.wait(
                "rows in every table",
                f"(() => {{ const r = {ROWS_SCRIPT}; "
                f"return {json.dumps(list(FED_TABLES))}.every((t) => r[t] && r[t].length > 0)"
                " ? r : null; })()",
                timeout=30,
            )
            # the chart has bars; the status line says it refreshed
            bars = await tools.evaluate("document.querySelectorAll('.chart svg rect').length")
            assert bars > 0
            assert await tools.evaluate("document.getElementById('dot').className") == "dot ok"
            # a click on a buffering row shows that key's windows (the routed key view)
            key = rows["agg.telemetry.buffering"][0]
            assert key in buffering_keys
            await tools.evaluate(
                'document.querySelector(\'section[data-table="agg.telemetry.buffering"] '
                ".rows tbody tr[data-key]').click()"
            )
            detail = await tools.wait(
                "the key's windows",
                "(() => { const d = document.querySelector('section[data-table="
                '"agg.telemetry.buffering"] .detail\'); return d && !d.hidden && '
                "d.querySelectorAll('tbody tr').length ? d.querySelector('h4').textContent "
                ": null; })()",
                timeout=15,
            )
            metrics = await tools.call("Page.getLayoutMetrics")
            size = metrics["cssContentSize"]
            shot = await tools.call(
                "Page.captureScreenshot", format="png", captureBeyondViewport=True,
                clip={"x": 0, "y": 0, "width": size["width"], "height": size["height"],
                      "scale": 1},
            )  # fmt: skip
            screenshot.write_bytes(base64.b64decode(shot["data"]))
            return {"rows": rows, "detail": detail, "key": key}


def test_ui_shows_live_rows(stack, start_worker_process, chromium, tmp_path) -> None:
    t0 = time.monotonic()
    worker = start_worker_process("sp-ui", **WORKER_ENV)
    events = telemetry_events(1200, span_ms=35_000, seed=11)
    produce_telemetry(stack, events)
    others = produce_downloads_and_orders(stack, 300, span_ms=35_000, seed=11)
    buffering_keys = {key for key, _ in expected_buffering(events)}

    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    log = open(tmp_path / "chromium.log", "ab")  # noqa: SIM115 - owned by the process
    browser = subprocess.Popen(
        [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    screenshot = tmp_path / "ui.png"
    try:
        port = devtools_port(profile, browser)
        seen = asyncio.run(drive(port, f"{worker.url}/ui/", screenshot, buffering_keys))
    finally:
        if browser.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(browser.pid, signal.SIGTERM)
            try:
                browser.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(browser.pid, signal.SIGKILL)
                browser.wait()
    print(f"screenshot: {screenshot} ({time.monotonic() - t0:.1f}s)")

    assert set(seen["rows"]) == set(ALL_TABLES)  # every table has its card, fed or not
    assert set(seen["rows"]["agg.telemetry.buffering"]) <= buffering_keys
    titles = {e["title_id"] for e in events}
    assert set(seen["rows"]["agg.telemetry.completion"]) <= titles
    errors_keys = {f"{e['device_os']}|{e['app_version']}" for e in events}
    assert set(seen["rows"]["agg.telemetry.errors"]) <= errors_keys
    regions = {e["user_context"]["region"] for e in others["content-downloads"]}
    assert set(seen["rows"]["agg.downloads.errors"]) <= regions
    currencies = {e["payload"]["currency"] for e in others["orders.raw"]}
    assert set(seen["rows"]["agg.orders.summary"]) <= currencies
    assert seen["detail"].startswith(seen["key"])
    png = screenshot.read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 20_000
