"""The REST surface: routes, bodies, content types, ids, lookups and configuration."""

from __future__ import annotations

import json

import pytest

SCHEMA = {
    "type": "record",
    "name": "Api",
    "namespace": "com.streampulse.test",
    "doc": "first",
    "fields": [{"name": "a", "type": "string"}],
}
MEDIA_TYPE = "application/vnd.schemaregistry.v1+json"


def test_root_and_schema_types(http):
    root = http.get("/")
    assert (root.status, root.body) == (200, {})
    assert root.content_type == MEDIA_TYPE
    assert http.get("/schemas/types").body == ["AVRO"]


@pytest.mark.parametrize(
    "content_type",
    [
        "application/vnd.schemaregistry.v1+json",
        "application/vnd.schemaregistry+json",
        "application/json",
        "application/json; charset=utf-8",
        "application/octet-stream",
    ],
)
def test_accepted_request_content_types(http, content_type):
    answer = http.post(
        "/subjects/s/versions", {"schema": json.dumps(SCHEMA)}, content_type=content_type
    )
    assert (answer.status, answer.body) == (200, {"id": 1})


def test_registration_is_idempotent_and_ids_are_global(http):
    text = json.dumps(SCHEMA, indent=2)
    assert http.register("s", text).body == {"id": 1}
    # Same schema, other formatting and key order: same id and version.
    reordered = json.dumps(dict(reversed(list(SCHEMA.items()))))
    assert http.register("s", reordered).body == {"id": 1}
    assert http.get("/subjects/s/versions").body == [1]
    # Under another subject: the same id, version 1 there.
    assert http.register("t", SCHEMA).body == {"id": 1}
    # A different doc is a different schema (Confluent keeps doc in its canonical string).
    assert http.register("s", {**SCHEMA, "doc": "second"}).body == {"id": 2}
    assert http.get("/subjects").body == ["s", "t"]
    # The text is served as it was first registered.
    assert http.get("/schemas/ids/1").body == {"schema": text}
    assert http.get("/subjects/t/versions/1").body == {
        "subject": "t",
        "version": 1,
        "id": 1,
        "schema": text,
    }
    assert http.get("/schemas/ids/1/schema").body == SCHEMA
    assert http.get("/subjects/s/versions/latest/schema").body == {**SCHEMA, "doc": "second"}
    assert http.get("/schemas/ids/1/subjects").body == ["s", "t"]
    assert http.get("/schemas/ids/1/versions").body == [
        {"subject": "s", "version": 1},
        {"subject": "t", "version": 1},
    ]


def test_primitive_schemas(http):
    assert http.register("k", "string").status == 422  # not JSON: the text must be '"string"'
    assert http.register("k", '"string"').body == {"id": 1}
    assert http.register("k", '{"type": "string"}').body == {"id": 1}


def test_lookup_under_subject(http):
    http.register("s", SCHEMA)
    found = http.post("/subjects/s?normalize=false&deleted=false", {"schema": json.dumps(SCHEMA)})
    assert found.status == 200
    assert {k: found.body[k] for k in ("subject", "version", "id")} == {
        "subject": "s",
        "version": 1,
        "id": 1,
    }


def test_unknown_query_parameters_are_ignored(http):
    body = {"schema": json.dumps(SCHEMA), "schemaType": "AVRO", "references": [], "metadata": None}
    assert http.post("/subjects/s/versions?normalize=true&foo=bar", body).body == {"id": 1}
    assert http.get("/schemas/ids/1?subject=s&format=x").status == 200
    assert http.get("/subjects/s/versions/latest?deleted=false&x=1").body["version"] == 1
    assert http.get("/subjects?deleted=false&subjectPrefix=x").body == ["s"]


def test_version_minus_one_is_latest(http):
    http.register("s", SCHEMA)
    http.register("s", {**SCHEMA, "doc": "second"})
    assert http.get("/subjects/s/versions/-1").body["version"] == 2
    assert http.get("/subjects/s/versions/latest").body["version"] == 2


def test_config_endpoints(http):
    assert http.get("/config").body == {"compatibilityLevel": "BACKWARD"}
    assert http.get("/config/").body == {"compatibilityLevel": "BACKWARD"}
    assert http.put("/config/", {"compatibility": "full"}).body == {"compatibility": "FULL"}
    assert http.get("/config").body == {"compatibilityLevel": "FULL"}
    # A subject may be configured before it has any schema.
    assert http.put("/config/s", {"compatibility": "NONE"}).body == {"compatibility": "NONE"}
    assert http.get("/config/s").body == {"compatibilityLevel": "NONE"}
    assert http.get("/config/s/").body == {"compatibilityLevel": "NONE"}
    assert http.delete("/config/s").body == {"compatibilityLevel": "NONE"}
    assert http.get("/config/s?defaultToGlobal=true").body == {"compatibilityLevel": "FULL"}
    assert http.delete("/config").body == {"compatibilityLevel": "FULL"}
    assert http.get("/config").body == {"compatibilityLevel": "BACKWARD"}


def test_compatibility_verbose_and_plain(http):
    http.register("s", SCHEMA)
    bad = {**SCHEMA, "fields": [{"name": "a", "type": "int"}]}
    plain = http.post("/compatibility/subjects/s/versions/latest", {"schema": json.dumps(bad)})
    assert plain.body == {"is_compatible": False}
    verbose = http.post(
        "/compatibility/subjects/s/versions/1?verbose=true", {"schema": json.dumps(bad)}
    )
    assert verbose.body["is_compatible"] is False
    assert any("TYPE_MISMATCH" in m for m in verbose.body["messages"])
    assert "{oldSchemaVersion: 1}" in verbose.body["messages"]
    assert "{compatibility: 'BACKWARD'}" in verbose.body["messages"]
    good = http.post(
        "/compatibility/subjects/s/versions/latest?verbose=true", {"schema": json.dumps(SCHEMA)}
    )
    assert good.body == {"is_compatible": True, "messages": []}
    # Checking registers nothing.
    assert http.get("/subjects/s/versions").body == [1]
