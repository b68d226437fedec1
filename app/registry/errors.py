"""Confluent Schema Registry error codes and the exception that carries one to the HTTP layer.

The codes, HTTP statuses and message texts follow Confluent's ``Errors`` class so clients that
branch on ``error_code`` (confluent-kafka, python-schema-registry-client) cannot tell the
difference.
"""

from __future__ import annotations

from enum import IntEnum

__all__ = ["ErrorCode", "RegistryError"]


class ErrorCode(IntEnum):
    """``error_code`` of error responses; the HTTP status is ``code // 100`` (or the code)."""

    BAD_REQUEST = 400
    NOT_FOUND = 404
    METHOD_NOT_ALLOWED = 405
    SCHEMA_INCOMPATIBLE = 409
    UNSUPPORTED_MEDIA_TYPE = 415
    SUBJECT_NOT_FOUND = 40401
    VERSION_NOT_FOUND = 40402
    SCHEMA_NOT_FOUND = 40403
    SUBJECT_SOFT_DELETED = 40404
    SUBJECT_NOT_SOFT_DELETED = 40405
    SCHEMAVERSION_SOFT_DELETED = 40406
    SCHEMAVERSION_NOT_SOFT_DELETED = 40407
    SUBJECT_LEVEL_COMPATIBILITY_NOT_CONFIGURED = 40408
    INVALID_SCHEMA = 42201
    INVALID_VERSION = 42202
    INVALID_COMPATIBILITY_LEVEL = 42203
    STORE_ERROR = 50001

    @property
    def http_status(self) -> int:
        return self.value if self.value < 1000 else self.value // 100


class RegistryError(Exception):
    """A failed registry operation: an error code and Confluent's message for it."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def http_status(self) -> int:
        return self.code.http_status

    # Constructors named after Confluent's Errors.* factories, with its message texts.

    @classmethod
    def subject_not_found(cls, subject: str) -> RegistryError:
        return cls(ErrorCode.SUBJECT_NOT_FOUND, f"Subject '{subject}' not found.")

    @classmethod
    def version_not_found(cls, version: int | str) -> RegistryError:
        return cls(ErrorCode.VERSION_NOT_FOUND, f"Version {version} not found.")

    @classmethod
    def schema_not_found(cls, detail: str | None = None) -> RegistryError:
        message = f"Schema {detail} not found" if detail else "Schema not found"
        return cls(ErrorCode.SCHEMA_NOT_FOUND, message)

    @classmethod
    def subject_soft_deleted(cls, subject: str) -> RegistryError:
        return cls(
            ErrorCode.SUBJECT_SOFT_DELETED,
            f"Subject '{subject}' was soft deleted.Set permanent=true to delete permanently",
        )

    @classmethod
    def subject_not_soft_deleted(cls, subject: str) -> RegistryError:
        return cls(
            ErrorCode.SUBJECT_NOT_SOFT_DELETED,
            f"Subject '{subject}' was not deleted first before being permanently deleted",
        )

    @classmethod
    def version_soft_deleted(cls, subject: str, version: int) -> RegistryError:
        return cls(
            ErrorCode.SCHEMAVERSION_SOFT_DELETED,
            f"Subject '{subject}' Version {version} was soft deleted."
            "Set permanent=true to delete permanently",
        )

    @classmethod
    def version_not_soft_deleted(cls, subject: str, version: int) -> RegistryError:
        return cls(
            ErrorCode.SCHEMAVERSION_NOT_SOFT_DELETED,
            f"Subject '{subject}' Version {version} was not deleted first before being "
            "permanently deleted",
        )

    @classmethod
    def subject_compatibility_not_configured(cls, subject: str) -> RegistryError:
        return cls(
            ErrorCode.SUBJECT_LEVEL_COMPATIBILITY_NOT_CONFIGURED,
            f"Subject '{subject}' does not have subject-level compatibility configured",
        )

    @classmethod
    def invalid_schema(cls, detail: str) -> RegistryError:
        return cls(ErrorCode.INVALID_SCHEMA, f"Invalid schema: {detail}")

    @classmethod
    def invalid_version(cls, version: str) -> RegistryError:
        return cls(
            ErrorCode.INVALID_VERSION,
            f"The specified version '{version}' is not a valid version id. Allowed values are "
            'between [1, 2^31-1] and the string "latest"',
        )

    @classmethod
    def invalid_compatibility_level(cls) -> RegistryError:
        return cls(
            ErrorCode.INVALID_COMPATIBILITY_LEVEL,
            "Invalid compatibility level. Valid values are none, backward, forward, full, "
            "backward_transitive, forward_transitive, and full_transitive",
        )

    @classmethod
    def incompatible(cls, subject: str, messages: list[str]) -> RegistryError:
        details = "[" + ", ".join(messages) + "]"
        return cls(
            ErrorCode.SCHEMA_INCOMPATIBLE,
            "Schema being registered is incompatible with an earlier schema for subject "
            f'"{subject}", details: {details}',
        )

    @classmethod
    def store_error(cls, detail: str) -> RegistryError:
        return cls(ErrorCode.STORE_ERROR, f"Error in the backend datastore: {detail}")
