"""LENS recommendation-system events (seed 003) for the five LENS topics.

The five factories share one ``LensWorld`` so their events reference each other the way the
worker's joins expect: every response answers a request with the same ``requestId`` (latency is
log-normal with a slow tail), the top of each served list is shown to the user as ``view``
interactions with ``fromRecommendation`` set, some of those are clicked and a few bought; users
are assigned to A/B variants before their outcome events, and treatment converts slightly more.
"""

from __future__ import annotations

import math
import random
from collections import deque
from dataclasses import dataclass
from typing import Any

from app.catalog import SOURCE_TOPICS
from app.tools.simulator.population import EXPERIMENTS, EventFactory, Population, User, rng_uuid

__all__ = [
    "MODELS",
    "ABTestFactory",
    "LensWorld",
    "ModelMetricFactory",
    "ModelSpec",
    "RecommendationRequestFactory",
    "RecommendationResponseFactory",
    "UserInteractionFactory",
    "factories",
]


@dataclass(frozen=True)
class ModelSpec:
    """A served model: identity, latency and error profile, click-through and offline quality."""

    name: str
    version: str
    median_latency_ms: float
    error_rate: float
    ctr: float
    quality: dict[str, float]


MODELS: tuple[ModelSpec, ...] = (
    ModelSpec(
        name="collab_filter_als",
        version="2.3.1",
        median_latency_ms=35.0,
        error_rate=0.010,
        ctr=0.060,
        quality={
            "accuracy": 0.82,
            "precision": 0.31,
            "recall": 0.24,
            "ndcg": 0.41,
            "coverage": 0.55,
        },
    ),
    ModelSpec(
        name="neural_two_tower",
        version="1.4.0",
        median_latency_ms=70.0,
        error_rate=0.020,
        ctr=0.075,
        quality={
            "accuracy": 0.85,
            "precision": 0.35,
            "recall": 0.28,
            "ndcg": 0.46,
            "coverage": 0.62,
        },
    ),
    ModelSpec(
        name="popularity_baseline",
        version="1.0.0",
        median_latency_ms=6.0,
        error_rate=0.003,
        ctr=0.035,
        quality={
            "accuracy": 0.71,
            "precision": 0.18,
            "recall": 0.12,
            "ndcg": 0.27,
            "coverage": 0.08,
        },
    ),
)
_MODELS_BY_NAME = {m.name: m for m in MODELS}
# The ranker experiment's variants are served by different models.
_RANKER_EXPERIMENT = EXPERIMENTS[1]
_RANKER_MODEL = {"control": "collab_filter_als", "treatment": "neural_two_tower"}

_CATEGORIES = ("electronics", "books", "home", "fashion", "sports", "toys", "beauty", "grocery")
_PLACEMENTS = ("homepage", "item_detail", "cart", "email")
_PLACEMENT_WEIGHTS = (50, 30, 12, 8)
_SEARCH_TERMS = (
    "wireless headphones",
    "running shoes",
    "coffee grinder",
    "sci-fi novels",
    "yoga mat",
    "desk lamp",
    "lego",
    "face serum",
    "air fryer",
    "phone case",
)
_ORGANIC_TYPES = ("view", "click", "search", "rating", "bookmark", "purchase")
_ORGANIC_WEIGHTS = (45, 20, 12, 6, 7, 10)
_QUALITY_METRICS = ("accuracy", "precision", "recall", "ndcg", "coverage")

_SESSION_GAP_MS = 30 * 60 * 1000
_SHOWN_PER_RESPONSE = 6  # items above the fold get a view impression
_TIMEOUT_MS = 2000.0
_QUEUE_LIMIT = 2000


@dataclass(frozen=True)
class _Item:
    item_id: str
    category: str


@dataclass(frozen=True)
class _Shown:
    """A recommended item shown to a user, waiting for its impression or follow-up event."""

    user_id: str
    request_id: str
    model: ModelSpec
    item: _Item
    rank: int
    interaction: str


