"""Soft and hard (permanent) deletes of subjects and versions, as Confluent does them."""

from __future__ import annotations

import json

SCHEMA_1 = {"type": "record", "name": "D", "fields": [{"name": "a", "type": "string"}]}
SCHEMA_2 = {
    "type": "record",
    "name": "D",
    "fields": [{"name": "a", "type": "string"}, {"name": "b", "type": "int", "default": 0}],
}
SCHEMA_3 = {
    "type": "record",
    "name": "D",
    "fields": [{"name": "a", "type": "string"}, {"name": "c", "type": "long", "default": 0}],
}


def test_soft_delete_subject_hides_it_and_keeps_ids_readable(http):
    id_1 = http.register("s", SCHEMA_1).body["id"]
    http.register("s", SCHEMA_2)
    http.put("/config/s", {"compatibility": "FULL"})

    assert http.delete("/subjects/s").body == [1, 2]
    assert http.get("/subjects").body == []
    assert http.get("/subjects?deleted=true").body == ["s"]
    assert http.get("/subjects/s/versions").error_code == 40401
    assert http.get("/subjects/s/versions?deleted=true").body == [1, 2]
    assert http.get("/subjects/s/versions/1").error_code == 40402
    assert http.get("/subjects/s/versions/1?deleted=true").body["id"] == id_1
    assert http.post("/subjects/s", {"schema": json.dumps(SCHEMA_1)}).error_code == 40401
    found = http.post("/subjects/s?deleted=true", {"schema": json.dumps(SCHEMA_1)})
    assert found.body["version"] == 1
    # Data written with a soft-deleted schema stays decodable.
    assert json.loads(http.get(f"/schemas/ids/{id_1}").body["schema"]) == SCHEMA_1
    assert http.get(f"/schemas/ids/{id_1}/subjects").body == []
    assert http.get(f"/schemas/ids/{id_1}/subjects?deleted=true").body == ["s"]
    # A soft delete of the whole subject drops its compatibility setting.
    assert http.get("/config/s").error_code == 40408
    # Deleting it again needs permanent=true.
    assert http.delete("/subjects/s").error_code == 40404


def test_versions_continue_after_soft_delete_and_ids_are_reused(http):
    id_1 = http.register("s", SCHEMA_1).body["id"]
    id_2 = http.register("s", SCHEMA_2).body["id"]
    assert http.delete("/subjects/s/versions/2").body == 2
    assert http.get("/subjects/s/versions").body == [1]
    assert http.get("/subjects/s/versions/latest").body["version"] == 1
    # The same schema again: a new version, its old id.
    assert http.register("s", SCHEMA_2).body["id"] == id_2
    assert http.get("/subjects/s/versions").body == [1, 3]
    assert http.get("/subjects/s/versions/3").body["id"] == id_2
    assert http.get("/subjects/s/versions?deleted=true").body == [1, 2, 3]
    assert http.get(f"/schemas/ids/{id_1}/versions").body == [{"subject": "s", "version": 1}]


def test_delete_latest_version_by_alias(http):
    http.register("s", SCHEMA_1)
    http.register("s", SCHEMA_2)
    http.register("s", SCHEMA_3)
    assert http.delete("/subjects/s/versions/latest").body == 3
    assert http.delete("/subjects/s/versions/-1").body == 2
    assert http.get("/subjects/s/versions/latest").body["version"] == 1


def test_permanent_delete_needs_soft_delete_first(http):
    http.register("s", SCHEMA_1)
    http.register("s", SCHEMA_2)
    assert http.delete("/subjects/s?permanent=true").error_code == 40405
    assert http.delete("/subjects/s/versions/1?permanent=true").error_code == 40407
    assert http.delete("/subjects/s/versions/1").body == 1
    assert http.delete("/subjects/s/versions/1").error_code == 40406
    assert http.delete("/subjects/s/versions/1?permanent=true").body == 1
    assert http.get("/subjects/s/versions/1?deleted=true").error_code == 40402
    assert http.get("/subjects/s/versions?deleted=true").body == [2]


def test_hard_delete_subject_resets_versions_and_keeps_the_id_sequence(http):
    id_1 = http.register("s", SCHEMA_1).body["id"]
    id_2 = http.register("s", SCHEMA_2).body["id"]
    assert http.delete("/subjects/s").body == [1, 2]
    assert http.delete("/subjects/s?permanent=true").body == [1, 2]
    assert http.get("/subjects?deleted=true").body == []
    assert http.get("/subjects/s/versions?deleted=true").error_code == 40401
    assert http.delete("/subjects/s?permanent=true").error_code == 40401
    # No version refers to the ids any more: they do not resolve...
    assert http.get(f"/schemas/ids/{id_1}").error_code == 40403
    # ...but the same schema registered again gets its old id back, and numbering restarts.
    assert http.register("t", SCHEMA_2).body["id"] == id_2
    assert http.register("s", SCHEMA_1).body["id"] == id_1
    assert http.get("/subjects/s/versions").body == [1]
    # A new schema continues the id sequence.
    assert http.register("s", SCHEMA_3).body["id"] == max(id_1, id_2) + 1


def test_hard_delete_of_a_shared_schema_keeps_it_for_other_subjects(http):
    schema_id = http.register("a", SCHEMA_1).body["id"]
    assert http.register("b", SCHEMA_1).body["id"] == schema_id
    http.delete("/subjects/a")
    http.delete("/subjects/a?permanent=true")
    assert http.get(f"/schemas/ids/{schema_id}/subjects").body == ["b"]
    assert http.get(f"/schemas/ids/{schema_id}/schema").body == SCHEMA_1
