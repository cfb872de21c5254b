"""The stats computation itself: one SQL statement, exact counts, on both databases."""

from __future__ import annotations

from datetime import date
from zoneinfo import ZoneInfo

from alignwork.services.stats.query import compute_stats
from tests.conftest import count_statements, utc


def test_one_statement_computes_all_four_periods(app, build):
    build.tenant("acme")
    build.appointments("acme", [(utc(2026, 5, 13, 15), "confirmed"), (utc(2026, 6, 2, 15), "pending")])
    with count_statements(app) as seen, app.app_context():
        result = compute_stats("acme", ZoneInfo("America/Recife"), date(2026, 5, 13))
    assert len(seen) == 1
    assert result == {
        "today": {"confirmed": 1, "pending": 0},
        "week": {"confirmed": 1, "pending": 0},
        "month": {"confirmed": 1, "pending": 0},
        "nextMonth": {"confirmed": 0, "pending": 1},
    }


def test_cancelled_and_other_tenants_are_never_counted(app, build):
    build.tenant("acme")
    build.tenant("rival")
    build.appointments("acme", [(utc(2026, 5, 13, 15), "cancelled")])
    build.appointments("rival", [(utc(2026, 5, 13, 15), "confirmed")])
    with app.app_context():
        result = compute_stats("acme", ZoneInfo("America/Recife"), date(2026, 5, 13))
    assert all(counts == {"confirmed": 0, "pending": 0} for counts in result.values())
