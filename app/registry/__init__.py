"""A small, faithful Confluent Schema Registry (Avro only) for StreamPulse's embedded stack.

``python -m app.registry --host 127.0.0.1 --port 8081 --data-dir DIR`` serves it;
``create_app(data_dir)`` builds the aiohttp app for in-process use. See README.md here.
"""

from __future__ import annotations

from .core import Registry
from .errors import ErrorCode, RegistryError
from .server import create_app, serve
from .types import CompatibilityLevel

__all__ = ["CompatibilityLevel", "ErrorCode", "Registry", "RegistryError", "create_app", "serve"]