class LensWorld:
    """State the LENS factories share: item catalog, open requests, shown items, sessions, A/B."""

    def __init__(self, population: Population, n_items: int = 400) -> None:
        self.population = population
        catalog_rng = random.Random(f"lens-items-{population.seed}")
        self.items: tuple[_Item, ...] = tuple(
            _Item(f"item_{index:04d}", catalog_rng.choice(_CATEGORIES)) for index in range(n_items)
        )
        cumulative = 0.0
        self._item_cum_weights: list[float] = []
        for rank in range(n_items):
            cumulative += 1.0 / (rank + 1) ** 0.9
            self._item_cum_weights.append(cumulative)
        # Requests sent and not yet answered; requests answered before they were emitted.
        self.pending_requests: deque[dict[str, Any]] = deque(maxlen=_QUEUE_LIMIT)
        self.unsent_requests: deque[dict[str, Any]] = deque(maxlen=_QUEUE_LIMIT)
        # Recommended items awaiting their view; clicks, purchases and the like awaiting emission.
        self.impressions: deque[_Shown] = deque(maxlen=_QUEUE_LIMIT)
        self.followups: deque[_Shown] = deque(maxlen=_QUEUE_LIMIT)
        self._sessions: dict[str, tuple[str, int]] = {}
        self.assigned: set[tuple[str, str]] = set()

    def item(self, rng: random.Random) -> _Item:
        """An item, weighted by popularity."""
        return rng.choices(self.items, cum_weights=self._item_cum_weights)[0]

    def session_for(self, rng: random.Random, user_id: str, now_ms: int) -> str:
        """The user's session: continued within 30 minutes of their last event, else a new one."""
        current = self._sessions.get(user_id)
        if current is not None and now_ms - current[1] < _SESSION_GAP_MS:
            session_id = current[0]
        else:
            session_id = f"session_{rng.getrandbits(48):012x}"
        self._sessions[user_id] = (session_id, now_ms)
        return session_id

    def model_for(self, rng: random.Random, user: User) -> ModelSpec:
        """Cold placements use the popularity baseline; otherwise the user's ranker variant."""
        if rng.random() < 0.15:
            return _MODELS_BY_NAME["popularity_baseline"]
        variant = self.population.variant(_RANKER_EXPERIMENT, user.user_id)
        return _MODELS_BY_NAME[_RANKER_MODEL[variant]]

    def new_request(self, rng: random.Random, now_ms: int) -> dict[str, Any]:
        """A fresh recommendation request value."""
        user = self.population.pick(rng)
        model = self.model_for(rng, user)
        placement = rng.choices(_PLACEMENTS, weights=_PLACEMENT_WEIGHTS)[0]
        return {
            "requestId": rng_uuid(rng),
            "timestamp": now_ms,
            "userId": user.user_id,
            "sessionId": self.session_for(rng, user.user_id, now_ms),
            "modelName": model.name,
            "modelVersion": model.version if rng.random() < 0.3 else None,
            "numRecommendations": rng.choices((5, 10, 20), weights=(30, 50, 20))[0],
            "placement": placement,
            "contextItemId": self.item(rng).item_id if placement == "item_detail" else None,
        }


class RecommendationRequestFactory:
    """Recommendation requests, keyed by ``userId``; each is answered by the response factory."""

    topic: str = SOURCE_TOPICS["recommendation-requests"].name
    schema_file: str = SOURCE_TOPICS["recommendation-requests"].schema_file

    def __init__(self, world: LensWorld) -> None:
        self.world = world

    def make(self, rng: random.Random, now_ms: int) -> tuple[str, dict[str, Any]]:
        if self.world.unsent_requests:
            # Answered already (the response factory ran first): emit it, its time unchanged.
            request = self.world.unsent_requests.popleft()
        else:
            request = self.world.new_request(rng, now_ms)
            self.world.pending_requests.append(request)
        return request["userId"], dict(request)


