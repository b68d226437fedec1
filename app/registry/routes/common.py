"""What every route module needs: the registry handle, body parsing, responses, path values."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from ..core import Registry
from ..errors import ErrorCode, RegistryError
from ..types import LATEST, MAX_VERSION, Version, VersionSpec

__all__ = [
    "MEDIA_TYPE",
    "REGISTRY",
    "add_route",
    "error_response",
    "flag",
    "json_response",
    "parse_version",
    "read_body",
    "registry",
    "text_response",
]

MEDIA_TYPE = "application/vnd.schemaregistry.v1+json"
# Request body types Confluent accepts (aiohttp reports a missing Content-Type as octet-stream).
ACCEPTED_BODY_TYPES = frozenset(
    {
        "application/vnd.schemaregistry.v1+json",
        "application/vnd.schemaregistry+json",
        "application/json",
        "application/octet-stream",
    }
)

REGISTRY = web.AppKey("registry", Registry)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def registry(request: web.Request) -> Registry:
    return request.app[REGISTRY]


def add_route(router: web.UrlDispatcher, method: str, path: str, handler: Handler) -> None:
    """Register ``path`` and its trailing-slash twin (clients ask for ``/config/``)."""
    router.add_route(method, path, handler)
    router.add_route(method, path + "/", handler)


def json_response(data: Any, status: int = 200) -> web.Response:
    body = json.dumps(data, separators=(",", ":")).encode()
    return web.Response(body=body, status=status, content_type=MEDIA_TYPE)


def text_response(text: str) -> web.Response:
    """A body that is already JSON text (a schema as registered)."""
    return web.Response(body=text.encode(), content_type=MEDIA_TYPE)


def error_response(status: int, code: int, message: str) -> web.Response:
    return json_response({"error_code": code, "message": message}, status=status)


async def read_body(request: web.Request) -> dict[str, Any]:
    """The JSON object in the request body ({} when empty); 415/400 like Confluent."""
    if request.content_type not in ACCEPTED_BODY_TYPES:
        raise RegistryError(ErrorCode.UNSUPPORTED_MEDIA_TYPE, "HTTP 415 Unsupported Media Type")
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise RegistryError(ErrorCode.BAD_REQUEST, f"Unrecognized request body: {exc}") from exc
    if not isinstance(body, dict):
        raise RegistryError(ErrorCode.BAD_REQUEST, "Request body must be a JSON object")
    return body


def flag(request: web.Request, name: str) -> bool:
    """A boolean query parameter (``?deleted=true``); anything but ``true`` is false."""
    return request.query.get(name, "").strip().lower() == "true"


def parse_version(text: str) -> VersionSpec:
    """``latest``, ``-1`` or 1..2^31-1, else 42202."""
    if text == "latest" or text == "-1":
        return LATEST
    try:
        number = int(text)
    except ValueError:
        raise RegistryError.invalid_version(text) from None
    if not 1 <= number <= MAX_VERSION:
        raise RegistryError.invalid_version(text)
    return Version(number)
