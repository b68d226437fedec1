"""Content download events (seed 000) for topic ``content-downloads``, in schema versions 1 and 2.

Outcomes follow the seed's value sets (success, failed with an error code and message,
cancelled) at rates that depend on the connection (mobile networks drop more downloads) and
the region (far from the origin or behind a congested CDN edge), about 85% / 10% / 5% overall;
speeds depend on the connection, durations on size and speed.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

from app.catalog import SOURCE_TOPICS
from app.tools.simulator.population import EventFactory, Population, User, changed, rng_uuid

__all__ = [
    "CATALOG",
    "ERROR_CODES",
    "RULE_BREAKERS",
    "V2_SCHEMA_FILE",
    "ContentDownloadFactory",
    "ContentDownloadV2Factory",
    "ContentItem",
    "factories",
    "failure_rate",
]

_TOPIC = SOURCE_TOPICS["content-downloads"]
V2_SCHEMA_FILE = "downloads/ContentDownloadEvent.v2.avsc"


@dataclass(frozen=True)
class ContentItem:
    """A catalog entry; ``rating`` is the v2 content rating (None where ratings do not apply)."""

    content_id: str
    title: str
    type: str
    category: str
    size_mb: int
    price: float
    rating: str | None


# Ordered by popularity: earlier items are downloaded more often.
CATALOG: tuple[ContentItem, ...] = (
    ContentItem("mov_avengers_2", "Avengers: Endgame 2", "movie", "action", 4200, 19.99, "PG-13"),
    ContentItem("tv_stranger_s5e1", "Stranger Things 5x1", "tv_show", "drama", 1100, 2.99, "PG-13"),
    ContentItem("app_photo_pro", "Photo Studio Pro", "app", "productivity", 850, 4.99, None),
    ContentItem("mus_midnights", "Midnights", "music", "pop", 95, 11.99, None),
    ContentItem("mov_inside_out_2", "Inside Out 2", "movie", "animation", 3600, 14.99, "PG"),
    ContentItem("bk_dune", "Dune", "book", "sci-fi", 6, 9.99, None),
    ContentItem("tv_the_bear_s3e1", "The Bear S3E1", "tv_show", "comedy", 750, 2.99, "R"),
    ContentItem("app_puzzle_quest", "Puzzle Quest", "app", "games", 2300, 0.0, None),
    ContentItem("mov_oppenheimer", "Oppenheimer", "movie", "drama", 5800, 17.99, "R"),
    ContentItem("mus_lofi_beats", "Lo-Fi Study Beats", "music", "electronic", 140, 7.99, None),
    ContentItem("mov_toy_story_4", "Toy Story 4", "movie", "animation", 3300, 9.99, "G"),
    ContentItem("tv_bluey_s3e5", "Bluey S3E5", "tv_show", "kids", 180, 1.99, "G"),
    ContentItem("bk_atomic_habits", "Atomic Habits", "book", "self-help", 4, 13.99, None),
    ContentItem("app_fitness_coach", "Fitness Coach", "app", "health", 320, 0.0, None),
    ContentItem("mov_barbie", "Barbie", "movie", "comedy", 4100, 14.99, "PG-13"),
    ContentItem("mus_kind_of_blue", "Kind of Blue", "music", "jazz", 110, 9.99, None),
    ContentItem("tv_the_crown_s6e2", "The Crown S6E2", "tv_show", "drama", 1400, 2.99, "PG"),
    ContentItem("mov_john_wick_4", "John Wick: Chapter 4", "movie", "action", 5200, 19.99, "R"),
    ContentItem("bk_project_hail_mary", "Project Hail Mary", "book", "sci-fi", 5, 12.99, None),
    ContentItem("app_city_builder", "City Builder 3D", "app", "games", 3900, 6.99, None),
    ContentItem("mov_paddington_2", "Paddington 2", "movie", "family", 3000, 7.99, "PG"),
    ContentItem("mus_rumours", "Rumours", "music", "rock", 120, 8.99, None),
    ContentItem("tv_planet_earth_e1", "Planet Earth III", "tv_show", "nature", 1600, 1.99, "G"),
    ContentItem("bk_the_hobbit", "The Hobbit", "book", "fantasy", 7, 6.99, None),
)
_CATALOG_WEIGHTS = [1.0 / (rank + 1) ** 0.8 for rank in range(len(CATALOG))]

# error_code -> (relative frequency, error_message)
ERROR_CODES: dict[str, tuple[float, str]] = {
    "cdn_timeout": (35, "CDN edge did not respond within 30s"),
    "network_error": (30, "Connection reset by peer"),
    "storage_full": (12, "Not enough free storage on device"),
    "drm_license_error": (8, "DRM license could not be acquired"),
    "checksum_mismatch": (8, "Downloaded file failed integrity check"),
    "server_error": (7, "Origin server returned HTTP 503"),
}
_ERROR_NAMES = tuple(ERROR_CODES)
#: Some clients report a cancellation with a code; a cancelled download's code is optional.
CANCEL_CODE, CANCEL_CODE_SHARE = "user_cancelled", 0.3
_ERROR_WEIGHTS = tuple(weight for weight, _ in ERROR_CODES.values())

# Median throughput per connection type in Mbps (log-normal around it).
_MEDIAN_SPEED_MBPS = {"wifi": 45.0, "5g": 90.0, "4g": 18.0}
#: (failure, cancellation) probability per connection type
_OUTCOME_RATES = {"wifi": (0.07, 0.04), "5g": (0.11, 0.05), "4g": (0.20, 0.08)}
#: failure-rate multiplier per region (CDN distance and congestion); 1.0 when not listed
REGION_FAILURE_FACTOR = {
    "APAC-Sydney": 1.8, "APAC-Singapore": 1.4, "APAC-Tokyo": 0.7, "US-Texas": 1.3,
    "EU-London": 0.8, "EU-Berlin": 0.75,
}  # fmt: skip


def failure_rate(region: str, connection: str) -> float:
    """Probability that a download in ``region`` over ``connection`` fails."""
    return _OUTCOME_RATES[connection][0] * REGION_FAILURE_FACTOR.get(region, 1.0)


def _outcome(rng: random.Random, region: str, connection: str) -> str:
    failed = failure_rate(region, connection)
    cancelled = _OUTCOME_RATES[connection][1]
    draw = rng.random()
    return "failed" if draw < failed else "cancelled" if draw < failed + cancelled else "success"


def _connection(rng: random.Random, user: User) -> str:
    """Usually the user's home connection; phones sometimes download on the go."""
    if user.connection_type != "wifi" or rng.random() < 0.9:
        return user.connection_type
    return rng.choice(("5g", "4g"))


