"""The simulated world every factory shares: one seeded population of users.

Downloads, orders and all LENS topics draw their users from the same ``Population`` so that the
worker's cross-topic joins (an A/B assignment followed by a purchase interaction or an
``ORDER_CREATED`` by the same user) actually happen in simulated traffic.
"""

from __future__ import annotations

import copy
import hashlib
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = [
    "CURRENCY_RATES",
    "EXPERIMENTS",
    "REGIONS",
    "VARIANTS",
    "EventFactory",
    "Population",
    "Region",
    "User",
    "changed",
    "rng_uuid",
    "true_conversion_rate",
]


class EventFactory(Protocol):
    """What the simulator needs from a factory: its topic, schema and one event at a time."""

    topic: str
    schema_file: str

    def make(self, rng: random.Random, now_ms: int) -> tuple[str, dict[str, Any]]:
        """Return ``(message key, Avro value dict)`` for one event occurring at ``now_ms``."""
        ...


@dataclass(frozen=True)
class Region:
    """A download/shopping region: its cities, local currency and share of users."""

    name: str
    cities: tuple[str, ...]
    currency: str
    weight: float


REGIONS: tuple[Region, ...] = (
    Region("US-California", ("San Francisco", "Los Angeles", "San Diego", "San Jose"), "USD", 18),
    Region("US-NewYork", ("New York", "Brooklyn", "Buffalo"), "USD", 14),
    Region("US-Texas", ("Austin", "Houston", "Dallas"), "USD", 10),
    Region("EU-London", ("London",), "GBP", 10),
    Region("EU-Berlin", ("Berlin", "Hamburg"), "EUR", 8),
    Region("EU-Paris", ("Paris", "Lyon"), "EUR", 7),
    Region("CA-Toronto", ("Toronto", "Mississauga"), "CAD", 6),
    Region("APAC-Tokyo", ("Tokyo", "Yokohama"), "JPY", 8),
    Region("APAC-Sydney", ("Sydney", "Melbourne"), "AUD", 5),
    Region("APAC-Singapore", ("Singapore",), "SGD", 4),
)

# Units of each currency per US dollar: the simulator prices in USD and converts, so amounts in
# every currency stay plausible (no 19.99 JPY orders).
CURRENCY_RATES: dict[str, float] = {
    "USD": 1.0,
    "EUR": 0.92,
    "GBP": 0.79,
    "CAD": 1.37,
    "JPY": 150.0,
    "AUD": 1.52,
    "SGD": 1.34,
}

# (device, operating system versions, usual connection types with weights)
_DEVICES: tuple[tuple[str, tuple[str, ...], float], ...] = (
    ("iPhone 15 Pro", ("iOS 18.1", "iOS 17.6"), 22),
    ("iPhone 14", ("iOS 18.1", "iOS 17.6", "iOS 16.7"), 14),
    ("iPad Air", ("iPadOS 18.1", "iPadOS 17.6"), 10),
    ("iPad Pro", ("iPadOS 18.1",), 5),
    ("Pixel 8", ("Android 15", "Android 14"), 9),
    ("Galaxy S24", ("Android 14",), 12),
    ("Galaxy Tab S9", ("Android 14", "Android 13"), 5),
    ("MacBook Air", ("macOS 15.1", "macOS 14.7"), 8),
    ("Windows PC", ("Windows 11", "Windows 10"), 10),
    ("Fire TV Stick", ("Fire OS 8",), 5),
)
_MOBILE_PREFIXES = ("iPhone", "Pixel", "Galaxy S")

# Two experiments: the home carousel with two treatments, the ranker with one (its variants
# are served by different models, lens.py). Users are split evenly by a stable hash.
EXPERIMENTS: tuple[str, ...] = ("exp_home_carousel", "exp_ranker_v2")
VARIANTS: dict[str, tuple[str, ...]] = {
    "exp_home_carousel": ("control", "treatment", "treatment_b"),
    "exp_ranker_v2": ("control", "treatment"),
}

# Share of users who ever buy (orders, purchases, A/B conversions), and its multiplier per
# experiment and variant. Over a long run every shopper converts, so a variant's true
# conversion rate is the share of shoppers among its users (:func:`true_conversion_rate`).
_SHOPPER_BASE = 0.25
_SHOPPER_LIFT: dict[str, dict[str, float]] = {
    "exp_home_carousel": {"control": 1.0, "treatment": 1.4, "treatment_b": 1.2},
    "exp_ranker_v2": {"control": 1.0, "treatment": 1.25},
}


