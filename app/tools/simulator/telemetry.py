"""Playback telemetry the way seed 002 describes it: sessions of start, pause, resume, stop and
complete events from customers with a home country, ISP, connection and device.

Realism that the aggregates can show: some ISPs and satellite/DSL links buffer far more than
others, 4K is only chosen with >= 15 Mbps (usually much more), older app versions error more,
popular titles follow a Zipf-like curve. Every event satisfies every rule of
``app.validation.telemetry``; :func:`break_rule` makes one that breaks a chosen rule.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from app.tools.simulator.population import EventFactory

__all__ = ["NEWER_EVENT_TYPE", "RULE_BREAKERS", "TelemetryFactory", "break_rule", "factories"]

TOPIC = "acme-telemetry"
SCHEMA_FILE = "telemetry/TelemetryEvent.avsc"

# country -> (states or (None,), cities, ISPs with their buffering proneness 0..1, weight)
_GEOGRAPHY: tuple[tuple[str, tuple[str | None, ...], tuple[str, ...], tuple[tuple[str, float], ...], float], ...] = (  # noqa: E501
    ("United States", ("California", "New York", "Texas", "Washington"),
     ("Los Angeles", "New York", "Austin", "Seattle", "San Jose"),
     (("Comcast", 0.15), ("Spectrum", 0.25), ("AT&T", 0.2), ("Verizon Fios", 0.1),
      ("Cox", 0.45), ("HughesNet", 0.9)), 40),
    ("United Kingdom", ("England", "Scotland"), ("London", "Manchester", "Edinburgh"),
     (("BT", 0.15), ("Sky", 0.2), ("Virgin Media", 0.3)), 12),
    ("Germany", ("Bavaria", "Berlin"), ("Munich", "Berlin", "Hamburg"),
     (("Deutsche Telekom", 0.15), ("Vodafone", 0.35)), 10),
    ("India", ("Maharashtra", "Karnataka", "Delhi"), ("Mumbai", "Bengaluru", "New Delhi"),
     (("Jio", 0.4), ("Airtel", 0.3), ("BSNL", 0.7)), 14),
    ("Brazil", ("Sao Paulo", "Rio de Janeiro"), ("Sao Paulo", "Rio de Janeiro"),
     (("Vivo", 0.3), ("Claro", 0.55)), 9),
    ("Japan", (None,), ("Tokyo", "Osaka"), (("NTT", 0.05), ("SoftBank", 0.15)), 8),
    ("Canada", ("Ontario", "Quebec"), ("Toronto", "Montreal"),
     (("Rogers", 0.2), ("Bell", 0.2)), 7),
)  # fmt: skip

_CONNECTIONS = (("wifi", 45, 60.0), ("fiber", 15, 300.0), ("cable", 15, 120.0),
                ("mobile", 15, 20.0), ("dsl", 7, 12.0), ("satellite", 3, 25.0))  # fmt: skip
_CONNECTION_PENALTY = {"satellite": 0.35, "dsl": 0.2, "mobile": 0.15}
# device_type -> (device OS choices, weight)
_DEVICES = (("mobile", ("iOS", "Android"), 40), ("web", ("Windows", "macOS", "Linux"), 20),
            ("tv", ("tvOS", "Android TV", "Tizen", "webOS", "Roku OS"), 30),
            ("tablet", ("iPadOS", "Android"), 10))  # fmt: skip
# app version -> (error proneness, weight)
_APP_VERSIONS = (("5.2.1", 0.03, 45), ("5.2.0", 0.05, 25), ("5.1.4", 0.12, 20), ("4.9.8", 0.3, 10))


def _hex8(rng: random.Random) -> str:
    return f"{rng.getrandbits(32):08x}"


@dataclass
class _Customer:
    customer_id: str
    country: str
    state: str | None
    city: str
    isp: str
    isp_buffering: float
    connection_type: str
    base_bandwidth: float
    device_type: str
    device_id: str
    device_os: str
    app_version: str
    error_proneness: float
    ip_address: str


@dataclass
class _Session:
    customer: _Customer
    session_id: str
    title_id: str
    duration: int
    position: int
    quality: str
    bandwidth: float
    paused: bool = False


class TelemetryFactory(EventFactory):
    """Stateful: keeps active sessions, so events of a session follow each other plausibly."""

    topic = TOPIC
    schema_file = SCHEMA_FILE

    def __init__(self, seed: int = 0, customers: int = 2000, titles: int = 300,
                 max_sessions: int = 500) -> None:  # fmt: skip
        world = random.Random(seed)
        self.customers = [self._customer(world) for _ in range(customers)]
        self.titles = [(f"TITLE_{_hex8(world)}", world.randint(20 * 60, 150 * 60))
                       for _ in range(titles)]  # fmt: skip
        self.title_weights = [1.0 / (rank + 1) ** 0.9 for rank in range(titles)]
        self.max_sessions = max_sessions
        self.sessions: dict[str, _Session] = {}

    @staticmethod
    def _customer(rng: random.Random) -> _Customer:
        country, states, cities, isps, _ = rng.choices(_GEOGRAPHY, [g[-1] for g in _GEOGRAPHY])[0]
        isp, proneness = rng.choice(isps)
        connection, _, bandwidth = rng.choices(_CONNECTIONS, [c[1] for c in _CONNECTIONS])[0]
        device_type, oses, _ = rng.choices(_DEVICES, [d[2] for d in _DEVICES])[0]
        version, error_proneness, _ = rng.choices(_APP_VERSIONS, [v[2] for v in _APP_VERSIONS])[0]
        return _Customer(
            customer_id=f"CUST_{_hex8(rng)}", country=country, state=rng.choice(states),
            city=rng.choice(cities), isp=isp,
            isp_buffering=min(1.0, proneness + _CONNECTION_PENALTY.get(connection, 0.0)),
            connection_type=connection, base_bandwidth=bandwidth * rng.uniform(0.5, 1.5),
            device_type=device_type, device_id=f"DEVICE_{_hex8(rng)}", device_os=rng.choice(oses),
            app_version=version, error_proneness=error_proneness,
            ip_address=".".join(str(rng.randint(1, 254)) for _ in range(4)),
        )  # fmt: skip

    def _start(self, rng: random.Random) -> _Session:
        customer = rng.choice(self.customers)
        title_id, duration = rng.choices(self.titles, self.title_weights)[0]
        bandwidth = round(min(1000.0, max(0.5, rng.gauss(customer.base_bandwidth, 5.0))), 1)
        if bandwidth >= 25.0 and customer.device_type == "tv" and rng.random() < 0.6:
            quality = "4K"
        elif bandwidth >= 5.0:
            quality = "HD"
        else:
            quality = "SD"
        resume_at = rng.choice((0, 0, 0, rng.randint(0, duration // 2)))
        return _Session(customer, f"SESSION_{_hex8(rng)}", title_id, duration, resume_at,
                        quality, bandwidth)  # fmt: skip

    def make(self, rng: random.Random, now_ms: int) -> tuple[str, dict[str, Any]]:
        if not self.sessions or (len(self.sessions) < self.max_sessions and rng.random() < 0.3):
            session = self._start(rng)
            self.sessions[session.session_id] = session
            return self._event(rng, session, "start", 0, now_ms)
        session = self.sessions[rng.choice(list(self.sessions))]
        if session.paused:
            session.paused = False
            return self._event(rng, session, "resume", 0, now_ms)
        watched = min(rng.randint(60, 1800), session.duration - session.position)
        session.position += watched
        if session.position >= session.duration * 0.95:
            del self.sessions[session.session_id]
            return self._event(rng, session, "complete", watched, now_ms)
        roll = rng.random()
        if roll < 0.55:
            session.paused = True
            return self._event(rng, session, "pause", watched, now_ms)
        del self.sessions[session.session_id]
        return self._event(rng, session, "stop", watched, now_ms)

    def _event(self, rng: random.Random, session: _Session, event_type: str, watched: int,
               now_ms: int) -> tuple[str, dict[str, Any]]:  # fmt: skip
        customer = session.customer
        buffering_events = buffering_seconds = error_count = 0
        if watched:
            minutes = watched / 60.0
            rate = customer.isp_buffering * (1.6 if session.quality == "4K" else 1.0)
            buffering_events = sum(1 for _ in range(int(minutes) + 1) if rng.random() < rate / 3)
            if buffering_events:
                buffering_seconds = min(
                    watched, sum(rng.randint(1, 12) for _ in range(buffering_events))
                )
            if rng.random() < customer.error_proneness:
                error_count = rng.choice((1, 1, 1, 2, 3))
        position = min(session.position, session.duration)
        value = {
            "event_id": f"EVENT_{_hex8(rng)}",
            "customer_id": customer.customer_id,
            "title_id": session.title_id,
            "session_id": session.session_id,
            "event_type": event_type,
            "event_timestamp": now_ms - rng.randint(0, 1500),
            "watch_duration_seconds": watched,
            "position_seconds": position,
            "completion_percentage": round(100.0 * position / session.duration, 1),
            "device_type": customer.device_type,
            "device_id": customer.device_id,
            "device_os": customer.device_os,
            "app_version": customer.app_version,
            "quality": session.quality,
            "bandwidth_mbps": session.bandwidth,
            "buffering_events": buffering_events,
            "buffering_duration_seconds": buffering_seconds,
            "error_count": error_count,
            "ip_address": customer.ip_address,
            "country": customer.country,
            "state": customer.state,
            "city": customer.city,
            "isp": customer.isp,
            "connection_type": customer.connection_type,
        }
        return customer.customer_id, value


def _set(**changes: Any) -> Any:
    return lambda event: {**event, **changes}


#: rule name -> how to make a valid event break exactly that rule (first in check order)
RULE_BREAKERS: dict[str, Any] = {
    "required_fields": _set(country=" "),
    "unknown_event_type": _set(event_type="rewind"),
    "event_id_format": _set(event_id="EVENT_xyz"),
    "customer_id_format": _set(customer_id="CUSTOMER_1"),
    "title_id_format": _set(title_id="TITLE_123"),
    "session_id_format": _set(session_id="SESSION_zzzzzzzz"),
    "device_id_format": _set(device_id="DEV_0000aaaa"),
    "app_version_format": _set(app_version="5.2"),
    "ip_address_format": _set(ip_address="300.1.2.3"),
    "quality_value": _set(quality="8K"),
    "watch_duration_range": _set(event_type="stop", watch_duration_seconds=86401),
    "position_range": _set(position_seconds=-1),
    "completion_percentage_range": _set(completion_percentage=100.5),
    "bandwidth_range": _set(bandwidth_mbps=1000.5, quality="HD"),
    "buffering_events_range": _set(buffering_events=1001),
    "buffering_duration_range": _set(event_type="stop", watch_duration_seconds=7200,
                                     buffering_events=3, buffering_duration_seconds=3601),
    "error_count_range": _set(error_count=101),
    "buffering_within_watch": _set(event_type="stop", watch_duration_seconds=10,
                                   buffering_events=2, buffering_duration_seconds=11),
    "start_zero_watch": _set(event_type="start", watch_duration_seconds=30, buffering_events=0,
                             buffering_duration_seconds=0),
    "no_buffering_zero_duration": _set(event_type="stop", watch_duration_seconds=100,
                                       buffering_events=0, buffering_duration_seconds=5),
    "quality_4k_bandwidth": _set(quality="4K", bandwidth_mbps=14.9),
}  # fmt: skip


#: An event type a newer producer knows and this reader schema does not (see orders.py).
NEWER_EVENT_TYPE = "rewind"


def break_rule(event: dict[str, Any], rule: str) -> dict[str, Any]:
    """A copy of a valid ``event`` that breaks ``rule`` (a key of :data:`RULE_BREAKERS`)."""
    return RULE_BREAKERS[rule](event)


def factories(population: Any = None, seed: int = 0) -> list[EventFactory]:
    """Telemetry has its own customers (CUST_ ids), so it ignores the shared population."""
    return [TelemetryFactory(seed=seed)]
