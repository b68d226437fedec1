"""Registry logic, free of HTTP: subjects, versions, global ids, deletes and compatibility.

Semantics follow Confluent Schema Registry (Avro only):

* Ids are global: the same canonical schema (see ``avro_schema``) under any subject has one id.
* Registering a schema already live under the subject returns its id and adds no version.
* Versions count up per subject and continue after soft deletes; a permanent delete of every
  version lets numbering restart at 1. A soft-deleted schema registered again gets a new version
  and its old id.
* Deletes are soft first; ``permanent`` only removes what was soft-deleted (40405/40407).
* Soft-deleted versions are invisible unless ``deleted=True`` and never take part in
  compatibility checks; a schema id stays readable while any version (even soft-deleted) uses it.
* Soft-deleting a whole subject also drops its subject-level compatibility setting.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .avro_schema import ParsedSchema, parse_schema
from .compatibility import PreviousSchema, check_compatibility, schemas_to_check
from .errors import RegistryError
from .store import Store, StoreView, VersionRow
from .types import (
    DEFAULT_COMPATIBILITY,
    LATEST,
    CompatibilityLevel,
    SchemaId,
    StoredSchema,
    Subject,
    SubjectVersion,
    Version,
    VersionSpec,
)

__all__ = ["Registry", "parse_compatibility_level"]


def parse_compatibility_level(value: Any) -> CompatibilityLevel:
    """A level from a request body (case-insensitive) or 42203."""
    if isinstance(value, str):
        try:
            return CompatibilityLevel(value.upper())
        except ValueError:
            pass
    raise RegistryError.invalid_compatibility_level()


class Registry:
    """The registry's operations over a ``Store``; raises ``RegistryError`` (Confluent's codes)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._parsed: dict[int, ParsedSchema] = {}  # schemas never change once stored

    # Reads.

    def subjects(self, deleted: bool = False) -> list[Subject]:
        return self._store.read.subjects(include_deleted=deleted)

    def versions(self, subject: str, deleted: bool = False) -> list[Version]:
        rows = self._store.read.versions(subject, include_deleted=deleted)
        if not rows:
            raise RegistryError.subject_not_found(subject)
        return [row.version for row in rows]

    def get_version(self, subject: str, spec: VersionSpec, deleted: bool = False) -> SubjectVersion:
        view = self._store.read
        row = _resolve_version(view, subject, spec, include_deleted=deleted)
        return self._subject_version(view, row)

    def lookup(
        self, subject: str, schema: Any, schema_type: Any = None, deleted: bool = False
    ) -> SubjectVersion:
        """The newest version of ``subject`` holding ``schema`` (40401, 40403)."""
        parsed = parse_schema(schema, schema_type)
        view = self._store.read
        rows = view.versions(subject, include_deleted=deleted)
        if not rows:
            raise RegistryError.subject_not_found(subject)
        schema_id = view.schema_id_by_canonical(parsed.canonical)
        matches = [row for row in rows if row.schema_id == schema_id]
        if schema_id is None or not matches:
            raise RegistryError.schema_not_found()
        return self._subject_version(view, matches[-1])

    def schema_by_id(self, schema_id: int) -> StoredSchema:
        view = self._store.read
        stored = view.schema_by_id(schema_id)
        if stored is None or not view.usages(schema_id, include_deleted=True):
            raise RegistryError.schema_not_found(str(schema_id))
        return stored

    def usages_of_schema(
        self, schema_id: int, deleted: bool = False
    ) -> list[tuple[Subject, Version]]:
        self.schema_by_id(schema_id)
        rows = self._store.read.usages(schema_id, include_deleted=deleted)
        return [(row.subject, row.version) for row in rows]

    def global_compatibility(self) -> CompatibilityLevel:
        return _global_level(self._store.read)

    def subject_compatibility(
        self, subject: str, default_to_global: bool = False
    ) -> CompatibilityLevel:
        level = self._store.read.subject_compatibility(subject)
        if level is not None:
            return CompatibilityLevel(level)
        if default_to_global:
            return self.global_compatibility()
        raise RegistryError.subject_compatibility_not_configured(subject)

    def check_compatibility(
        self, subject: str, schema: Any, schema_type: Any = None, spec: VersionSpec | None = None
    ) -> list[str]:
        """Messages explaining why ``schema`` is incompatible, or [] if it is compatible.

        ``spec=None`` checks against the versions a registration would (per the subject's
        level); ``latest`` or a number checks against that one live version only. A subject
        without live versions is compatible with anything when checked against ``latest``.
        """
        parsed = parse_schema(schema, schema_type)
        view = self._store.read
        level = _effective_level(view, subject)
        live = view.versions(subject, include_deleted=False)
        if spec is None:
            previous = schemas_to_check(level, self._previous(view, live))
        elif spec is LATEST:
            previous = self._previous(view, live[-1:])
        else:
            matches = [row for row in live if row.version == spec]
            if not matches:
                raise RegistryError.version_not_found(spec)
            previous = self._previous(view, matches)
        if level is CompatibilityLevel.NONE:
            return []
        return check_compatibility(level, parsed, previous)

    # Writes.

    async def register(self, subject: str, schema: Any, schema_type: Any = None) -> SchemaId:
        """Register ``schema`` under ``subject``; idempotent; 409 if the level forbids it."""
        parsed = parse_schema(schema, schema_type)

        def change(view: StoreView) -> SchemaId:
            rows = view.versions(subject, include_deleted=True)
            live = [row for row in rows if not row.deleted]
            schema_id = view.schema_id_by_canonical(parsed.canonical)
            if schema_id is not None and any(row.schema_id == schema_id for row in live):
                return schema_id
            level = _effective_level(view, subject)
            previous = schemas_to_check(level, self._previous(view, live))
            messages = check_compatibility(level, parsed, previous)
            if messages:
                raise RegistryError.incompatible(subject, messages)
            if schema_id is None:
                schema_id = view.insert_schema(parsed.canonical, parsed.text, "AVRO")
            next_version = (rows[-1].version + 1) if rows else 1
            view.insert_version(subject, next_version, schema_id)
            return schema_id

        return await self._store.write(change)

    async def delete_subject(self, subject: str, permanent: bool = False) -> list[Version]:
        def change(view: StoreView) -> list[Version]:
            rows = view.versions(subject, include_deleted=True)
            if not rows:
                raise RegistryError.subject_not_found(subject)
            live = [row.version for row in rows if not row.deleted]
            if permanent:
                if live:
                    raise RegistryError.subject_not_soft_deleted(subject)
                versions = [row.version for row in rows]
                view.remove_versions(subject, versions)
                view.set_subject_compatibility(subject, None)
                return versions
            if not live:
                raise RegistryError.subject_soft_deleted(subject)
            view.mark_deleted(subject, live)
            view.set_subject_compatibility(subject, None)
            return live

        return await self._store.write(change)

    async def delete_version(
        self, subject: str, spec: VersionSpec, permanent: bool = False
    ) -> Version:
        def change(view: StoreView) -> Version:
            rows = view.versions(subject, include_deleted=True)
            if not rows:
                raise RegistryError.subject_not_found(subject)
            if spec is LATEST:
                candidates = rows if permanent else [row for row in rows if not row.deleted]
            else:
                candidates = [row for row in rows if row.version == spec]
            if not candidates:
                raise RegistryError.version_not_found("latest" if spec is LATEST else spec)
            row = candidates[-1]
            if permanent:
                if not row.deleted:
                    raise RegistryError.version_not_soft_deleted(subject, row.version)
                view.remove_versions(subject, [row.version])
            else:
                if row.deleted:
                    raise RegistryError.version_soft_deleted(subject, row.version)
                view.mark_deleted(subject, [row.version])
            return row.version

        return await self._store.write(change)

    async def set_global_compatibility(self, level: CompatibilityLevel) -> CompatibilityLevel:
        await self._store.write(lambda view: view.set_global_compatibility(level.value))
        return level

    async def delete_global_compatibility(self) -> CompatibilityLevel:
        """Reset the global level to the default; returns the level it had."""

        def change(view: StoreView) -> CompatibilityLevel:
            previous = _global_level(view)
            view.set_global_compatibility(None)
            return previous

        return await self._store.write(change)

    async def set_subject_compatibility(
        self, subject: str, level: CompatibilityLevel
    ) -> CompatibilityLevel:
        await self._store.write(lambda view: view.set_subject_compatibility(subject, level.value))
        return level

    async def delete_subject_compatibility(self, subject: str) -> CompatibilityLevel:
        """Drop the subject's own level (40401 if it has none); returns the level it had."""

        def change(view: StoreView) -> CompatibilityLevel:
            previous = view.subject_compatibility(subject)
            if previous is None:
                raise RegistryError.subject_not_found(subject)
            view.set_subject_compatibility(subject, None)
            return CompatibilityLevel(previous)

        return await self._store.write(change)

    # Helpers.

    def _parsed_schema(self, view: StoreView, schema_id: SchemaId) -> ParsedSchema:
        parsed = self._parsed.get(schema_id)
        if parsed is None:
            stored = view.schema_by_id(schema_id)
            if stored is None:  # pragma: no cover - foreign key guarantees it
                raise RegistryError.schema_not_found(str(schema_id))
            # Stored schemas stay loadable even if today's name rules would reject them.
            parsed = parse_schema(stored.schema, stored.schema_type, validate_names=False)
            self._parsed[schema_id] = parsed
        return parsed

    def _previous(self, view: StoreView, rows: Sequence[VersionRow]) -> list[PreviousSchema]:
        return [
            PreviousSchema(row.version, self._parsed_schema(view, row.schema_id)) for row in rows
        ]

    def _subject_version(self, view: StoreView, row: VersionRow) -> SubjectVersion:
        stored = view.schema_by_id(row.schema_id)
        assert stored is not None
        return SubjectVersion(row.subject, row.version, stored, row.deleted)


def _global_level(view: StoreView) -> CompatibilityLevel:
    level = view.global_compatibility()
    return CompatibilityLevel(level) if level else DEFAULT_COMPATIBILITY


def _effective_level(view: StoreView, subject: str) -> CompatibilityLevel:
    level = view.subject_compatibility(subject)
    return CompatibilityLevel(level) if level else _global_level(view)


def _resolve_version(
    view: StoreView, subject: str, spec: VersionSpec, include_deleted: bool
) -> VersionRow:
    """The row ``spec`` names: 40401 if the subject has no versions at all, else 40402.

    Without ``include_deleted``, soft-deleted versions are invisible (``latest`` is the newest live
    version).
    """
    rows = view.versions(subject, include_deleted=True)
    if not rows:
        raise RegistryError.subject_not_found(subject)
    visible = rows if include_deleted else [row for row in rows if not row.deleted]
    if spec is LATEST:
        if not visible:
            raise RegistryError.version_not_found("latest")
        return visible[-1]
    for row in visible:
        if row.version == spec:
            return row
    raise RegistryError.version_not_found(spec)
