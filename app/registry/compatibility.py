"""Compatibility levels applied with Apache Avro's own schema-resolution checker.

The verdict for one (reader, writer) pair comes from ``avro.compatibility.
ReaderWriterCompatibilityChecker``; this module only decides which pairs a level checks, as
Confluent does:

* ``BACKWARD``: the new schema reads data written with the old one (reader=new, writer=old).
* ``FORWARD``: the old schema reads data written with the new one (reader=old, writer=new).
* ``FULL``: both. ``NONE``: nothing.
* Non-transitive levels compare with the latest live (non-deleted) version only; ``*_TRANSITIVE``
  levels with every live version.

Where Avro's rules differ from seed 004's prose ("Schema Evolution", section 5), the registry
follows Avro/Confluent, because a client must not be able to tell it from Confluent's:

* *Remove field* (seed: breaking). Under ``BACKWARD`` Avro allows it: the new reader skips the
  writer's extra field. It is rejected under ``FORWARD``/``FULL`` only when the removed field has no
  default (old readers then cannot fill it in).
* *Change field type* (seed: breaking). Avro allows the promotions int->long/float/double,
  long->float/double, float->double and string<->bytes in the reader, so widening int->long is
  ``BACKWARD``-compatible (and not ``FORWARD``-compatible).
* *Rename field* (seed: breaking). Rejected, unless the new field lists the old name in
  ``aliases``: then ``BACKWARD`` allows it (Avro resolves reader aliases).
* *Add enum value* (seed: allowed) is ``BACKWARD``-compatible but not ``FORWARD``-compatible (an
  old reader meets an unknown symbol) unless the old enum declares a ``default`` symbol.
* *Make required -> optional* (seed: allowed) is ``BACKWARD``-compatible but not
  ``FORWARD``-compatible (an old reader of ``string`` cannot read a written ``null``).
* *Add optional field with default* (seed: allowed) is compatible under every level; adding a field
  *without* a default, which the seed does not mention, is rejected under ``BACKWARD``.

Where Python's checker differs from Avro Java's ``SchemaCompatibility`` (the one Confluent runs),
``_JavaChecker`` does what Java does:

* *Renamed record/enum/fixed.* Names match when the short names are equal (namespaces are ignored)
  or the writer's full name is one of the reader's aliases. Java puts an alias without a dot in the
  reader's namespace (``NamedSchema.addAlias``); an alias in the null namespace (``".Old"``) on a
  namespaced reader is listed as ``".Old"`` (``getAliases``) and so matches nothing. Python
  compares the aliases as written: ``"aliases": ["Old"]`` on ``com.x.New`` did not match
  ``com.x.Old`` and did match a namespace-less ``Old``.
* *Field aliases.* A reader field whose name and aliases match more than one writer field is an
  error in Java (``lookupWriterField``), so Confluent reports the pair incompatible; Python took
  the field of the same name.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import avro.errors
import avro.schema
from avro.compatibility import (
    CompatibleResult,
    ReaderWriterCompatibilityChecker,
    SchemaCompatibilityResult,
    SchemaCompatibilityType,
    SchemaIncompatibilityType,
    check_fixed_size,
    check_reader_enum_contains_writer_enum,
    incompatible,
    merge,
)

from .avro_schema import ParsedSchema
from .types import CompatibilityLevel, Version

__all__ = ["PreviousSchema", "check_compatibility", "check_pair", "schemas_to_check"]

# Confluent's descriptions, with {reader}/{writer} replaced by "new"/"old" per direction.
_DESCRIPTIONS = {
    SchemaIncompatibilityType.name_mismatch: "The name of the schema has changed (path '{path}')",
    SchemaIncompatibilityType.fixed_size_mismatch: (
        "The size of FIXED type field at path '{path}' in the {reader} schema does not match "
        "with the {writer} schema"
    ),
    SchemaIncompatibilityType.missing_enum_symbols: (
        "The {reader} schema is missing enum symbols '{info}' at path '{path}' in the "
        "{writer} schema"
    ),
    SchemaIncompatibilityType.reader_field_missing_default_value: (
        "The field '{info}' at path '{path}' in the {reader} schema has no default value and is "
        "missing in the {writer} schema"
    ),
    SchemaIncompatibilityType.type_mismatch: (
        "The type (path '{path}') of a field in the {reader} schema does not match with the "
        "{writer} schema"
    ),
    SchemaIncompatibilityType.missing_union_branch: (
        "The {reader} schema is missing a type inside a union field at path '{path}' in the "
        "{writer} schema"
    ),
}


@dataclass(frozen=True)
class PreviousSchema:
    """A registered version the candidate is checked against."""

    version: Version
    schema: ParsedSchema


def schemas_to_check(
    level: CompatibilityLevel, live_versions: Sequence[PreviousSchema]
) -> list[PreviousSchema]:
    """The versions a registration under ``level`` is checked against (oldest first)."""
    if level is CompatibilityLevel.NONE or not live_versions:
        return []
    if level.transitive:
        return list(live_versions)
    return [live_versions[-1]]


def check_pair(reader: ParsedSchema, writer: ParsedSchema, *, reader_is_new: bool) -> list[str]:
    """Avro's verdict on ``reader`` reading ``writer``'s data: [] if compatible, else messages."""
    try:
        result = _JavaChecker().get_compatibility(reader.avro, writer.avro)
    except (avro.errors.AvroException, RecursionError) as exc:
        return [f"{{errorType:'UNKNOWN', description:'{exc}'}}"]
    if result.compatibility is not SchemaCompatibilityType.incompatible:
        return []
    roles = (
        {"reader": "new", "writer": "old"} if reader_is_new else {"reader": "old", "writer": "new"}
    )
    path = ", ".join(sorted(result.locations))
    info = ", ".join(sorted(result.messages))
    messages = []
    for kind in dict.fromkeys(result.incompatibilities):  # ordered, de-duplicated
        description = _DESCRIPTIONS.get(kind, "{info}").format(path=path, info=info, **roles)
        messages.append(
            f"{{errorType:'{kind.name.upper()}', description:'{description}', "
            f"additionalInfo:'{info}'}}"
        )
    return messages


def check_compatibility(
    level: CompatibilityLevel,
    candidate: ParsedSchema,
    previous: Sequence[PreviousSchema],
) -> list[str]:
    """Check ``candidate`` against each of ``previous`` in the directions ``level`` asks for.

    Returns [] when compatible, otherwise Confluent-style messages naming the old version.
    """
    messages: list[str] = []
    for old in previous:
        found: list[str] = []
        if level.checks_backward:
            found += check_pair(candidate, old.schema, reader_is_new=True)
        if level.checks_forward:
            found += check_pair(old.schema, candidate, reader_is_new=False)
        if found:
            messages += found
            messages.append(f"{{oldSchemaVersion: {old.version}}}")
            messages.append(f"{{oldSchema: '{_compact(old.schema.text)}'}}")
    if messages:
        messages.append(f"{{compatibility: '{level.value}'}}")
    return messages


def _compact(text: str) -> str:
    try:
        return json.dumps(json.loads(text), separators=(",", ":"))
    except ValueError:
        return text


class _JavaChecker(ReaderWriterCompatibilityChecker):
    """Python's checker with Avro Java's name and alias matching for records, enums and fixed."""

    def calculate_compatibility(
        self, reader: avro.schema.Schema, writer: avro.schema.Schema, location: list[str]
    ) -> SchemaCompatibilityResult:
        if reader.type != writer.type or reader.type not in ("record", "error", "enum", "fixed"):
            return super().calculate_compatibility(reader, writer, location)
        result = CompatibleResult
        if not _schema_name_equals(reader, writer):
            result = incompatible(
                SchemaIncompatibilityType.name_mismatch,
                f"expected: {writer.fullname}",
                [*location, "name"],
            )
        if reader.type == "fixed":
            rest = check_fixed_size(reader, writer, location)
        elif reader.type == "enum":
            rest = check_reader_enum_contains_writer_enum(reader, writer, location)
        else:
            rest = self.check_reader_writer_record_fields(reader, writer, location)
        return merge(result, rest)

    def check_reader_writer_record_fields(
        self,
        reader: avro.schema.RecordSchema,
        writer: avro.schema.RecordSchema,
        location: list[str],
    ) -> SchemaCompatibilityResult:
        result = CompatibleResult
        for index, reader_field in enumerate(reader.fields):
            where = [*location, "fields", str(index)]
            writer_field = _lookup_writer_field(writer, reader_field)
            if writer_field is not None:
                found = self.get_compatibility(reader_field.type, writer_field.type, "type", where)
            elif reader_field.has_default:
                continue
            elif reader_field.type.type == "enum" and reader_field.type.props.get("default"):
                found = self.get_compatibility(reader_field.type, writer, "type", where)
            else:
                found = incompatible(
                    SchemaIncompatibilityType.reader_field_missing_default_value,
                    reader_field.name,
                    where,
                )
            result = merge(result, found)
        return result


def _reader_aliases(schema: avro.schema.NamedSchema) -> set[str]:
    """Avro Java's ``Schema.getAliases()`` for ``schema``'s declared aliases."""
    space = schema.namespace or None
    aliases = schema.props.get("aliases")
    result = set()
    for alias in aliases if isinstance(aliases, list) else ():
        if not isinstance(alias, str):
            continue
        alias_space, _, short = alias.rpartition(".")
        alias_space = (alias_space if "." in alias else space) or None
        if alias_space is None and space is not None:
            result.add("." + short)  # Java's spelling of "null namespace": matches no full name
        else:
            result.add(f"{alias_space}.{short}" if alias_space else short)
    return result


def _schema_name_equals(reader: avro.schema.NamedSchema, writer: avro.schema.NamedSchema) -> bool:
    """Avro Java's ``SchemaCompatibility.schemaNameEquals``."""
    return reader.name == writer.name or writer.fullname in _reader_aliases(reader)


def _lookup_writer_field(
    writer: avro.schema.RecordSchema, reader_field: avro.schema.Field
) -> avro.schema.Field | None:
    """Avro Java's ``SchemaCompatibility.lookupWriterField``: more than one match is an error."""
    aliases = reader_field.props.get("aliases")
    names = [reader_field.name, *dict.fromkeys(aliases if isinstance(aliases, list) else ())]
    matches = [writer.fields_dict[name] for name in names if name in writer.fields_dict]
    if len(matches) > 1:
        raise avro.errors.AvroRuntimeException(
            f"Reader record field {reader_field.name} matches multiple fields in writer record "
            f"schema {writer.fullname}"
        )
    return matches[0] if matches else None
