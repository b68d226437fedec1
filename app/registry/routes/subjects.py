"""``/subjects``: list, register, look up, read and delete subject versions."""

from __future__ import annotations

from aiohttp import web

from ..errors import RegistryError
from .common import (
    add_route,
    flag,
    json_response,
    parse_version,
    read_body,
    registry,
    text_response,
)

__all__ = ["add_routes"]


def _check_references(body: dict) -> None:
    if body.get("references"):
        raise RegistryError.invalid_schema("schema references are not supported by this registry")


async def list_subjects(request: web.Request) -> web.Response:
    return json_response(registry(request).subjects(deleted=flag(request, "deleted")))


async def register(request: web.Request) -> web.Response:
    subject = request.match_info["subject"]
    body = await read_body(request)
    _check_references(body)
    schema_id = await registry(request).register(
        subject, body.get("schema"), body.get("schemaType")
    )
    return json_response({"id": schema_id})


async def lookup(request: web.Request) -> web.Response:
    subject = request.match_info["subject"]
    body = await read_body(request)
    _check_references(body)
    found = registry(request).lookup(
        subject, body.get("schema"), body.get("schemaType"), deleted=flag(request, "deleted")
    )
    return json_response(found.to_json())


async def list_versions(request: web.Request) -> web.Response:
    subject = request.match_info["subject"]
    return json_response(registry(request).versions(subject, deleted=flag(request, "deleted")))


async def get_version(request: web.Request) -> web.Response:
    subject = request.match_info["subject"]
    spec = parse_version(request.match_info["version"])
    found = registry(request).get_version(subject, spec, deleted=flag(request, "deleted"))
    return json_response(found.to_json())


async def get_version_schema(request: web.Request) -> web.Response:
    subject = request.match_info["subject"]
    spec = parse_version(request.match_info["version"])
    found = registry(request).get_version(subject, spec, deleted=flag(request, "deleted"))
    return text_response(found.schema.schema)


async def delete_subject(request: web.Request) -> web.Response:
    subject = request.match_info["subject"]
    versions = await registry(request).delete_subject(subject, permanent=flag(request, "permanent"))
    return json_response(versions)


async def delete_version(request: web.Request) -> web.Response:
    subject = request.match_info["subject"]
    spec = parse_version(request.match_info["version"])
    version = await registry(request).delete_version(
        subject, spec, permanent=flag(request, "permanent")
    )
    return json_response(version)


def add_routes(router: web.UrlDispatcher) -> None:
    add_route(router, "GET", "/subjects", list_subjects)
    add_route(router, "POST", "/subjects/{subject}", lookup)
    add_route(router, "DELETE", "/subjects/{subject}", delete_subject)
    add_route(router, "GET", "/subjects/{subject}/versions", list_versions)
    add_route(router, "POST", "/subjects/{subject}/versions", register)
    add_route(router, "GET", "/subjects/{subject}/versions/{version}", get_version)
    add_route(router, "DELETE", "/subjects/{subject}/versions/{version}", delete_version)
    add_route(router, "GET", "/subjects/{subject}/versions/{version}/schema", get_version_schema)
