"""Register, check and list the catalog's value schemas against a Schema Registry.

Every topic of ``app.catalog`` (sources, then derived) has its value schema under
``<topic>-value`` (TopicNameStrategy). ``register_all`` registers them (idempotent: an unchanged
schema keeps its id and version); ``check_all`` asks the registry whether each local ``.avsc`` is
compatible with what is registered, without registering anything - the CI gate.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from app import catalog

from .client import RegistryHTTPError, SchemaRegistryHTTP

__all__ = [
    "DEFAULT_REGISTRY_URL",
    "CheckResult",
    "CheckStatus",
    "GovernanceError",
    "Registration",
    "SchemaSource",
    "SubjectListing",
    "catalog_sources",
    "check_all",
    "list_all",
    "register_all",
    "registry_url",
]

DEFAULT_REGISTRY_URL = "http://127.0.0.1:8081"


class GovernanceError(Exception):
    """A governance run could not do its job (missing files, failed registrations)."""


@dataclass(frozen=True)
class SchemaSource:
    """A catalog topic's value schema: where it lives locally and the subject it goes under."""

    topic: str
    subject: str
    schema_file: str
    path: Path

    def read(self) -> str:
        """The schema as compact JSON text (raises ``ValueError`` if it is not JSON)."""
        return json.dumps(json.loads(self.path.read_text()), separators=(",", ":"))


@dataclass(frozen=True)
class Registration:
    topic: str
    subject: str
    schema_file: str
    schema_id: int
    version: int


class CheckStatus(StrEnum):
    COMPATIBLE = "compatible"  # differs from the registered schema and may be registered
    UNCHANGED = "unchanged"  # already registered under the subject
    NEW = "new"  # the subject has no live versions yet
    SKIPPED = "skipped"  # the file is missing and skip_missing was given
    INCOMPATIBLE = "incompatible"
    INVALID = "invalid"  # not JSON, or the registry rejects it as a schema (42201)
    MISSING = "missing"  # the catalog names a file that does not exist


_PASSING = frozenset(
    {CheckStatus.COMPATIBLE, CheckStatus.UNCHANGED, CheckStatus.NEW, CheckStatus.SKIPPED}
)


@dataclass(frozen=True)
class CheckResult:
    topic: str
    subject: str
    schema_file: str
    status: CheckStatus
    detail: str
    messages: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.status in _PASSING


@dataclass(frozen=True)
class SubjectListing:
    subject: str
    compatibility: str
    versions: tuple[tuple[int, int], ...] = field(default=())  # (version, schema id)


def registry_url(url: str | None = None) -> str:
    """``url``, else ``$SCHEMA_REGISTRY_URL``, else http://127.0.0.1:8081."""
    return (url or os.environ.get("SCHEMA_REGISTRY_URL") or DEFAULT_REGISTRY_URL).rstrip("/")


def catalog_sources(
    schema_dir: Path | None = None, topics: Iterable[str] | None = None
) -> list[SchemaSource]:
    """The catalog's source then derived topics (optionally only ``topics``), in catalog order."""
    base = Path(schema_dir) if schema_dir is not None else catalog.SCHEMA_DIR
    specs = [*catalog.SOURCE_TOPICS.values(), *catalog.DERIVED_TOPICS.values()]
    if topics is not None:
        wanted = set(topics)
        unknown = wanted - {spec.name for spec in specs}
        if unknown:
            raise GovernanceError(f"not catalog topics: {', '.join(sorted(unknown))}")
        specs = [spec for spec in specs if spec.name in wanted]
    return [
        SchemaSource(
            spec.name, catalog.subject_for(spec.name), spec.schema_file, base / spec.schema_file
        )
        for spec in specs
    ]


