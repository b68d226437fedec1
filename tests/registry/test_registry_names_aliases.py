"""Names and aliases as Avro Java (the engine Confluent runs) decides them, over the HTTP API.

Sources of the cases, cited per case:

* [NV] Avro Java ``SchemaNameValidatorTest`` (``NameValidator.UTF_VALIDATOR`` rows; that is the
  default validator of ``Schema.Parser``, which Confluent's ``AvroSchema`` parses with).
* [CN] Confluent ``AvroSchemaValidateNamesTest`` (the rows for new schemas).
* [CC] Confluent ``AvroCompatibilityTest`` (schema4: a field renamed with an alias).
* [NM] Avro Java ``TestSchemaCompatibilityNameMismatch`` and ``TestSchemaCompatibility``
  (``NS_RECORD1``/``NS_RECORD2``: namespaces alone do not make names differ).
* [J] Derived from Avro Java's code where no upstream test pins it down: ``Schema.Name``,
  ``ParseContext.put`` (namespace parts), ``NamedSchema.addAlias``/``getAliases`` (an alias
  without a dot lives in the type's namespace), ``SchemaCompatibility.schemaNameEquals`` and
  ``lookupWriterField`` (a reader field matching two writer fields is an error).

Python's ``avro`` decided several of these differently (ASCII-only names, unchecked field names,
aliases compared as written); each such case is marked "(Python differed)".
"""

from __future__ import annotations

import json
import re

import pytest

from app.registry.avro_schema import parse_schema

from .conftest import Http

NS = "com.streampulse.names"


