"""``/config``: the global and per-subject compatibility levels."""

from __future__ import annotations

from aiohttp import web

from ..core import parse_compatibility_level
from .common import add_route, flag, json_response, read_body, registry

__all__ = ["add_routes"]


async def _level_from_body(request: web.Request):
    body = await read_body(request)
    return parse_compatibility_level(body.get("compatibility", body.get("compatibilityLevel")))


async def get_global(request: web.Request) -> web.Response:
    return json_response({"compatibilityLevel": registry(request).global_compatibility().value})


async def put_global(request: web.Request) -> web.Response:
    level = await registry(request).set_global_compatibility(await _level_from_body(request))
    return json_response({"compatibility": level.value})


async def delete_global(request: web.Request) -> web.Response:
    previous = await registry(request).delete_global_compatibility()
    return json_response({"compatibilityLevel": previous.value})


async def get_subject(request: web.Request) -> web.Response:
    level = registry(request).subject_compatibility(
        request.match_info["subject"], default_to_global=flag(request, "defaultToGlobal")
    )
    return json_response({"compatibilityLevel": level.value})


async def put_subject(request: web.Request) -> web.Response:
    level = await registry(request).set_subject_compatibility(
        request.match_info["subject"], await _level_from_body(request)
    )
    return json_response({"compatibility": level.value})


async def delete_subject(request: web.Request) -> web.Response:
    previous = await registry(request).delete_subject_compatibility(request.match_info["subject"])
    return json_response({"compatibilityLevel": previous.value})


def add_routes(router: web.UrlDispatcher) -> None:
    add_route(router, "GET", "/config", get_global)
    add_route(router, "PUT", "/config", put_global)
    add_route(router, "DELETE", "/config", delete_global)
    add_route(router, "GET", "/config/{subject}", get_subject)
    add_route(router, "PUT", "/config/{subject}", put_subject)
    add_route(router, "DELETE", "/config/{subject}", delete_subject)
