"""What registry values are: ids, subjects, versions, compatibility levels and stored records."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import NewType

__all__ = [
    "DEFAULT_COMPATIBILITY",
    "LATEST",
    "MAX_VERSION",
    "CompatibilityLevel",
    "SchemaId",
    "StoredSchema",
    "Subject",
    "SubjectVersion",
    "Version",
    "VersionSpec",
]

SchemaId = NewType("SchemaId", int)
Subject = NewType("Subject", str)
Version = NewType("Version", int)

MAX_VERSION = 2**31 - 1


class _Latest:
    """The version spec ``latest`` (also written ``-1``)."""

    def __repr__(self) -> str:
        return "latest"


LATEST = _Latest()
VersionSpec = Version | _Latest


class CompatibilityLevel(StrEnum):
    """Confluent's compatibility levels."""

    BACKWARD = "BACKWARD"
    BACKWARD_TRANSITIVE = "BACKWARD_TRANSITIVE"
    FORWARD = "FORWARD"
    FORWARD_TRANSITIVE = "FORWARD_TRANSITIVE"
    FULL = "FULL"
    FULL_TRANSITIVE = "FULL_TRANSITIVE"
    NONE = "NONE"

    @property
    def transitive(self) -> bool:
        return self.value.endswith("_TRANSITIVE")

    @property
    def checks_backward(self) -> bool:
        """The new schema must read data written with the old one(s)."""
        return self.value.startswith(("BACKWARD", "FULL"))

    @property
    def checks_forward(self) -> bool:
        """The old schema(s) must read data written with the new one."""
        return self.value.startswith(("FORWARD", "FULL"))


DEFAULT_COMPATIBILITY = CompatibilityLevel.BACKWARD


@dataclass(frozen=True)
class StoredSchema:
    """A schema as stored: its global id, the text as first registered, and its type."""

    id: SchemaId
    schema: str
    schema_type: str = "AVRO"


@dataclass(frozen=True)
class SubjectVersion:
    """One version of a subject and the schema it names."""

    subject: Subject
    version: Version
    schema: StoredSchema
    deleted: bool = False

    def to_json(self) -> dict[str, object]:
        """Confluent's wire form (schemaType is omitted for Avro, as Confluent does)."""
        body: dict[str, object] = {
            "subject": self.subject,
            "version": self.version,
            "id": self.schema.id,
            "schema": self.schema.schema,
        }
        if self.schema.schema_type != "AVRO":
            body["schemaType"] = self.schema.schema_type
        return body
