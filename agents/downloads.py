"""Content downloads (seed 000): ``content-downloads`` (v1 and v2 writers) into
``agg.downloads.errors``."""

from __future__ import annotations

from app.engine.domain import Domain
from app.validation.downloads import validate
from models.downloads import DOWNLOADS_AGGREGATES

DOMAIN = Domain("content-downloads", validate, DOWNLOADS_AGGREGATES)
