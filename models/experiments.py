"""``ab.conversions`` (contract section 3): per experiment and variant, cumulative as of each
window's end, with lift and the pooled two-proportion z-test against ``control``.

Fed by the per-user join (``models/users.py``): its deltas carry, per experiment, variant and
event time, signed changes of assigned and converted users, and ``activity`` (a first
assignment or a qualifying conversion happened then). The table is keyed by experiment, so one
key's window holds every variant: each closing window whose activity is positive gives one
record per variant assigned so far, from the running totals (``cumulative``).
"""

from __future__ import annotations

import math
from typing import Any

from models.combine import Aggregate, Sum, SumBy, ratio

__all__ = ["AB_CONVERSIONS", "CONTROL", "two_proportion_test"]

#: the variant every other is compared with
CONTROL = "control"


def two_proportion_test(
    converted: int, assigned: int, control_converted: int, control_assigned: int
) -> tuple[float | None, float | None]:
    """The pooled two-proportion z-test of a variant against control: (z, two-sided p);
    z signed variant minus control; (None, None) where undefined (no users on a side, or a
    pooled rate of 0 or 1: no variance)."""
    if not assigned or not control_assigned:
        return None, None
    pooled = (converted + control_converted) / (assigned + control_assigned)
    variance = pooled * (1.0 - pooled) * (1.0 / assigned + 1.0 / control_assigned)
    if variance <= 0.0:
        return None, None
    z = (converted / assigned - control_converted / control_assigned) / math.sqrt(variance)
    return z, math.erfc(abs(z) / math.sqrt(2.0))


def _rows(window: dict[str, Any], total: dict[str, Any]) -> list[tuple[tuple[str], dict]]:
    if window["activity"] <= 0:
        return []  # no assignment and no qualifying conversion in this window
    assigned, converted = total["assigned"], total["converted"]
    control_n, control_x = assigned.get(CONTROL, 0), converted.get(CONTROL, 0)
    control_rate = ratio(control_x, control_n)
    rows = []
    for variant in sorted(v for v, n in assigned.items() if n > 0):
        n, x = assigned[variant], converted.get(variant, 0)
        rate = ratio(x, n)
        lift = z = p = None
        if variant != CONTROL and control_n:
            if control_rate and rate is not None:
                lift = (rate - control_rate) / control_rate
            z, p = two_proportion_test(x, n, control_x, control_n)
        rows.append(((variant,), {
            "assigned_users": n, "converted_users": x, "conversion_rate": rate,
            "lift_vs_control": lift, "z_score": z, "p_value": p,
        }))  # fmt: skip
    return rows


AB_CONVERSIONS = Aggregate(
    table="ab.conversions",
    event_type="experiment.conversions",
    description="A/B experiments per variant, cumulative since the first assignment: assigned "
    "and converted users, conversion rate, lift and z-test against control.",
    key={"experiment_id": "experiment_id"},
    fields={
        "assigned": SumBy("variant", "assigned"),
        "converted": SumBy("variant", "converted"),
        "activity": Sum("activity"),
    },
    metrics=lambda v: {},  # records come from the rows
    cumulative=True,
    rows=_rows,
    row_key_fields=("variant",),
)
