"""``/compatibility``: test a schema against a subject's versions without registering it."""

from __future__ import annotations

from aiohttp import web

from .common import add_route, flag, json_response, parse_version, read_body, registry

__all__ = ["add_routes"]


async def _check(request: web.Request, spec) -> web.Response:
    body = await read_body(request)
    messages = registry(request).check_compatibility(
        request.match_info["subject"], body.get("schema"), body.get("schemaType"), spec
    )
    result: dict[str, object] = {"is_compatible": not messages}
    if flag(request, "verbose"):
        result["messages"] = messages
    return json_response(result)


async def check_version(request: web.Request) -> web.Response:
    """Against one version (``latest``: the newest live one; compatible if there is none)."""
    return await _check(request, parse_version(request.match_info["version"]))


async def check_all_versions(request: web.Request) -> web.Response:
    """Against the versions a registration would be checked against, per the subject's level."""
    return await _check(request, None)


def add_routes(router: web.UrlDispatcher) -> None:
    add_route(router, "POST", "/compatibility/subjects/{subject}/versions/{version}", check_version)
    add_route(router, "POST", "/compatibility/subjects/{subject}/versions", check_all_versions)
