"""Schema governance: register, check and list the topic catalog's Avro schemas.

``python -m app.schemas {register,check,list}`` on the command line; ``register_all``,
``check_all`` and ``list_all`` for code (blocking HTTP; call them via ``asyncio.to_thread`` from a
running event loop).
"""

from __future__ import annotations

from .client import RegistryHTTPError, RegistryUnreachable, SchemaRegistryHTTP
from .governance import (
    DEFAULT_REGISTRY_URL,
    CheckResult,
    CheckStatus,
    GovernanceError,
    Registration,
    SchemaSource,
    SubjectListing,
    catalog_sources,
    check_all,
    list_all,
    register_all,
    registry_url,
)

__all__ = [
    "DEFAULT_REGISTRY_URL",
    "CheckResult",
    "CheckStatus",
    "GovernanceError",
    "Registration",
    "RegistryHTTPError",
    "RegistryUnreachable",
    "SchemaRegistryHTTP",
    "SchemaSource",
    "SubjectListing",
    "catalog_sources",
    "check_all",
    "list_all",
    "register_all",
    "registry_url",
]