def true_conversion_rate(experiment: str, variant: str) -> float:
    """The share of a variant's users who are shoppers: the conversion rate a long run
    approaches (the other experiment's variants averaged over its even split)."""
    rate = _SHOPPER_BASE * _SHOPPER_LIFT[experiment][variant]
    for other, lifts in _SHOPPER_LIFT.items():
        if other != experiment:
            rate *= sum(lifts.values()) / len(lifts)
    return rate


def _cumulative(users: list[User]) -> list[float]:
    total = 0.0
    weights = []
    for user in users:
        total += user.activity
        weights.append(total)
    return weights


def changed(changes: dict[str, Any]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """A function returning a deep copy of an event with ``changes`` applied; a key names a
    field, dotted for nested records (``"download.status"``). Used to break rules on purpose."""

    def apply(event: dict[str, Any]) -> dict[str, Any]:
        out = copy.deepcopy(event)
        for path, value in changes.items():
            *records, name = path.split(".")
            target = out
            for record in records:
                target = target[record]
            target[name] = value
        return out

    return apply


def rng_uuid(rng: random.Random) -> str:
    """A version-4 UUID drawn from ``rng`` (never ``uuid4``), so seeded runs repeat exactly."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


@dataclass(frozen=True)
class User:
    """One simulated user with a stable home (region, city, device, connection).

    ``shopper`` marks the minority who buy at all (orders, purchases, A/B conversions): real
    conversion rates saturate well below 100%, and treatment users are shoppers slightly more often.
    """

    user_id: str
    region: str
    city: str
    currency: str
    device: str
    os_version: str
    connection_type: str
    activity: float
    shopper: bool


class Population:
    """A fixed set of users built from a seed; active users are picked more often."""

    def __init__(self, seed: int, size: int = 500) -> None:
        if size < 1:
            raise ValueError("a population needs at least one user")
        self.seed = seed
        rng = random.Random(f"streampulse-population-{seed}")
        region_weights = [r.weight for r in REGIONS]
        device_weights = [d[2] for d in _DEVICES]
        users: list[User] = []
        seen: set[str] = set()
        while len(users) < size:
            user_id = f"user_{rng.getrandbits(32):08x}"
            if user_id in seen:
                continue
            seen.add(user_id)
            region = rng.choices(REGIONS, weights=region_weights)[0]
            device, os_versions, _ = rng.choices(_DEVICES, weights=device_weights)[0]
            if device.startswith(_MOBILE_PREFIXES):
                connection = rng.choices(("wifi", "5g", "4g"), weights=(60, 25, 15))[0]
            else:
                connection = "wifi"
            shopper_chance = _SHOPPER_BASE
            for experiment, lifts in _SHOPPER_LIFT.items():
                shopper_chance *= lifts[self.variant(experiment, user_id)]
            users.append(
                User(
                    user_id=user_id,
                    region=region.name,
                    city=rng.choice(region.cities),
                    currency=region.currency,
                    device=device,
                    os_version=rng.choice(os_versions),
                    connection_type=connection,
                    # Log-normal activity: a few users generate much of the traffic.
                    activity=rng.lognormvariate(0.0, 0.9),
                    shopper=rng.random() < shopper_chance,
                )
            )
        self.users: tuple[User, ...] = tuple(users)
        self._by_id = {u.user_id: u for u in users}
        self._cum_weights = _cumulative(users)
        shoppers = [u for u in users if u.shopper] or users[:1]
        self.shoppers: tuple[User, ...] = tuple(shoppers)
        self._shopper_cum_weights = _cumulative(shoppers)

    def __len__(self) -> int:
        return len(self.users)

    def pick(self, rng: random.Random) -> User:
        """A user, weighted by activity."""
        return rng.choices(self.users, cum_weights=self._cum_weights)[0]

    def pick_shopper(self, rng: random.Random) -> User:
        """A user who buys, weighted by activity."""
        return rng.choices(self.shoppers, cum_weights=self._shopper_cum_weights)[0]

    def get(self, user_id: str) -> User:
        """The user with this id (KeyError when unknown)."""
        return self._by_id[user_id]

    def variant(self, experiment_id: str, user_id: str) -> str:
        """The user's variant in an experiment: a stable even hash split, like real assigners."""
        digest = hashlib.sha256(f"{self.seed}:{experiment_id}:{user_id}".encode()).digest()
        variants = VARIANTS[experiment_id]
        return variants[int.from_bytes(digest[:4], "big") % len(variants)]