def slug(case: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", case.lower()).strip("-")


def rec(name: str, *fields: dict, namespace: str | None = NS, **extra: object) -> dict:
    schema: dict = {"type": "record", "name": name, "fields": list(fields) or [INT_A], **extra}
    if namespace is not None:
        schema["namespace"] = namespace
    return schema


def f(name: str, type_: object, **extra: object) -> dict:
    return {"name": name, "type": type_, **extra}


INT_A = f("a", "int")


def enum(name: str, *symbols: str, **extra: object) -> dict:
    return {"type": "enum", "name": name, "symbols": list(symbols) or ["A", "B"], **extra}


def fixed(name: str, **extra: object) -> dict:
    return {"type": "fixed", "name": name, "size": 4, **extra}



# (case, schema, text Avro Java's message contains)
# fmt: off
INVALID = [
    # [NV] empty, space, "&", "=", "]" and a leading digit are refused by UTF_VALIDATOR.
    ("NV empty record name", rec(""), "Empty name"),
    ("NV space in record name", rec("Hello world"), "Illegal character in: Hello world"),
    ("NV & in field name", rec("R", f("H&", "int")), "Illegal character in: H&"),
    ("NV = in field name", rec("R", f("H=", "int")), "Illegal character in: H="),
    ("NV ] in enum symbol", rec("R", f("e", enum("E", "H]"))), "Illegal character in: H]"),
    ("NV leading digit", rec("5éàçô"), "Illegal initial character: 5éàçô"),
    # [CN] badRecordNameRejected, badFieldNameRejected (Python differed: it accepted),
    # badEnumSymbolRejected, badNestedRecordNameRejected, badFixedNameRejected,
    # laxNamespaceRejectedWhenNew and the same namespace inside the full name.
    ("CN bad record name", rec("bad-name", namespace=None), "Illegal character in: bad-name"),
    ("CN bad field name", rec("MyRec", f("bad-field", "string")), "in: bad-field"),
    ("CN bad enum symbol", rec("MyRec", f("e", enum("E", "OK", "BAD-ONE"))), "BAD-ONE"),
    ("CN bad nested record name", rec("Outer", f("inner", rec("bad-inner", f("x", "int")))),
     "Illegal character in: bad-inner"),
    ("CN bad fixed name", rec("MyRec", f("f", fixed("bad-fixed"))), "bad-fixed"),
    ("CN bad namespace", rec("MyRec", namespace="foo-bar.x"),
     'namespace part "foo-bar" of record foo-bar.x.MyRec'),
    ("CN bad namespace in full name", rec("foo-bar.x.MyRec", namespace=None), "foo-bar"),
    # [J] Schema.Name validates the part after the last dot: "a.b." has an empty name.
    ("J trailing dot", rec("a.b.", namespace=None), "Empty name"),
    ("J leading digit record", rec("1abc"), "Illegal initial character: 1abc"),
    ("J dash in record", rec("a-b"), "Illegal character in: a-b"),
    # [J] Field names are validated like type names (Python differed: it accepted these).
    ("J leading digit field", rec("R", f("1a", "int")), "Illegal initial character: 1a"),
    ("J dot in field name", rec("R", f("a.b", "int")), "Illegal character in: a.b"),
    ("J empty field name", rec("R", f("", "int")), "Empty name"),
    # [J] Enum symbols: leading digit, dash, and a dot (Python's avro accepted "a.b").
    ("J leading digit symbol", rec("R", f("e", enum("E", "1A"))), "Illegal initial character: 1A"),
    ("J dash in symbol", rec("R", f("e", enum("E", "A-B"))), "Illegal character in: A-B"),
    ("J dot in symbol", rec("R", f("e", enum("E", "a.b"))), "Illegal character in: a.b"),
    ("J duplicate symbol", rec("R", f("e", enum("E", "A", "A"))), "Duplicate symbol"),
    # [J] ParseContext.put checks every namespace part: empty parts and a leading digit.
    ("J namespace a..b", rec("R", namespace="a..b"), 'namespace part "" of record a..b.R'),
    ("J namespace .a", rec("R", namespace=".a"), "Empty name"),
    ("J namespace a.", rec("R", namespace="a."), "Empty name"),
    ("J namespace 1a.b", rec("R", namespace="1a.b"), "Illegal initial character: 1a"),
    ("J nested bad namespace", rec("R", f("e", enum("E", namespace="x.9"))),
     'namespace part "9" of enum x.9.E'),
    # [J] addAlias builds a Schema.Name, so a type alias's last part must be a valid name.
    ("J bad record alias", rec("R", aliases=["1bad"]), 'alias "1bad" of record'),
    ("J bad enum alias", rec("R", f("e", enum("E", aliases=["x.-E"]))), 'alias "-E" of enum'),
    # [J] Java tests UTF-16 chars: a character outside the BMP is a surrogate pair, not a letter;
    # "²" (No) and "Ⅻ" (Nl) are not Character.isLetterOrDigit either.
    ("J astral letter", rec("\U0001d49cbc"), "Illegal initial character: \U0001d49cbc"),
    ("J superscript digit", rec("a²"), "Illegal character in: a²"),
    ("J letter number", rec("aⅫ"), "Illegal character in: aⅫ"),
]

VALID = [
    # [NV] Hello_world, éàçô (UTF_VALIDATOR accepts accents; Python differed), _Hello_world.
    ("NV underscore", rec("Hello_world", f("_Hello_world", "int"))),
    ("NV accents in record", rec("éàçô")),
    ("NV accents in field", rec("R", f("éàçô", "string"))),
    # [CN] validSchemaAcceptedWhenNew (namespace a.b, an enum field).
    ("CN valid", rec("MyRec", f("f", "string"), f("e", enum("E")), namespace="a.b")),
    # [J] Unicode letters in namespaces and other scripts, Nd digits after the first character.
    ("J unicode namespace", rec("Café", namespace="données.évènements")),
    ("J CJK name", rec("日本", f("名前", "string"))),
    ("J arabic-indic digit", rec("a٣")),
    ("J null namespace", rec("R", namespace="")),
    # [J] Field aliases are not validated by Avro Java (parseAliases only wants strings).
    ("J odd field alias", rec("R", f("a", "int", aliases=["not-a-name"]))),
    # [J] A type alias's namespace part is not validated, only its last part.
    ("J alias namespace unchecked", rec("R", aliases=["a..b.Old"])),
]
# fmt: on


@pytest.mark.parametrize("case,schema,detail", INVALID, ids=[c[0] for c in INVALID])
def test_invalid_names_are_42201(api: Http, case: str, schema: dict, detail: str) -> None:
    subject = f"invalid-{slug(case)}-value"
    answer = api.register(subject, schema)
    assert (answer.status, answer.error_code) == (422, 42201), answer.body
    assert answer.body["message"].startswith("Invalid schema: ")
    assert detail in answer.body["message"]
    # The compatibility endpoint parses the same way.
    check = api.post(f"/compatibility/subjects/{subject}/versions", {"schema": json.dumps(schema)})
    assert (check.status, check.error_code) == (422, 42201)


@pytest.mark.parametrize("case,schema", VALID, ids=[c[0] for c in VALID])
def test_valid_names_are_accepted(api: Http, case: str, schema: dict) -> None:
    answer = api.register(f"valid-{slug(case)}-value", schema)
    assert answer.status == 200, answer.body
    assert isinstance(answer.body["id"], int)


def test_stored_schemas_are_parsed_without_the_name_rules() -> None:
    # A schema stored before these rules (Python's avro took field "a-b") must stay loadable.
    text = json.dumps(rec("R", f("a-b", "int")))
    assert parse_schema(text, validate_names=False).avro.fields[0].name == "a-b"


def test_unicode_enum_symbols_stay_rejected_for_fastavro(api: Http) -> None:
    # Known difference: Avro Java accepts "É" as a symbol, but Python's avro and fastavro (which
    # our services decode with) refuse it, so the registry does too.
    answer = api.register("unicode-symbol-value", rec("R", f("e", enum("E", "É"))))
    assert (answer.status, answer.error_code) == (422, 42201)


# Renamed named types and fields. (case, old, new, verdicts Y/N for BACKWARD FORWARD FULL).
# BACKWARD: new reads old (reader=new); FORWARD: old reads new (reader=old).
# fmt: off
RENAMES = [
    # [NM] Different names, no alias: NAME_MISMATCH both ways.
    ("record renamed without alias", rec("Old"), rec("New"), "N N N"),
    # [J] addAlias: "Old" on com...New means com...Old (Python differed: it said N N N).
    ("record renamed, short alias", rec("Old"), rec("New", aliases=["Old"]), "Y N N"),
    ("record renamed, full alias", rec("Old"), rec("New", aliases=[f"{NS}.Old"]), "Y N N"),
    # [J] The short alias is not the namespace-less Old (Python differed: it said Y N N).
    ("short alias is namespaced", rec("Old", namespace=None), rec("New", aliases=["Old"]), "N N N"),
    # [J] getAliases spells a null-namespace alias ".Old" on a namespaced type: never matches.
    ("dot alias on namespaced reader", rec("Old", namespace=None), rec("New", aliases=[".Old"]),
     "N N N"),
    # [J] Without a namespace on the reader, ".Old" is plain "Old" (Python differed: N N N).
    ("dot alias without namespace", rec("Old", namespace=None),
     rec("New", aliases=[".Old"], namespace=None), "Y N N"),
    # [J] An alias in another namespace names that namespace.
    ("alias into other namespace", rec("Old", namespace="org.legacy"),
     rec("New", aliases=["org.legacy.Old"]), "Y N N"),
    # [J] Both sides alias each other: FULL holds.
    ("mutual aliases", rec("Old", aliases=["New"]), rec("New", aliases=["Old"]), "Y Y Y"),
    # [NM] NS_RECORD1/NS_RECORD2: only the namespace changed; Java compares short names.
    ("namespace changed only", rec("R", namespace="com.a"), rec("R", namespace="com.b"), "Y Y Y"),
    # [J] A nested enum inherits the record's namespace, and so does its short alias
    # (Python differed: it said N N N).
    ("nested enum renamed, short alias", rec("R", f("e", enum("Color"))),
     rec("R", f("e", enum("Colour", aliases=["Color"]))), "Y N N"),
    ("nested enum renamed without alias", rec("R", f("e", enum("Color"))),
     rec("R", f("e", enum("Colour"))), "N N N"),
    # [J] An enum with its own namespace resolves its alias there, not in the record's.
    ("enum in own namespace", rec("R", f("e", enum("Color", namespace="com.enums"))),
     rec("R", f("e", enum("Colour", namespace="com.enums", aliases=["Color"]))), "Y N N"),
    # [J] The same for fixed (Python differed: it said N N N).
    ("nested fixed renamed, short alias", rec("R", f("h", fixed("Hash"))),
     rec("R", f("h", fixed("Digest", aliases=["Hash"]))), "Y N N"),
    # [J] Through a union branch: the new optional field's record aliases the old one.
    ("renamed record inside union", rec("R", f("p", rec("Point", f("x", "int")))),
     rec("R", f("p", ["null", rec("Pt", f("x", "int"), aliases=["Point"])], default=None)),
     "Y N N"),
    # [CC] schema4: a field renamed with an alias is BACKWARD compatible.
    ("field renamed with alias", rec("myrecord", f("f1", "string"), namespace=None),
     rec("myrecord", f("f1_new", "string", aliases=["f1"]), namespace=None), "Y N N"),
    # [J] lookupWriterField: "b" (alias "a") matches both writer fields "a" and "b": an error in
    # Java, so incompatible (Python differed: it took "b", Y Y Y). FORWARD: old "a" has a default.
    ("field alias matches two fields", rec("R", f("a", "int", default=0), f("b", "int")),
     rec("R", f("b", "int", aliases=["a"])), "N Y N"),
]
# fmt: on
LEVELS = ("BACKWARD", "FORWARD", "FULL")


@pytest.mark.parametrize("level_index,level", list(enumerate(LEVELS)))
@pytest.mark.parametrize("case,old,new,verdicts", RENAMES, ids=[c[0] for c in RENAMES])
def test_renames_follow_avro_java(
    api: Http, case: str, old: dict, new: dict, verdicts: str, level_index: int, level: str
) -> None:
    expected = verdicts.split()[level_index] == "Y"
    subject = f"rename-{slug(case)}-{level.lower()}-value"
    assert api.put(f"/config/{subject}", {"compatibility": level}).status == 200
    assert api.register(subject, old).status == 200

    check = api.post(
        f"/compatibility/subjects/{subject}/versions/latest?verbose=true",
        {"schema": json.dumps(new)},
    )
    assert check.status == 200, check.body
    assert check.body["is_compatible"] is expected, check.body["messages"]

    registered = api.register(subject, new)
    assert registered.status == (200 if expected else 409), registered.body


def test_messages_name_the_mismatch(api: Http) -> None:
    subject = "rename-messages-value"
    api.put(f"/config/{subject}", {"compatibility": "BACKWARD"})
    api.register(subject, rec("Old", namespace=None))
    body = {"schema": json.dumps(rec("New", aliases=["Old"]))}
    check = api.post(f"/compatibility/subjects/{subject}/versions/latest?verbose=true", body)
    assert "NAME_MISMATCH" in " ".join(check.body["messages"])

    subject = "field-alias-messages-value"
    api.put(f"/config/{subject}", {"compatibility": "BACKWARD"})
    api.register(subject, rec("R", f("a", "int"), f("b", "int")))
    body = {"schema": json.dumps(rec("R", f("b", "int", aliases=["a"])))}
    check = api.post(f"/compatibility/subjects/{subject}/versions/latest?verbose=true", body)
    assert "matches multiple fields" in " ".join(check.body["messages"])


@pytest.mark.parametrize("level", ["BACKWARD", "BACKWARD_TRANSITIVE"])
def test_chained_renames_need_every_alias_transitively(api: Http, level: str) -> None:
    # [J] v3 aliases only v2's name: fine against the latest, not against v1 transitively.
    subject = f"rename-chain-{level.lower()}-value"
    api.put(f"/config/{subject}", {"compatibility": level})
    assert api.register(subject, rec("V1")).status == 200
    assert api.register(subject, rec("V2", aliases=["V1"])).status == 200

    only_v2 = api.register(subject, rec("V3", aliases=["V2"]))
    assert only_v2.status == (409 if level.endswith("TRANSITIVE") else 200), only_v2.body
    if level.endswith("TRANSITIVE"):
        both = api.register(subject, rec("V3", aliases=["V2", "V1"]))
        assert both.status == 200, both.body
        assert api.get(f"/subjects/{subject}/versions").body == [1, 2, 3]
