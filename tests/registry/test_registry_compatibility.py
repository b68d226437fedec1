"""Compatibility levels, table-driven, with outcomes reasoned from Avro's schema-resolution rules.

Every expectation below was derived by hand from the Avro specification ("Schema Resolution"),
not by running a checker. With reader R and writer W:

* records: fields are matched by name (or by one of R's field ``aliases``); a W field missing
  in R is ignored; an R field missing in W needs a default in R, else error. Record and enum
  names must match.
* primitives: equal types match; W may be promoted: int -> long/float/double, long ->
  float/double, float -> double, string <-> bytes. Nothing narrows.
* enums: a symbol W writes that R lacks is an error, unless R's enum declares a ``default`` symbol.
* unions: every branch W may write must match some branch of R; a non-union W must match some
  branch of a union R; a union W against a non-union R needs every W branch to match R.

BACKWARD checks R=new, W=old; FORWARD R=old, W=new; FULL both; NONE nothing. With a single
registered version the transitive levels must agree with their plain forms; the chains at the
bottom show where they differ.
"""

from __future__ import annotations

import json

import pytest

LEVELS = (
    "BACKWARD",
    "BACKWARD_TRANSITIVE",
    "FORWARD",
    "FORWARD_TRANSITIVE",
    "FULL",
    "FULL_TRANSITIVE",
    "NONE",
)


def rec(*fields: dict, name: str = "Download") -> dict:
    return {
        "type": "record",
        "name": name,
        "namespace": "com.streampulse.test",
        "fields": list(fields),
    }


def f(name: str, type_: object, **extra: object) -> dict:
    return {"name": name, "type": type_, **extra}


ID = f("id", "string")
STATUS = {"type": "enum", "name": "Status", "symbols": ["started", "completed"]}
STATUS_PLUS = {"type": "enum", "name": "Status", "symbols": ["started", "completed", "failed"]}
STATUS_WITH_DEFAULT = {
    **STATUS,
    "symbols": ["started", "completed", "unknown"],
    "default": "unknown",
}
STATUS_WITH_DEFAULT_PLUS = {
    **STATUS_WITH_DEFAULT,
    "symbols": [*STATUS_WITH_DEFAULT["symbols"], "failed"],
}

# (case, old schema, new schema, verdicts: Y compatible / N incompatible), verdict columns:
# BACKWARD BACKWARD_TRANSITIVE FORWARD FORWARD_TRANSITIVE FULL FULL_TRANSITIVE NONE
# fmt: off
CASES = [
    # R=new has the added field's default when reading old data; R=old ignores the extra field.
    ("add field with default",
     rec(ID), rec(ID, f("device", ["null", "string"], default=None)),
     "Y Y Y Y Y Y Y"),
    # BACKWARD: R=new lacks a default for a field old data does not have.
    ("add field without default",
     rec(ID), rec(ID, f("device", "string")),
     "N N Y Y N N Y"),
    # BACKWARD: R=new ignores the old writer's extra field. FORWARD: R=old needs it, no default.
    ("remove field",
     rec(ID, f("bytes", "long")), rec(ID),
     "Y Y N N N N Y"),
    # FORWARD now works: R=old fills the missing field from its default.
    ("remove field that has a default",
     rec(ID, f("bytes", "long", default=0)), rec(ID),
     "Y Y Y Y Y Y Y"),
    # Each side's field is missing on the other side, with no default.
    ("rename field",
     rec(ID, f("bytes", "long")), rec(ID, f("size", "long")),
     "N N N N N N Y"),
    # BACKWARD: R=new finds W's field through its alias. FORWARD: R=old has no alias for "size".
    ("rename field with alias",
     rec(ID, f("bytes", "long")), rec(ID, f("size", "long", aliases=["bytes"])),
     "Y Y N N N N Y"),
    # string and int do not promote either way.
    ("change field type",
     rec(ID, f("bytes", "string")), rec(ID, f("bytes", "int")),
     "N N N N N N Y"),
    # BACKWARD: R long reads W int (promotion). FORWARD: R int cannot read W long.
    ("widen int to long",
     rec(ID, f("bytes", "int")), rec(ID, f("bytes", "long")),
     "Y Y N N N N Y"),
    ("narrow long to int",
     rec(ID, f("bytes", "long")), rec(ID, f("bytes", "int")),
     "N N Y Y N N Y"),
    # BACKWARD: R=new has every old symbol. FORWARD: R=old lacks "failed" and has no default.
    ("add enum symbol",
     rec(ID, f("status", STATUS)), rec(ID, f("status", STATUS_PLUS)),
     "Y Y N N N N Y"),
    # FORWARD works when R=old's enum declares a default symbol for unknown ones.
    ("add enum symbol, enum has default",
     rec(ID, f("status", STATUS_WITH_DEFAULT)), rec(ID, f("status", STATUS_WITH_DEFAULT_PLUS)),
     "Y Y Y Y Y Y Y"),
    ("remove enum symbol",
     rec(ID, f("status", STATUS_PLUS)), rec(ID, f("status", STATUS)),
     "N N Y Y N N Y"),
    # BACKWARD: W=old union may write null, which R=new "string" cannot read.
    # FORWARD: W=new writes string, which R=old's union has a branch for.
    ("make optional required",
     rec(ID, f("city", ["null", "string"], default=None)), rec(ID, f("city", "string")),
     "N N Y Y N N Y"),
    ("make required optional",
     rec(ID, f("city", "string")), rec(ID, f("city", ["null", "string"], default=None)),
     "Y Y N N N N Y"),
    # BACKWARD: R=new's union has every old branch. FORWARD: W=new may write int; R=old cannot.
    ("add union branch",
     rec(ID, f("v", ["null", "string"], default=None)),
     rec(ID, f("v", ["null", "string", "int"], default=None)),
     "Y Y N N N N Y"),
    # Record names must match (no aliases) in both directions.
    ("rename record type",
     rec(ID), rec(ID, name="DownloadV2"),
     "N N N N N N Y"),
]
# fmt: on



