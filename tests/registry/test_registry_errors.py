"""Every error comes back as Confluent's JSON ``{"error_code", "message"}`` with its status."""

from __future__ import annotations

import json

import pytest

from app.registry import ErrorCode

SCHEMA = {"type": "record", "name": "E", "fields": [{"name": "a", "type": "string"}]}
OTHER = {"type": "record", "name": "F", "fields": [{"name": "b", "type": "int"}]}
BODY = {"schema": json.dumps(SCHEMA)}


def assert_error(answer, status: int, code: int) -> None:
    assert (answer.status, answer.error_code) == (status, code), answer.body
    assert isinstance(answer.body["message"], str) and answer.body["message"]
    assert answer.content_type == "application/vnd.schemaregistry.v1+json"


def test_error_codes_are_confluents():
    assert int(ErrorCode.SUBJECT_NOT_FOUND) == 40401
    assert int(ErrorCode.VERSION_NOT_FOUND) == 40402
    assert int(ErrorCode.SCHEMA_NOT_FOUND) == 40403
    assert int(ErrorCode.SCHEMA_INCOMPATIBLE) == 409
    assert int(ErrorCode.INVALID_SCHEMA) == 42201
    assert int(ErrorCode.INVALID_VERSION) == 42202
    assert int(ErrorCode.INVALID_COMPATIBILITY_LEVEL) == 42203
    assert int(ErrorCode.STORE_ERROR) == 50001


def test_40401_subject_not_found(http):
    for answer in (
        http.get("/subjects/missing/versions"),
        http.get("/subjects/missing/versions/1"),
        http.get("/subjects/missing/versions/latest"),
        http.post("/subjects/missing", BODY),
        http.delete("/subjects/missing"),
        http.delete("/subjects/missing/versions/1"),
    ):
        assert_error(answer, 404, 40401)
    assert "'missing'" in http.get("/subjects/missing/versions").body["message"]


def test_40402_version_not_found(http):
    http.register("s", SCHEMA)
    assert_error(http.get("/subjects/s/versions/2"), 404, 40402)
    assert_error(http.get("/subjects/s/versions/2/schema"), 404, 40402)
    assert_error(http.delete("/subjects/s/versions/7"), 404, 40402)
    assert_error(http.post("/compatibility/subjects/s/versions/9", BODY), 404, 40402)
    http.delete("/subjects/s/versions/1")
    assert_error(http.get("/subjects/s/versions/1"), 404, 40402)  # soft-deleted
    assert_error(http.get("/subjects/s/versions/latest"), 404, 40402)


def test_40403_schema_not_found(http):
    assert_error(http.get("/schemas/ids/999"), 404, 40403)
    assert_error(http.get("/schemas/ids/999/schema"), 404, 40403)
    assert_error(http.get("/schemas/ids/999/subjects"), 404, 40403)
    assert_error(http.get("/schemas/ids/999/versions"), 404, 40403)
    # Beyond a Java int no id can exist (and SQLite's INTEGER would overflow): 40403, not 500.
    assert_error(http.get("/schemas/ids/99999999999999999999"), 404, 40403)
    http.register("s", SCHEMA)
    assert_error(http.post("/subjects/s", {"schema": json.dumps(OTHER)}), 404, 40403)


def test_409_incompatible(http):
    http.register("s", SCHEMA)
    answer = http.register("s", {**SCHEMA, "fields": [{"name": "a", "type": "int"}]})
    assert_error(answer, 409, 409)
    assert answer.body["message"].startswith(
        'Schema being registered is incompatible with an earlier schema for subject "s"'
    )


@pytest.mark.parametrize(
    "body",
    [
        {"schema": "not json at all"},
        {"schema": '{"type": "nosuchtype"}'},
        {"schema": '{"type": "record", "name": "R"}'},  # no fields
        {"schema": '{"type": "enum", "name": "Q", "symbols": ["4K"]}'},  # invalid symbol
        # A default must match its field's type.
        {
            "schema": '{"type":"record","name":"R","fields":'
            '[{"name":"a","type":"int","default":"x"}]}'
        },
        # A union's default must match its first branch.
        {
            "schema": '{"type":"record","name":"R","fields":'
            '[{"name":"a","type":["null","string"],"default":"x"}]}'
        },
        {"schema": ""},
        {},
        {"schema": 42},
        {"schema": json.dumps(SCHEMA), "schemaType": "PROTOBUF"},
        {"schema": json.dumps(SCHEMA), "schemaType": "JSON"},
        {"schema": json.dumps(SCHEMA), "schemaType": "XML"},
        {"schema": json.dumps(SCHEMA), "references": [{"name": "x", "subject": "y", "version": 1}]},
    ],
)
def test_42201_invalid_schema(http, body):
    assert_error(http.post("/subjects/s/versions", body), 422, 42201)
    assert http.get("/subjects").body == []


def test_42201_names_the_unsupported_type(http):
    body = {"schema": "syntax = 'proto3';", "schemaType": "PROTOBUF"}
    answer = http.post("/subjects/s/versions", body)
    assert "only AVRO" in answer.body["message"]
    assert_error(http.post("/subjects/s", body), 422, 42201)
    assert_error(http.post("/compatibility/subjects/s/versions/latest", body), 422, 42201)


@pytest.mark.parametrize("version", ["0", "-2", "abc", "1.5", "2147483648"])
def test_42202_invalid_version(http, version):
    http.register("s", SCHEMA)
    assert_error(http.get(f"/subjects/s/versions/{version}"), 422, 42202)
    assert_error(http.delete(f"/subjects/s/versions/{version}"), 422, 42202)
    assert_error(http.post(f"/compatibility/subjects/s/versions/{version}", BODY), 422, 42202)


@pytest.mark.parametrize("level", ["INVALID", "", None, 3, "BACKWARDS"])
def test_42203_invalid_compatibility_level(http, level):
    assert_error(http.put("/config", {"compatibility": level}), 422, 42203)
    assert_error(http.put("/config/s", {"compatibility": level}), 422, 42203)
    assert http.get("/config").body == {"compatibilityLevel": "BACKWARD"}


def test_http_level_errors_are_json(http):
    assert_error(http.get("/no/such/route"), 404, 404)
    assert_error(http.get("/schemas/ids/abc"), 404, 404)
    assert_error(http.call("PATCH", "/subjects"), 405, 405)
    assert_error(http.post("/subjects/s/versions", raw=b"{nope"), 400, 400)
    assert_error(http.post("/subjects/s/versions", raw=b"[1]"), 400, 400)
    text = http.post("/subjects/s/versions", BODY, content_type="text/plain")
    assert_error(text, 415, 415)


def test_40408_subject_level_compatibility_not_configured(http):
    assert_error(http.get("/config/s"), 404, 40408)
    assert http.get("/config/s?defaultToGlobal=true").body == {"compatibilityLevel": "BACKWARD"}
    assert_error(http.delete("/config/s"), 404, 40401)


def test_500_is_json_50001(http, registry, monkeypatch):
    from app.registry.core import Registry

    def boom(self, deleted=False):
        raise RuntimeError("boom")

    monkeypatch.setattr(Registry, "subjects", boom)
    assert_error(http.get("/subjects"), 500, 50001)
