"""Privacy tiers (seeds 002 and 004): which source fields are PII, and the check every derived
record passes before it is published.

Derived topics are ``public`` or ``internal``: aggregates, never a person. The only restricted
topic is the DLQ (``streampulse.dlq``), which keeps broken source messages byte for byte for
the people who fix them. :func:`pii_in` is applied by the publisher to every derived record
(``app/engine/publish.py``); a record carrying PII, by field name or by the shape of a value,
is not published, but counted (``streampulse_privacy_rejections_total{table}``) and logged
(the field, never the value).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

__all__ = ["PII_FIELDS", "PII_VALUE_PATTERNS", "pii_in"]

#: Source fields that identify or locate a person (seed 002's PII fields, the order and
#: recommendation ids of seeds 001 and 003, and address and contact details).
PII_FIELDS: frozenset[str] = frozenset({
    "customer_id", "user_id", "device_id", "session_id", "ip_address", "ip",
    "city", "street", "address_line", "postal_code", "zip_code", "zip",
    "shipping_address", "billing_address", "email", "phone", "phone_number",
})  # fmt: skip

#: Values that are PII whatever the field is called: the source id formats and contact data.
PII_VALUE_PATTERNS: dict[str, re.Pattern[str]] = {
    "customer id": re.compile(r"CUST_[0-9a-fA-F]{8}"),
    "device id": re.compile(r"DEVICE_[0-9a-fA-F]{8}"),
    "session id": re.compile(r"SESSION_[0-9a-fA-F]{8}"),
    "IPv4 address": re.compile(r"(?<![0-9.])(?:[0-9]{1,3}\.){3}[0-9]{1,3}(?![0-9.])"),
    "IPv6 address": re.compile(r"(?<![0-9A-Fa-f:])(?:[0-9A-Fa-f]{1,4}:){2,7}[0-9A-Fa-f]{1,4}"),
    "email address": re.compile(r"[^@\s]+@[^@\s]+\.[A-Za-z]{2,}"),
    # A whole value of 9+ digits with phone punctuation (inside text, digit runs are UUIDs,
    # dates and versions far more often than phone numbers).
    "phone number": re.compile(r"^(?=(?:[^0-9]*[0-9]){9})[+(]?[0-9][0-9 ().-]{7,}[0-9]$"),
}
_ANY_PII_VALUE = re.compile("|".join(f"(?:{p.pattern})" for p in PII_VALUE_PATTERNS.values()))


def _strings(value: Any, path: str) -> Iterator[tuple[str, str | None, str]]:
    """(path, field name, string) of every string in ``value``, and (path, name, "") for every
    field name, nested dicts and lists included."""
    if isinstance(value, dict):
        for name, item in value.items():
            name = str(name)
            where = f"{path}.{name}" if path else name
            yield where, name, ""
            yield from _strings(item, where)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _strings(item, f"{path}[{index}]")
    elif isinstance(value, str):
        yield path, None, value


def pii_in(record: dict[str, Any], key: str = "") -> str | None:
    """Why ``record`` (published under ``key``) carries PII, or None. Names the field and the
    kind of value, never the value itself (the reason is logged)."""
    if key and _ANY_PII_VALUE.search(key):
        return f"the record key looks like a {_kind(key)}"
    for where, name, text in _strings(record, ""):
        if name is not None and name.lower() in PII_FIELDS:
            return f"field {where} is a PII field"
        if text and _ANY_PII_VALUE.search(text):
            return f"the value of {where} looks like a {_kind(text)}"
    return None


def _kind(text: str) -> str:
    return next(kind for kind, pattern in PII_VALUE_PATTERNS.items() if pattern.search(text))
