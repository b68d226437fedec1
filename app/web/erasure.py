"""GDPR erasure (seed 004, README "Privacy"): ``POST /erasure/`` with ``{"user_id": ...}``.

Removes one user's entries from every table keyed by user (the join's ``users`` table: A/B
assignments, conversions, recent recommendation responses and clicks; the aggregates hold no
user) and answers what was removed. The removal is a changelog tombstone, so it survives a
restart and a fresh data directory.

Protected by the bearer token ``ERASURE_TOKEN`` (``Authorization: Bearer <token>``, compared
in constant time); with no token set the route answers 403 and does nothing. The user id
travels in the body, not the path, so it is in no access log or URL. Routed like the table
views: the worker owning the user's partition erases; another forwards the request once.

| answer | when |
|---|---|
| 200 ``{"erased": true, "removed": {...}}`` | the user had state; ``removed`` counts it |
| 404 ``{"erased": false}`` | no state for that user (nothing to remove) |
| 400 | the body is not ``{"user_id": "<non-blank string>"}`` |
| 401 / 403 | wrong or missing token / erasure disabled |
| 503 | assignment unknown or moving, table recovering, owner unreachable: retry |
"""

from __future__ import annotations

import hmac
import json
import logging
from typing import Any

from faust.web import Request, Response, View

from app.main import engine, settings
from app.web.routes import ROUTED_HEADER, forward, owner_of

__all__ = ["Erasure", "authorized"]

log = logging.getLogger(__name__)
MAX_BODY_BYTES = 4096


def authorized(header: str | None, token: str) -> bool:
    """Whether ``Authorization: Bearer <token>`` names ``token`` (constant-time compare)."""
    scheme, _, given = (header or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode(), token.encode()
    )


@engine.app.page("/erasure/")
class Erasure(View):
    async def post(self, request: Request) -> Response:
        token = settings.erasure_token
        if token is None:
            return self.error(403, "erasure is disabled: ERASURE_TOKEN is not set")
        if not authorized(request.headers.get("Authorization"), token):
            return self.error(401, "a valid bearer token is required")
        join = engine.join
        if join is None:
            return self.error(404, "this worker keeps no per-user state")
        if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
            return self.error(400, f"the body is over {MAX_BODY_BYTES} bytes")
        raw = await request.read()
        user = _user_id(raw)
        if user is None:
            return self.error(400, 'the body must be {"user_id": "<user id>"}')
        owner = owner_of(join.table.name, user)
        if owner is not None:
            if request.headers.get(ROUTED_HEADER):
                # Forwarded here, but the partition has moved on: a 404 would claim "no
                # state" for a user this worker does not hold. Ask again.
                return self.error(503, "the user's partition is moving; retry")
            return await forward(
                self, request, owner, raw, Authorization=request.headers["Authorization"]
            )
        app = engine.app
        if getattr(app, "recovered_generation", None) != app.consumer_generation_id:
            # Mid-recovery a restored record could undo the erasure, and a missing one
            # would read as "no state".
            return self.error(503, "the users table is still recovering; retry")
        removed = await join.erase(user)
        log.info("erasure request carried out: %s", "state removed" if removed else "no state")
        if removed is None:
            return self.json({"erased": False}, status=404)
        return self.json({"erased": True, "removed": removed})


def _user_id(raw: bytes) -> str | None:
    if len(raw) > MAX_BODY_BYTES:
        return None
    try:
        body: Any = json.loads(raw)
    except ValueError:
        return None
    user = body.get("user_id") if isinstance(body, dict) else None
    return user if isinstance(user, str) and user.strip() else None
