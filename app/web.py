"""Web views on Faust's web server: health and readiness (tables and metrics in issue 6)."""

from __future__ import annotations

from typing import Any

from faust.web import Request, Response, View

from app.main import app, runtime

__all__ = ["Health", "Ready"]


@app.page("/healthz")
class Health(View):
    """Liveness: the worker's event loop answers."""

    async def get(self, request: Request) -> Response:
        return self.json({"status": "ok"})


@app.page("/readyz")
class Ready(View):
    """Readiness: table recovery finished and the registry answered."""

    async def get(self, request: Request) -> Response:
        checks: dict[str, Any] = {
            "recovery": app.tables.recovery.completed.is_set(),
            "registry": runtime.registry_ready.is_set(),
        }
        ready = all(checks.values())
        return self.json({"ready": ready, **checks}, status=200 if ready else 503)
