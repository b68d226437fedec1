"""HTTP routes, one module per REST resource of the Confluent Schema Registry API."""

from __future__ import annotations

from aiohttp import web

from . import compatibility, config, root, schemas, subjects

__all__ = ["add_all_routes"]


def add_all_routes(router: web.UrlDispatcher) -> None:
    for module in (root, subjects, schemas, config, compatibility):
        module.add_routes(router)
