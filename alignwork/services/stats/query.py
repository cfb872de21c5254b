"""Appointment counts per period: one SQL statement for all four periods.

The statement sums the 15-minute rollup (``models.appointment_count``) when every period
boundary lies on its grid, which is always the case for real zones in the dates the API
accepts; otherwise it counts the appointments themselves. Both give the same numbers.
"""

from __future__ import annotations

from datetime import date
from zoneinfo import ZoneInfo

from sqlalchemy import and_, func, select

from ...extensions import db
from ...models import COUNTED_STATUSES, Appointment, AppointmentCount
from ...models.appointment_count import on_grid
from ...periods import PERIOD_NAMES, Period, periods_for_date

Stats = dict[str, dict[str, int]]


def compute_stats(tenant_id: str, zone: ZoneInfo, day: date) -> Stats:
    """Counts of confirmed and pending appointments for the periods around local date ``day``."""
    periods = periods_for_date(zone, day)
    if not all(on_grid(p.start) and on_grid(p.end) for p in periods.values()):
        return compute_stats_from_appointments(tenant_id, zone, day)
    return _run(periods, AppointmentCount.bucket, AppointmentCount.status,
                func.sum(AppointmentCount.n), AppointmentCount.tenant_id == tenant_id)


def compute_stats_from_appointments(tenant_id: str, zone: ZoneInfo, day: date) -> Stats:
    """The same counts, always from the appointments table (the reference for the rollup)."""
    periods = periods_for_date(zone, day)
    return _run(periods, Appointment.starts_at, Appointment.status, func.count(),
                Appointment.tenant_id == tenant_id)


def _run(periods: dict[str, Period], instant, status, aggregate, tenant_filter) -> Stats:
    """Conditional aggregation (``FILTER``) over one range scan bounded by the outermost
    boundaries; rows never counted (cancelled) are excluded by the scan itself."""
    columns = [
        aggregate.filter(and_(instant >= period.start, instant < period.end, status == name_status))
        .label(f"{name}_{name_status}")
        for name, period in periods.items()
        for name_status in COUNTED_STATUSES
    ]
    query = select(*columns).where(
        tenant_filter,
        instant >= min(p.start for p in periods.values()),
        instant < max(p.end for p in periods.values()),
        status.in_(COUNTED_STATUSES),
    )
    row = db.session.execute(query).one()._mapping
    return {
        name: {s: int(row[f"{name}_{s}"] or 0) for s in COUNTED_STATUSES}
        for name in PERIOD_NAMES
    }
