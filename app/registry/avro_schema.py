"""Parse, validate and canonicalise Avro schemas as the registry receives them.

Identity: two registrations are "the same schema" when their *canonical form* is equal. Ours is the
schema as Apache Avro parsed it, re-serialised with sorted object keys and no whitespace (what
Confluent does with Avro's ``Schema.toString()``): formatting and key order do not matter, but
``doc``, ``default``, ``aliases`` and custom properties do. Avro's *Parsing Canonical Form*
(``Schema.canonical_form``) is deliberately not used for identity: it drops defaults and
aliases, which change schema resolution, so two schemas that resolve differently would share an id.

Names follow Avro Java, the parser Confluent uses, not Python's ``avro`` (see ``_validate_names``).
"""

from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass
from typing import Any

import avro.errors
import avro.schema
import fastavro

from .errors import RegistryError

__all__ = ["SUPPORTED_SCHEMA_TYPES", "ParsedSchema", "parse_schema"]

SUPPORTED_SCHEMA_TYPES = ("AVRO",)

_INT_RANGE = (-(2**31), 2**31 - 1)
_LONG_RANGE = (-(2**63), 2**63 - 1)


@dataclass(frozen=True)
class ParsedSchema:
    """A validated Avro schema: the text as given, its canonical form and Avro's parsed object."""

    text: str
    canonical: str
    avro: avro.schema.Schema


def parse_schema(
    text: Any, schema_type: Any = None, *, validate_names: bool = True
) -> ParsedSchema:
    """Validate a registration's ``schema``/``schemaType`` or raise ``RegistryError`` (42201).

    ``validate_names=False`` is for schemas the registry already stored: they were valid under the
    rules of their day and must stay loadable (compatibility checks read them back).
    """
    if schema_type is not None and schema_type != "AVRO":
        if schema_type in ("PROTOBUF", "JSON"):
            raise RegistryError.invalid_schema(
                f"schemaType {schema_type} is not supported: this registry supports only AVRO"
            )
        raise RegistryError.invalid_schema(f"unknown schemaType {schema_type!r}")
    if not isinstance(text, str) or not text.strip():
        raise RegistryError.invalid_schema("Empty schema")
    try:
        loaded = json.loads(text)
    except ValueError as exc:
        raise RegistryError.invalid_schema(f"not valid JSON: {exc}") from exc
    if validate_names:
        _validate_names(loaded, None)
    try:
        # Python's name check is ASCII-only where Java allows Unicode letters: ours replaces it.
        parsed = avro.schema.parse(text, validate_names=False)
    except (avro.errors.AvroException, ValueError, TypeError, KeyError) as exc:
        raise RegistryError.invalid_schema(str(exc)) from exc
    try:
        # fastavro is the codec our services use: what it cannot load must not be registered.
        fastavro.parse_schema(loaded, _write_hint=False)
    except Exception as exc:
        raise RegistryError.invalid_schema(str(exc)) from exc
    _validate_defaults(parsed, "")
    canonical = json.dumps(parsed.to_json(), sort_keys=True, separators=(",", ":"))
    return ParsedSchema(text=text, canonical=canonical, avro=parsed)


def _validate_defaults(schema: avro.schema.Schema, path: str, seen: set[int] | None = None) -> None:
    """Reject field defaults that do not match the field's type (Avro Java's validateDefaults).

    Per the Avro specification a union field's default must match the union's *first* branch.
    """
    seen = set() if seen is None else seen
    if id(schema) in seen:
        return
    seen.add(id(schema))
    if isinstance(schema, avro.schema.RecordSchema):
        for field in schema.fields:
            field_path = f"{path}.{field.name}" if path else field.name
            if field.has_default and not _default_matches(field.type, field.default):
                raise RegistryError.invalid_schema(
                    f"Invalid default for field {field_path}: {json.dumps(field.default)} "
                    f"not a {json.dumps(field.type.to_json())}"
                )
            _validate_defaults(field.type, field_path, seen)
    elif isinstance(schema, avro.schema.ArraySchema):
        _validate_defaults(schema.items, path, seen)
    elif isinstance(schema, avro.schema.MapSchema):
        _validate_defaults(schema.values, path, seen)
    elif isinstance(schema, avro.schema.UnionSchema):
        for branch in schema.schemas:
            _validate_defaults(branch, path, seen)


