"""``make bench`` warns when a judged ratio is more than 10 % worse than in the previous results."""

from __future__ import annotations

from bench.report import Report, previous_ratios, regressions

PREVIOUS = """
| Scenario | Configuration | Measure | Value | Unit | Target | Result |
|---|---|---|---|---|---|---|
| 1 HIT vs floor | SimpleCache, sync ×1 | HIT / floor throughput | 0.90 | ratio | ≥ 0.85 | met |
| 1 HIT vs floor | SimpleCache, in process | HIT cost / bare route's | 1.00 | ratio | ≤ 1.5 | met |
| 5 growth | SimpleCache, sync ×4 | 1000 tenants / 1 tenant throughput | 0.64 | ratio | — | — |
"""


def rows(throughput: float, cost: float) -> list:
    report = Report("now")
    report.add("1 HIT vs floor", "SimpleCache, sync ×1", "HIT / floor throughput", throughput, "ratio", (">=", 0.85))
    report.add("1 HIT vs floor", "SimpleCache, in process", "HIT cost / bare route's", cost, "ratio", ("<=", 1.5))
    report.add("5 growth", "SimpleCache, sync ×4", "1000 tenants / 1 tenant throughput", 0.1, "ratio")
    return report.rows


def test_only_judged_ratios_are_read_back():
    assert set(previous_ratios(PREVIOUS)) == {
        ("1 HIT vs floor", "SimpleCache, sync ×1", "HIT / floor throughput"),
        ("1 HIT vs floor", "SimpleCache, in process", "HIT cost / bare route's")}


def test_more_than_ten_percent_worse_is_a_warning_either_way_round():
    previous = previous_ratios(PREVIOUS)
    assert regressions(previous, rows(0.85, 1.05)) == []  # 6 % and 5 % worse: noise
    warned = regressions(previous, rows(0.78, 1.2))
    assert len(warned) == 2
    assert "13% worse than the 0.90" in warned[0] and "20% worse than the 1 in" in warned[1]
    assert regressions(previous, rows(1.2, 0.5)) == []  # better is never a warning