class ContentDownloadFactory:
    """Version 1 ``ContentDownloadEvent`` values, keyed by ``user_id``."""

    topic: str = _TOPIC.name
    schema_file: str = _TOPIC.schema_file

    def __init__(self, population: Population) -> None:
        self.population = population

    def make(self, rng: random.Random, now_ms: int) -> tuple[str, dict[str, Any]]:
        user = self.population.pick(rng)
        item = rng.choices(CATALOG, weights=_CATALOG_WEIGHTS)[0]
        connection = _connection(rng, user)
        status = _outcome(rng, user.region, connection)
        speed = rng.lognormvariate(math.log(_MEDIAN_SPEED_MBPS[connection]), 0.5)
        full_seconds = item.size_mb * 8 / speed
        error_code: str | None = None
        error_message: str | None = None
        if status == "success":
            duration = full_seconds
        elif status == "failed":
            error_code = rng.choices(_ERROR_NAMES, weights=_ERROR_WEIGHTS)[0]
            error_message = ERROR_CODES[error_code][1]
            speed *= rng.uniform(0.1, 0.6)  # failing transfers crawl before they give up
            if error_code == "cdn_timeout":
                duration = rng.uniform(30.0, 35.0)  # the 30 s edge timeout plus retries
            else:
                duration = item.size_mb * 8 / speed * rng.uniform(0.05, 0.9)
        else:
            duration = full_seconds * rng.uniform(0.02, 0.7)
            if rng.random() < CANCEL_CODE_SHARE:  # optional when cancelled (contract)
                error_code, error_message = CANCEL_CODE, "Cancelled by the user"
        value: dict[str, Any] = {
            "event_id": rng_uuid(rng),
            "timestamp": now_ms,
            "user_id": user.user_id,
            "content": {
                "content_id": item.content_id,
                "title": item.title,
                "type": item.type,
                "category": item.category,
                "size_mb": item.size_mb,
                "price": item.price,
            },
            "download": {
                "status": status,
                "duration_seconds": max(1, round(duration)),
                "speed_mbps": round(speed, 2),
                "error_code": error_code,
                "error_message": error_message,
            },
            "user_context": {
                "region": user.region,
                "city": user.city,
                "device": user.device,
                "os_version": user.os_version,
                "connection_type": connection,
            },
        }
        self._extend(value, item)
        return user.user_id, value

    def _extend(self, value: dict[str, Any], item: ContentItem) -> None:
        """Hook for later schema versions to add their fields."""


class ContentDownloadV2Factory(ContentDownloadFactory):
    """Version 2 values: version 1 plus ``content_rating`` (null for music, apps and books).

    Not in ``factories()``: producing v2 is an evolution exercise the caller opts into, and it
    needs the v2 schema registered under ``content-downloads-value``.
    """

    schema_file: str = V2_SCHEMA_FILE

    def _extend(self, value: dict[str, Any], item: ContentItem) -> None:
        value["content_rating"] = item.rating


def _in_seconds(event: dict[str, Any]) -> dict[str, Any]:
    return changed({"timestamp": event["timestamp"] // 1000})(event)


#: rule of ``app/validation/downloads.py`` -> how to make a valid event break exactly that rule
#: (the first it breaks in check order)
RULE_BREAKERS: dict[str, Any] = {
    "required_fields": changed({"user_context.region": " "}),
    "event_id_format": changed({"event_id": "download-0001"}),
    "timestamp_range": _in_seconds,
    "status_value": changed({"download.status": "paused"}),
    "content_type_value": changed({"content.type": "podcast"}),
    "error_code_required": changed({"download.status": "failed", "download.error_code": None}),
    "error_code_forbidden": changed({"download.status": "success",
                                     "download.error_code": "cdn_timeout"}),
    "size_range": changed({"content.size_mb": -1}),
    "duration_range": changed({"download.duration_seconds": -3}),
    "speed_range": changed({"download.speed_mbps": -0.5}),
    "price_range": changed({"content.price": -1.99}),
}  # fmt: skip


def factories(population: Population) -> list[EventFactory]:
    """The download factories the simulator runs by default (schema version 1)."""
    return [ContentDownloadFactory(population)]
