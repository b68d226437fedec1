"""``GET /``: the liveness probe Confluent answers with ``{}``."""

from __future__ import annotations

from aiohttp import web

from .common import json_response

__all__ = ["add_routes"]


async def get_root(request: web.Request) -> web.Response:
    return json_response({})


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/", get_root)
