"""Appointment counts per period: one SQL statement for all four periods."""

from __future__ import annotations

from datetime import date

from sqlalchemy import and_, func, select

from ..extensions import db
from ..models import COUNTED_STATUSES, Appointment
from ..periods import PERIOD_NAMES, parse_timezone, periods_for_date

Stats = dict[str, dict[str, int]]


def compute_stats(tenant_id: str, tz_name: str, day: date) -> Stats:
    """Counts of confirmed and pending appointments for the periods around local date ``day``.

    Conditional aggregation (``COUNT(*) FILTER``) over one range scan of the
    (tenant_id, starts_at, status) index; cancelled appointments are never read.
    """
    periods = periods_for_date(parse_timezone(tz_name), day)
    starts_at = Appointment.starts_at
    columns = [
        func.count()
        .filter(and_(starts_at >= period.start, starts_at < period.end, Appointment.status == status))
        .label(f"{name}_{status}")
        for name, period in periods.items()
        for status in COUNTED_STATUSES
    ]
    query = select(*columns).where(
        Appointment.tenant_id == tenant_id,
        starts_at >= min(p.start for p in periods.values()),
        starts_at < max(p.end for p in periods.values()),
        Appointment.status.in_(COUNTED_STATUSES),
    )
    row = db.session.execute(query).one()._mapping
    return {
        name: {status: int(row[f"{name}_{status}"]) for status in COUNTED_STATUSES}
        for name in PERIOD_NAMES
    }