def register_all(
    url: str | None = None,
    schema_dir: Path | None = None,
    *,
    topics: Iterable[str] | None = None,
    skip_missing: bool = False,
    timeout: float = 10.0,
) -> list[Registration]:
    """Register every catalog schema under ``<topic>-value``; returns ids and versions.

    Missing schema files fail the run before anything is registered, unless ``skip_missing``.
    Every present schema is attempted; if any is rejected (incompatible, invalid) a
    ``GovernanceError`` names each failed subject and why. Raises ``RegistryUnreachable``
    (a ``ConnectionError``) when the registry does not answer.
    """
    sources = catalog_sources(schema_dir, topics)
    missing = [source for source in sources if not source.path.is_file()]
    if missing and not skip_missing:
        raise GovernanceError(
            "schema files missing: " + ", ".join(f"{s.subject} ({s.path})" for s in missing)
        )
    client = SchemaRegistryHTTP(registry_url(url), timeout=timeout)
    registered: list[Registration] = []
    failures: list[str] = []
    for source in sources:
        if source in missing:
            continue
        try:
            text = source.read()
        except ValueError as exc:
            failures.append(f"{source.subject}: {source.schema_file} is not valid JSON: {exc}")
            continue
        try:
            schema_id = client.register(source.subject, text)
            version = int(client.lookup(source.subject, text)["version"])
        except RegistryHTTPError as exc:
            failures.append(f"{source.subject}: {exc}")
            continue
        registered.append(
            Registration(source.topic, source.subject, source.schema_file, schema_id, version)
        )
    if failures:
        raise GovernanceError("registration failed for: " + "; ".join(failures))
    return registered


def check_all(
    url: str | None = None,
    schema_dir: Path | None = None,
    *,
    topics: Iterable[str] | None = None,
    skip_missing: bool = False,
    timeout: float = 10.0,
) -> list[CheckResult]:
    """Check each local schema against the registry without registering it.

    A subject with no live versions is ``new`` and passes. The check uses the registry's
    ``POST /compatibility/subjects/{subject}/versions`` (every version the subject's level
    would check at registration, so transitive levels are honoured). Raises
    ``RegistryUnreachable`` when the registry does not answer.
    """
    client = SchemaRegistryHTTP(registry_url(url), timeout=timeout)
    return [
        _check_one(client, source, skip_missing) for source in catalog_sources(schema_dir, topics)
    ]


def _check_one(client: SchemaRegistryHTTP, source: SchemaSource, skip_missing: bool) -> CheckResult:
    def result(status: CheckStatus, detail: str, messages: Iterable[str] = ()) -> CheckResult:
        return CheckResult(
            source.topic, source.subject, source.schema_file, status, detail, tuple(messages)
        )

    if not source.path.is_file():
        if skip_missing:
            return result(CheckStatus.SKIPPED, f"{source.path} does not exist (skipped)")
        return result(CheckStatus.MISSING, f"{source.path} does not exist")
    try:
        text = source.read()
    except ValueError as exc:
        return result(CheckStatus.INVALID, f"{source.schema_file} is not valid JSON: {exc}")
    try:
        versions = client.versions(source.subject)
    except RegistryHTTPError as exc:
        if exc.error_code == 40401:
            return result(CheckStatus.NEW, "not registered yet; will be version 1")
        raise
    try:
        found = client.lookup(source.subject, text)
        return result(
            CheckStatus.UNCHANGED,
            f"already registered as version {found['version']} (id {found['id']})",
        )
    except RegistryHTTPError as exc:
        if exc.error_code == 42201:
            return result(CheckStatus.INVALID, exc.message)
        if exc.error_code not in (40401, 40403):
            raise
    level = client.compatibility_level(source.subject)
    try:
        answer = client.test_compatibility(source.subject, text)
    except RegistryHTTPError as exc:
        if exc.error_code == 42201:
            return result(CheckStatus.INVALID, exc.message)
        raise
    against = f"registered versions {versions}" if len(versions) > 1 else f"version {versions[0]}"
    if answer.get("is_compatible"):
        return result(
            CheckStatus.COMPATIBLE, f"compatible under {level} (checked against {against})"
        )
    return result(
        CheckStatus.INCOMPATIBLE,
        f"incompatible under {level} (checked against {against})",
        answer.get("messages") or (),
    )


def list_all(url: str | None = None, *, timeout: float = 10.0) -> list[SubjectListing]:
    """Every live subject with its compatibility level and (version, id) pairs."""
    client = SchemaRegistryHTTP(registry_url(url), timeout=timeout)
    listings = []
    for subject in client.subjects():
        versions = tuple(
            (int(v), int(client.version(subject, v)["id"])) for v in client.versions(subject)
        )
        listings.append(SubjectListing(subject, client.compatibility_level(subject), versions))
    return listings