class RecommendationResponseFactory:
    """Responses to pending requests (same ``requestId``), keyed by ``userId``."""

    topic: str = SOURCE_TOPICS["recommendation-responses"].name
    schema_file: str = SOURCE_TOPICS["recommendation-responses"].schema_file

    def __init__(self, world: LensWorld) -> None:
        self.world = world

    def make(self, rng: random.Random, now_ms: int) -> tuple[str, dict[str, Any]]:
        world = self.world
        if world.pending_requests:
            request = world.pending_requests.popleft()
        else:
            # No request waiting: invent one that happened just now and have it emitted later.
            request = world.new_request(rng, now_ms)
            world.unsent_requests.append(request)
        model = _MODELS_BY_NAME[request["modelName"]]
        latency = rng.lognormvariate(math.log(model.median_latency_ms), 0.45)
        if rng.random() < 0.015:
            latency *= rng.uniform(3.0, 10.0)  # garbage collection, cold caches
        wanted = request["numRecommendations"]
        error_message: str | None = None
        if latency > _TIMEOUT_MS:
            status, count = "error", 0
            latency = _TIMEOUT_MS + rng.uniform(0.0, 5.0)
            error_message = f"timed out after {_TIMEOUT_MS:.0f} ms"
        elif rng.random() < model.error_rate:
            status, count = "error", 0
            error_message = "model server unavailable"
        elif rng.random() < 0.04:
            status, count = "partial", rng.randint(1, wanted - 1)
            error_message = f"only {count} candidates passed filtering"
        else:
            status, count = "success", wanted
        picks = rng.sample(range(len(world.items)), count)
        scores = sorted((rng.betavariate(2.0, 5.0) for _ in picks), reverse=True)
        recommendations = []
        for rank, (index, score) in enumerate(zip(picks, scores, strict=True), start=1):
            item = world.items[index]
            recommendations.append(
                {
                    "itemId": item.item_id,
                    "score": round(score, 6),
                    "rank": rank,
                    "itemCategory": item.category,
                }
            )
            if rank <= _SHOWN_PER_RESPONSE:
                world.impressions.append(
                    _Shown(request["userId"], request["requestId"], model, item, rank, "view")
                )
        value = {
            "requestId": request["requestId"],
            "timestamp": max(now_ms, request["timestamp"] + math.ceil(latency)),
            "userId": request["userId"],
            "modelName": model.name,
            "modelVersion": model.version,
            "recommendations": recommendations,
            "processingTime": round(latency, 3),
            "status": status,
            "errorMessage": error_message,
        }
        return request["userId"], value


class UserInteractionFactory:
    """Interactions, keyed by ``userId``: impressions and clicks on recommendations, and organic."""

    topic: str = SOURCE_TOPICS["user-interactions"].name
    schema_file: str = SOURCE_TOPICS["user-interactions"].schema_file

    def __init__(self, world: LensWorld) -> None:
        self.world = world

    def make(self, rng: random.Random, now_ms: int) -> tuple[str, dict[str, Any]]:
        world = self.world
        draw = rng.random()
        if world.followups and draw < 0.3:
            # Newest first: people act on what they were just shown, within seconds (first in,
            # first out would put minutes between a response and its clicks once the queues
            # fill, beyond any attribution time); what waits too long is never acted on.
            return self._recommended(rng, now_ms, world.followups.pop())
        if world.impressions and draw < 0.65:
            return self._recommended(rng, now_ms, world.impressions.pop())
        return self._organic(rng, now_ms)

    def _recommended(
        self, rng: random.Random, now_ms: int, shown: _Shown
    ) -> tuple[str, dict[str, Any]]:
        """An interaction with a recommended item; may queue the user's next step on it."""
        kind = shown.interaction
        nxt: str | None = None
        if kind == "view":
            # Position bias: the top of the list is clicked most.
            if rng.random() < min(0.9, shown.model.ctr * 2.0 / math.sqrt(shown.rank)):
                nxt = "click"
        elif kind == "click":
            nxt = rng.choices(("purchase", "bookmark", "rating", None), weights=(12, 6, 5, 77))[0]
            if nxt == "purchase" and not self.world.population.get(shown.user_id).shopper:
                nxt = None
        if nxt is not None:
            self.world.followups.append(
                _Shown(shown.user_id, shown.request_id, shown.model, shown.item, shown.rank, nxt)
            )
        value = self._value(rng, now_ms, shown.user_id, kind, shown.item)
        value.update(
            fromRecommendation=True,
            recommendationRequestId=shown.request_id,
            modelName=shown.model.name,
            modelVersion=shown.model.version,
            position=shown.rank,
        )
        return shown.user_id, value

    def _organic(self, rng: random.Random, now_ms: int) -> tuple[str, dict[str, Any]]:
        user = self.world.population.pick(rng)
        kind = rng.choices(_ORGANIC_TYPES, weights=_ORGANIC_WEIGHTS)[0]
        if kind == "purchase" and not user.shopper:
            kind = "view"  # only shoppers buy; more of them in treatment variants
        value = self._value(rng, now_ms, user.user_id, kind, self.world.item(rng))
        return user.user_id, value

    def _value(
        self, rng: random.Random, now_ms: int, user_id: str, kind: str, item: _Item
    ) -> dict[str, Any]:
        rating = None
        if kind == "rating":
            rating = float(rng.choices((1, 2, 3, 4, 5), weights=(5, 8, 17, 35, 35))[0])
        return {
            "eventId": rng_uuid(rng),
            "timestamp": now_ms,
            "userId": user_id,
            "sessionId": self.world.session_for(rng, user_id, now_ms),
            "interactionType": kind,
            "itemId": item.item_id,
            "itemCategory": item.category,
            "rating": rating,
            "searchQuery": rng.choice(_SEARCH_TERMS) if kind == "search" else None,
            "fromRecommendation": False,
            "recommendationRequestId": None,
            "modelName": None,
            "modelVersion": None,
            "position": None,
        }


