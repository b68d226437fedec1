"""Web views on Faust's web server (contract section 4).

| route | answer |
|---|---|
| ``GET /healthz``, ``GET /readyz`` | liveness; readiness (recovery done, registry answered) |
| ``GET /tables/`` | the windowed tables: name, description, window size, key and metric fields |
| ``GET /tables/{name}/`` | rows (one per key and window) held here; ``?limit=``, ``?sort=`` |
| ``GET /tables/{name}/{key}/`` | one key's windows, answered by the worker owning its partition |
| ``GET /ui/`` | the page for people (``app/web/ui/index.html``, self-contained) |
| ``GET /metrics`` | Prometheus text: ours (``app/engine/metrics.py``) and Faust's sensor metrics |

Errors are JSON ``{"error": ...}``: 404 for an unknown table, key or path under ``/tables/``,
400 for a bad query parameter, 503 while the partition assignment is unknown or the owning
worker cannot be reached.

Key routing: ``app.router.key_store`` (Faust's table router) maps the key, serialized as the
table's changelog does (JSON), to the canonical URL of the worker holding its changelog
partition (the partials topic is partitioned identically, so that worker has the data). A
request for a key another worker owns is forwarded there once, marked with
:data:`ROUTED_HEADER`: a worker receiving a forwarded request answers from its own table even
if, mid-rebalance, it thinks another worker owns the key, so two workers can never bounce a
request between them.

Faust's own sensor metrics (``app/web/faust_metrics.py``): a ``PrometheusMonitor`` replaces the
app's monitor before the worker starts, its metrics (prefix ``faust_``) in prometheus_client's
default registry, so the one ``/metrics`` route serves both sets. A timer keeps
``streampulse_table_keys{table}`` set from the local table sizes.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web as aiohttp_web
from faust.web import Request, Response, View
from faust.web.exceptions import ServiceUnavailable
from prometheus_client import REGISTRY
from prometheus_client.exposition import choose_encoder
from yarl import URL

from app.engine import metrics
from app.engine.windowing import WindowedTable
from app.main import app, runtime, windowed_tables
from app.web import faust_metrics
from app.web.views import (
    QueryError,
    key_detail,
    parse_limit,
    parse_sort,
    seconds,
    table_info,
    table_rows,
)

__all__ = [
    "ROUTED_HEADER",
    "Health",
    "Metrics",
    "Ready",
    "TableKey",
    "TableList",
    "TableRows",
    "Ui",
    "forward",
    "owner_of",
    "update_table_keys",
]

log = logging.getLogger(__name__)

#: Set on a key request one worker forwards to the key's owner (its value: the sender's URL).
ROUTED_HEADER = "X-StreamPulse-Routed-From"
#: How long a forwarded key request may take before the answer is a 503.
ROUTE_TIMEOUT_SECONDS = 5.0
#: How often ``streampulse_table_keys`` is refreshed.
TABLE_KEYS_INTERVAL_SECONDS = 10.0

UI_PAGE = Path(__file__).with_name("ui") / "index.html"


# -- health ------------------------------------------------------------------------------------


@app.page("/healthz")
class Health(View):
    """Liveness: the worker's event loop answers."""

    async def get(self, request: Request) -> Response:
        return self.json({"status": "ok"})


@app.page("/readyz")
class Ready(View):
    """Readiness: table recovery finished and the registry answered."""

    async def get(self, request: Request) -> Response:
        checks = readiness()
        ready = all(checks.values())
        return self.json({"ready": ready, **checks}, status=200 if ready else 503)


def readiness() -> dict[str, bool]:
    """The readiness checks, also exported as ``streampulse_ready`` (alerts.yml)."""
    checks = {
        "recovery": app.tables.recovery.completed.is_set(),
        # Reached once, and not failing now (a new schema id waiting on it holds its batch).
        "registry": runtime.registry_ready.is_set() and not runtime.codec.stalled,
    }
    metrics.READY.set(1 if all(checks.values()) else 0)
    return checks


# -- tables ------------------------------------------------------------------------------------


def _canonical_url() -> str:
    return str(app.conf.canonical_url)


def _url_ident(url: URL) -> tuple[str, int]:
    """Host and port, as Faust's router compares worker URLs."""
    return ((url.host if url.scheme else url.path) or "", int(url.port or 80))


def _local_partitions(windowed: WindowedTable) -> list[int]:
    """Changelog partitions of ``windowed``'s table actively assigned to this worker."""
    topic = windowed.table.changelog_topic.get_topic_name()
    try:
        actives = app.assignor.assigned_actives()
    except Exception:  # no assignment yet
        return []
    return sorted(tp.partition for tp in actives if tp.topic == topic)


class _TableView(View):
    def windowed_or_404(self, name: str) -> WindowedTable:
        windowed = windowed_tables.get(name)
        if windowed is None:
            raise self.NotFound("unknown table", table=name, tables=sorted(windowed_tables))
        return windowed


@app.page("/tables/")
class TableList(_TableView):
    """The windowed tables and their fields."""

    async def get(self, request: Request) -> Response:
        return self.json(
            [
                table_info(w.aggregate, w.source_topic, w.window_ms, w.grace_ms)
                for w in windowed_tables.values()
            ]
        )