def _default_matches(schema: avro.schema.Schema, value: Any) -> bool:
    kind = schema.type
    if kind == "null":
        return value is None
    if kind == "boolean":
        return isinstance(value, bool)
    if kind in ("int", "long"):
        low, high = _INT_RANGE if kind == "int" else _LONG_RANGE
        return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high
    if kind in ("float", "double"):
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind in ("string", "bytes"):
        return isinstance(value, str)
    if kind == "fixed":
        return isinstance(value, str) and len(value) == schema.size
    if kind == "enum":
        return isinstance(value, str) and value in schema.symbols
    if kind == "array":
        return isinstance(value, list) and all(_default_matches(schema.items, v) for v in value)
    if kind == "map":
        return isinstance(value, dict) and all(
            _default_matches(schema.values, v) for v in value.values()
        )
    if kind == "union":
        return bool(schema.schemas) and _default_matches(schema.schemas[0], value)
    if kind in ("record", "error"):
        if not isinstance(value, dict):
            return False
        for field in schema.fields:
            if field.name in value:
                if not _default_matches(field.type, value[field.name]):
                    return False
            elif not field.has_default:
                return False
        return True
    return True


# Avro Java's ``NameValidator.UTF_VALIDATOR`` (the default of ``Schema.Parser``, which Confluent's
# ``AvroSchema`` uses): the first character is a letter or ``_``, the others letters, digits or
# ``_``. Java tests UTF-16 ``char``s with ``Character.isLetter``/``isLetterOrDigit``, so a character
# outside the BMP (a surrogate pair) is neither, and "digit" means category Nd only.
_LETTERS = frozenset({"Lu", "Ll", "Lt", "Lm", "Lo"})
_NAMED_TYPES = ("record", "error", "enum", "fixed")


def _name_error(name: str) -> str | None:
    """Avro Java's message for an invalid name, or None if ``UTF_VALIDATOR`` accepts it."""

    def allowed(char: str, initial: bool) -> bool:
        if char == "_":
            return True
        if ord(char) > 0xFFFF:
            return False
        category = unicodedata.category(char)
        return category in _LETTERS or (not initial and category == "Nd")

    if not name:
        return "Empty name"
    if not allowed(name[0], initial=True):
        return f"Illegal initial character: {name}"
    if not all(allowed(char, initial=False) for char in name[1:]):
        return f"Illegal character in: {name}"
    return None


def _require_name(name: Any, what: str, owner: str) -> None:
    if isinstance(name, str) and (error := _name_error(name)) is not None:
        raise RegistryError.invalid_schema(f'{what} "{name}" of {owner} is invalid: {error}')


def _validate_names(node: Any, namespace: str | None) -> None:
    """Apply Avro Java's name rules to the schema JSON, walking it as Java's parser does.

    Checked, as Avro Java 1.12 does: the name of each record, enum and fixed (``Schema.Name``),
    every part of its namespace (``ParseContext.put``), the last part of each of its aliases
    (``addAlias`` builds a ``Name``), field names (``Schema.Field``) and enum symbols
    (``EnumSchema``). Field aliases are not checked, as in Java. A name with a dot carries its own
    namespace; otherwise ``namespace`` applies if given (``""`` is the null namespace), else the
    enclosing type's.
    Malformed JSON (a missing name, a non-string) is left to the Avro parser to reject.
    """
    if isinstance(node, list):
        for branch in node:
            _validate_names(branch, namespace)
        return
    if not isinstance(node, dict):
        return
    kind = node.get("type")
    if kind in ("array", "map"):
        _validate_names(node.get("items" if kind == "array" else "values"), namespace)
        return
    name = node.get("name")
    if kind not in _NAMED_TYPES or not isinstance(name, str):
        return
    if "." in name:
        space, _, short = name.rpartition(".")
    else:
        explicit = node.get("namespace")
        space, short = (explicit if isinstance(explicit, str) else namespace), name
    space = space or None
    full = f"{space}.{short}" if space else short
    owner = f"{kind} {full}"
    _require_name(short, "name", owner)
    for part in space.split(".") if space else ():
        _require_name(part, "namespace part", owner)
    aliases = node.get("aliases")
    for alias in aliases if isinstance(aliases, list) else ():
        if isinstance(alias, str):
            _require_name(alias.rpartition(".")[2], "alias", owner)
    items = node.get("fields" if kind in ("record", "error") else "symbols")
    for item in items if isinstance(items, list) else ():
        if kind == "enum":
            _require_name(item, "symbol", owner)
        elif isinstance(item, dict):
            _require_name(item.get("name"), "field name", owner)
            _validate_names(item.get("type"), space)