class ModelMetricFactory:
    """Per-minute metrics of the served models, keyed by ``modelName``."""

    topic: str = SOURCE_TOPICS["model-metrics"].name
    schema_file: str = SOURCE_TOPICS["model-metrics"].schema_file

    def make(self, rng: random.Random, now_ms: int) -> tuple[str, dict[str, Any]]:
        model = rng.choice(MODELS)
        metric = rng.choice((*_QUALITY_METRICS, "latency"))
        if metric == "latency":
            # Mean of a log-normal(sigma=0.45) around the model's median, with some drift.
            value = model.median_latency_ms * math.exp(0.45**2 / 2) * rng.uniform(0.9, 1.15)
            value = round(value, 3)
        else:
            value = round(min(1.0, max(0.0, rng.gauss(model.quality[metric], 0.01))), 5)
        window_end = now_ms - now_ms % 60_000
        return model.name, {
            "eventId": rng_uuid(rng),
            "timestamp": now_ms,
            "modelName": model.name,
            "modelVersion": model.version,
            "metricType": metric,
            "value": value,
            "windowStart": window_end - 60_000,
            "windowEnd": window_end,
            "sampleSize": rng.randint(200, 5000) if rng.random() < 0.9 else None,
        }


class ABTestFactory:
    """A/B events, keyed by ``userId``: a user's first event in an experiment is the assignment."""

    topic: str = SOURCE_TOPICS["ab-test-events"].name
    schema_file: str = SOURCE_TOPICS["ab-test-events"].schema_file

    # Chance that one outcome event of a shopper is a conversion. Treatment converts more because
    # more treatment users are shoppers (``Population``).
    CONVERSION_PROBABILITY = 0.12

    def __init__(self, world: LensWorld) -> None:
        self.world = world

    def make(self, rng: random.Random, now_ms: int) -> tuple[str, dict[str, Any]]:
        population = self.world.population
        user = population.pick(rng)
        experiment = rng.choice(EXPERIMENTS)
        variant = population.variant(experiment, user.user_id)
        pair = (experiment, user.user_id)
        value: float | None = None
        metric_name: str | None = None
        if pair not in self.world.assigned:
            self.world.assigned.add(pair)
            event_type = "assignment"
        elif user.shopper and rng.random() < self.CONVERSION_PROBABILITY:
            event_type = "conversion"
            value = round(rng.lognormvariate(math.log(35.0), 0.8), 2)  # order value, USD
        elif rng.random() < 0.3:
            event_type = "metric"
            metric_name = rng.choice(("session_minutes", "items_viewed"))
            if metric_name == "session_minutes":
                value = round(rng.lognormvariate(math.log(6.0), 0.7), 2)
            else:
                value = float(1 + int(rng.expovariate(1 / 5)))
        else:
            event_type = "engagement"
            value = round(rng.lognormvariate(math.log(90.0), 0.9), 1)  # engaged seconds
        return user.user_id, {
            "eventId": rng_uuid(rng),
            "experimentId": experiment,
            "userId": user.user_id,
            "variant": variant,
            "eventType": event_type,
            "timestamp": now_ms,
            "value": value,
            "metricName": metric_name,
        }


def factories(population: Population) -> list[EventFactory]:
    """The five LENS factories, sharing one world so their events reference each other."""
    world = LensWorld(population)
    return [
        UserInteractionFactory(world),
        RecommendationRequestFactory(world),
        RecommendationResponseFactory(world),
        ModelMetricFactory(),
        ABTestFactory(world),
    ]