def _subject(case: str, level: str) -> str:
    return f"{case.replace(' ', '_').replace(',', '')}-{level.lower()}-value"


@pytest.mark.parametrize("level_index,level", list(enumerate(LEVELS)))
@pytest.mark.parametrize("case,old,new,verdicts", CASES, ids=[c[0] for c in CASES])
def test_level_decides_like_avro(api, case, old, new, verdicts, level_index, level):
    expected = verdicts.split()[level_index] == "Y"
    subject = _subject(case, level)
    assert api.put(f"/config/{subject}", {"compatibility": level}).status == 200
    assert api.register(subject, old).status == 200

    check = api.post(
        f"/compatibility/subjects/{subject}/versions/latest?verbose=true",
        {"schema": json.dumps(new)},
    )
    assert check.status == 200
    assert check.body["is_compatible"] is expected, check.body["messages"]
    assert bool(check.body["messages"]) is not expected

    registered = api.register(subject, new)
    if expected:
        assert registered.status == 200, registered.body
        assert api.get(f"/subjects/{subject}/versions").body == [1, 2]
    else:
        assert (registered.status, registered.error_code) == (409, 409)
        assert f'subject "{subject}"' in registered.body["message"]
        assert api.get(f"/subjects/{subject}/versions").body == [1]


# Three-version chains: v3 is compatible with v2 (the latest) but not with v1.
CHAINS = {
    # v1 -> v2 drops "a" (BACKWARD ok); v3 brings "a" back as a string with a default: fine
    # against v2 (default fills it), but R=v3 string cannot read v1's int.
    "BACKWARD": [
        rec(ID, f("a", "int")),
        rec(ID),
        rec(ID, f("a", "string", default="x")),
    ],
    # R=v1 fills the dropped "a" from its default; R=v2 ignores v3's "a"; R=v1 int cannot read
    # v3's string.
    "FORWARD": [
        rec(ID, f("a", "int", default=1)),
        rec(ID),
        rec(ID, f("a", "string")),
    ],
    # Both directions hold pairwise with v2; BACKWARD fails v3 against v1 (string vs int).
    "FULL": [
        rec(ID, f("a", "int", default=1)),
        rec(ID),
        rec(ID, f("a", "string", default="x")),
    ],
}


@pytest.mark.parametrize("family", list(CHAINS))
@pytest.mark.parametrize("transitive", [False, True], ids=["latest-only", "transitive"])
def test_transitive_levels_check_every_version(api, family, transitive):
    level = f"{family}_TRANSITIVE" if transitive else family
    subject = f"chain-{level.lower()}-value"
    v1, v2, v3 = CHAINS[family]
    api.put(f"/config/{subject}", {"compatibility": level})
    assert api.register(subject, v1).status == 200
    assert api.register(subject, v2).status == 200

    # Against the latest version only, v3 passes whatever the level.
    latest = api.post(
        f"/compatibility/subjects/{subject}/versions/latest", {"schema": json.dumps(v3)}
    )
    assert latest.body == {"is_compatible": True}
    # Against v1 explicitly, it fails in the family's direction.
    first = api.post(f"/compatibility/subjects/{subject}/versions/1", {"schema": json.dumps(v3)})
    assert first.body == {"is_compatible": False}
    # The all-versions check and registration follow the level.
    every = api.post(f"/compatibility/subjects/{subject}/versions", {"schema": json.dumps(v3)})
    assert every.body == {"is_compatible": not transitive}
    answer = api.register(subject, v3)
    assert answer.status == (409 if transitive else 200)


def test_soft_deleted_versions_are_not_checked(api):
    subject = "compat-deleted-value"
    api.put(f"/config/{subject}", {"compatibility": "NONE"})
    api.register(subject, rec(ID, f("a", "string")))
    api.register(subject, rec(ID, f("a", "int")))
    api.put(f"/config/{subject}", {"compatibility": "BACKWARD"})
    evolved = rec(ID, f("a", "string"), f("b", "string", default=""))
    assert api.register(subject, evolved).status == 409  # against v2 (a: int)
    assert api.delete(f"/subjects/{subject}/versions/2").body == 2
    assert api.register(subject, evolved).status == 200  # now against v1 only
    assert api.get(f"/subjects/{subject}/versions").body == [1, 3]


def test_compatibility_with_unknown_subject_or_version(api):
    schema = {"schema": json.dumps(rec(ID))}
    assert api.post("/compatibility/subjects/none-value/versions/latest", schema).body == {
        "is_compatible": True
    }
    assert api.post("/compatibility/subjects/none-value/versions", schema).body == {
        "is_compatible": True
    }
    missing = api.post("/compatibility/subjects/none-value/versions/3", schema)
    assert (missing.status, missing.error_code) == (404, 40402)


def test_global_level_applies_until_subject_overrides(api):
    subject = "global-level-value"
    assert api.put("/config", {"compatibility": "FORWARD"}).body == {"compatibility": "FORWARD"}
    try:
        api.register(subject, rec(ID, f("bytes", "long")))
        # Removing a field without default is FORWARD-incompatible...
        assert api.register(subject, rec(ID)).status == 409
        # ...until the subject says otherwise.
        api.put(f"/config/{subject}", {"compatibility": "BACKWARD"})
        assert api.register(subject, rec(ID)).status == 200
    finally:
        api.put("/config", {"compatibility": "BACKWARD"})
