"""``/schemas``: schemas by global id, and the supported schema types."""

from __future__ import annotations

from aiohttp import web

from ..avro_schema import SUPPORTED_SCHEMA_TYPES
from ..errors import RegistryError
from .common import add_route, flag, json_response, registry, text_response

__all__ = ["add_routes"]

_ID = "/schemas/ids/{schema_id:[0-9]+}"


#: Confluent's ids are Java ints; a larger one cannot exist (and overflows SQLite's INTEGER).
_MAX_ID = 2**31 - 1


def _schema_id(request: web.Request) -> int:
    text = request.match_info["schema_id"]
    schema_id = int(text)
    if schema_id > _MAX_ID:
        raise RegistryError.schema_not_found(text)
    return schema_id


async def get_schema(request: web.Request) -> web.Response:
    stored = registry(request).schema_by_id(_schema_id(request))
    body: dict[str, object] = {"schema": stored.schema}
    if stored.schema_type != "AVRO":
        body["schemaType"] = stored.schema_type
    return json_response(body)


async def get_schema_text(request: web.Request) -> web.Response:
    return text_response(registry(request).schema_by_id(_schema_id(request)).schema)


async def get_schema_subjects(request: web.Request) -> web.Response:
    usages = registry(request).usages_of_schema(
        _schema_id(request), deleted=flag(request, "deleted")
    )
    return json_response(sorted({subject for subject, _ in usages}))


async def get_schema_versions(request: web.Request) -> web.Response:
    usages = registry(request).usages_of_schema(
        _schema_id(request), deleted=flag(request, "deleted")
    )
    return json_response([{"subject": subject, "version": version} for subject, version in usages])


async def get_schema_types(request: web.Request) -> web.Response:
    return json_response(list(SUPPORTED_SCHEMA_TYPES))


def add_routes(router: web.UrlDispatcher) -> None:
    add_route(router, "GET", "/schemas/types", get_schema_types)
    add_route(router, "GET", _ID, get_schema)
    add_route(router, "GET", _ID + "/schema", get_schema_text)
    add_route(router, "GET", _ID + "/subjects", get_schema_subjects)
    add_route(router, "GET", _ID + "/versions", get_schema_versions)
