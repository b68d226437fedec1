"""Playback telemetry (seed 002): ``acme-telemetry`` into the three telemetry tables."""

from __future__ import annotations

from app.engine.domain import Domain
from app.validation.telemetry import validate
from models.telemetry import TELEMETRY_AGGREGATES

DOMAIN = Domain("acme-telemetry", validate, TELEMETRY_AGGREGATES)