@app.page("/tables/{name}/")
class TableRows(_TableView):
    """Open (live partial) and recent closed windows of the keys this worker holds."""

    async def get(self, request: Request, name: str) -> Response:
        windowed = self.windowed_or_404(name)
        try:
            limit = parse_limit(request.query.get("limit"))
            sort = parse_sort(request.query.get("sort"), windowed.aggregate)
        except QueryError as exc:
            return self.json(exc.as_json(), status=400)
        # No await from here on: the rows are one consistent snapshot of the table.
        rows, total = table_rows(
            windowed.aggregate, windowed.table.items(), windowed.window_ms,
            limit=limit, sort=sort,
        )  # fmt: skip
        return self.json(
            {
                "table": name,
                "worker": _canonical_url(),
                "partitions": _local_partitions(windowed),
                "window_seconds": seconds(windowed.window_ms),
                "key_fields": list(windowed.aggregate.key_fields),
                "sort": sort,
                "limit": limit,
                "total": total,
                "count": len(rows),
                "rows": rows,
            }
        )


@app.page("/tables/{name}/{key}/")
class TableKey(_TableView):
    """One key's windows, from the worker that owns the key's partition."""

    async def get(self, request: Request, name: str, key: str) -> Response:
        windowed = self.windowed_or_404(name)
        if not request.headers.get(ROUTED_HEADER):
            owner = owner_of(name, key)
            if owner is not None:
                return await self.forward(request, owner)
        detail = key_detail(windowed.aggregate, key, windowed.table.get(key), windowed.window_ms)
        if detail is None:
            return self.error(404, "unknown key", table=name, key=key)
        detail["worker"] = _canonical_url()
        return self.json(detail)

    async def forward(self, request: Any, owner: URL) -> Response:
        return await forward(self, request, owner)


async def forward(
    view: View, request: Any, owner: URL, body: bytes | None = None, **headers: str
) -> Response:
    """Ask the owning worker (once) and hand its answer back as it is: the same method and
    path, ``body`` and ``headers`` added."""
    target = URL(str(owner).rstrip("/") + request.rel_url.raw_path_qs, encoded=True)
    try:
        async with app.http_client.request(
            request.method,
            target,
            data=body,
            headers={ROUTED_HEADER: _canonical_url(), "Accept": "application/json", **headers},
            timeout=aiohttp.ClientTimeout(total=ROUTE_TIMEOUT_SECONDS),
        ) as response:
            answer = await response.read()
            return view.bytes(answer, content_type=response.content_type, status=response.status)
    except (TimeoutError, aiohttp.ClientError) as exc:
        log.warning("routing %s to %s failed: %r", request.rel_url, owner, exc)
        return view.error(503, "owner of the key's partition unreachable", owner=str(owner))


def owner_of(table: str, key: str) -> URL | None:
    """The worker owning ``key``'s partition of ``table``; None when it is this one (raises
    503 while the assignment is not known)."""
    try:
        owner = app.router.key_store(table, key)
    except KeyError:
        raise ServiceUnavailable("partition assignment not known yet") from None
    return None if _url_ident(owner) == _url_ident(app.conf.canonical_url) else owner


@app.page(r"/tables/{path:[\s\S]*}")
class TableNotFound(View):
    """Any other path under ``/tables/``: a JSON 404 (aiohttp's own would be plain text)."""

    async def get(self, request: Request, path: str) -> Response:
        return self.error(404, "not found", path=request.path)


# -- the page for people ------------------------------------------------------------------------


@app.page("/ui/")
class Ui(View):
    """The live dashboard page (static; it polls the JSON routes)."""

    async def get(self, request: Request) -> Response:
        return self.html(UI_PAGE.read_text(encoding="utf-8"))


@app.page("/ui")
class UiRedirect(View):
    async def get(self, request: Request) -> Response:
        return self.text("", status=308, headers={"Location": "/ui/"})


# -- metrics -----------------------------------------------------------------------------------


faust_metrics.install(app)


@app.page("/metrics")
class Metrics(View):
    """Prometheus exposition of the default registry (text format, or OpenMetrics on request)."""

    async def get(self, request: Request) -> Response:
        readiness()  # streampulse_ready as of this scrape
        encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
        return aiohttp_web.Response(body=encoder(REGISTRY), headers={"Content-Type": content_type})


def update_table_keys() -> dict[str, int]:
    """Set ``streampulse_table_keys{table}`` from the keys this worker's partitions hold."""
    counts: dict[str, int] = {}
    for name, windowed in windowed_tables.items():
        try:
            counts[name] = windowed.key_count()
        except Exception as exc:  # a store mid-rebalance: try next time
            log.debug("cannot count keys of %s: %r", name, exc)
            continue
        metrics.TABLE_KEYS.labels(table=name).set(counts[name])
    return counts


for _name in windowed_tables:
    metrics.TABLE_KEYS.labels(table=_name).set(0)


@app.timer(TABLE_KEYS_INTERVAL_SECONDS)
async def refresh_gauges() -> None:
    """``streampulse_table_keys`` and ``streampulse_ready`` between scrapes."""
    update_table_keys()
    readiness()
