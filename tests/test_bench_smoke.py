"""The benchmark harness run at a tiny size, so it never rots.

It checks the shape of what ``python -m bench`` reports (one table, every row a number, targets
judged as met or missed), never a speed: speeds belong to ``make bench`` on a quiet machine.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench import wrk
from tests.conftest import service_missing

ROOT = Path(__file__).resolve().parents[1]
HEADERS = ["Scenario", "Configuration", "Measure", "Value", "Unit", "Target", "Result"]


def table_rows(text: str) -> list[list[str]]:
    """The cells of the one markdown table in ``text``, header first, separator dropped.

    Lines in fenced blocks are not the table's: a profile's call tree draws its branches with
    ``|`` and can start a line with ``| ``, depending on what the samples caught."""
    lines, fenced = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and line.startswith("| "):
            lines.append(line)
    rows = [[cell.strip() for cell in line.strip().strip("|").split(" | ")] for line in lines]
    return [row for row in rows if set(row) != {"---"}]


def test_table_rows_are_the_tables_not_a_fenced_call_tree():
    text = ("| Scenario | Value |\n| --- | --- |\n| 1 HIT | 0.9 |\n\n## Profile\n\n```\n"
            "100.0% _profile\n|- 98.0% FlaskClient.get\n|  `- 40.0% Flask.__call__\n"
            "`- 2.0% other\n```\n")
    assert table_rows(text) == [["Scenario", "Value"], ["1 HIT", "0.9"]]


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    if shutil.which("wrk") is None:
        service_missing("wrk not installed: apt-get install wrk")
    output = tmp_path_factory.mktemp("bench") / "RESULTS.md"
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--database", "sqlite", "--cache", "simple",
         "--output", str(output)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return result.stdout, output.read_text(encoding="utf-8")


@pytest.mark.slow
def test_quick_run_prints_one_table_of_numbers(quick_run):
    printed, _ = quick_run
    header, *rows = table_rows(printed)
    assert header == HEADERS
    assert rows
    for row in rows:
        assert len(row) == len(HEADERS), row
        float(row[3])  # every value is a number
        assert row[6] in ("met", "missed", "—"), row
        assert (row[5] == "—") == (row[6] == "—"), row


@pytest.mark.slow
def test_quick_run_covers_every_scenario_its_backends_allow(quick_run):
    printed, _ = quick_run
    _, *rows = table_rows(printed)
    scenarios = {row[0] for row in rows}
    # The outage and the change latency need Redis, which this run (SimpleCache) leaves out on purpose.
    assert scenarios == {"1 HIT vs floor", "2 MISS at scale", "3 stampede", "5 growth", "6 profile", "7 fleet",
                         "11 streams"}
    measures = {row[2] for row in rows}
    assert {"HIT / floor throughput", "SQL statements per computation", "failed requests"} <= measures
    judged = {row[2] for row in rows if row[5] != "—"}
    assert "HIT / bare route throughput" in judged and "SQL statements per computation" in judged
    assert "304 / bare route throughput" in judged
    assert any("stale answers" in measure for measure in judged)


@pytest.mark.slow
def test_quick_run_writes_the_results_file_with_machine_and_commands(quick_run):
    printed, written = quick_run
    assert table_rows(written) == table_rows(printed)
    for section in ("## Machine", "## Results", "## Targets missed", "## Commands"):
        assert section in written
    assert "gunicorn -c gunicorn.conf.py" in written and "wrk -t1" in written
    assert "$SECRET_KEY" in written and "$TOKEN" in written  # never the real ones


WRK_REPORT = """\
Running 10s test @ http://127.0.0.1:8000/api/v1/appointments/mega-stats
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    95.12ms   20.01ms   1.20s    80.00%
    Req/Sec   172.50     20.11   210.00     70.00%
  Latency Distribution
     50%  850.00us
     75%   97.00ms
     90%  110.00ms
     99%    1.20s
  1726 requests in 10.01s, 600.00KB read
  Socket errors: connect 0, read 2, write 0, timeout 3
  Non-2xx or 3xx responses: 4
Requests/sec:    172.43
Transfer/sec:     59.94KB
xcache HIT=1700 MISS=1 BYPASS=20 OTHER=5
"""


def test_wrk_report_is_read_with_its_units_and_failures():
    result = wrk.parse(WRK_REPORT)
    assert (result.requests, result.seconds, result.rate) == (1726, 10.01, 172.43)
    assert result.p50 == pytest.approx(0.85) and result.p99 == pytest.approx(1200.0)
    assert result.failed == 4 + 2 + 3
    assert result.xcache == {"HIT": 1700, "MISS": 1, "BYPASS": 20, "OTHER": 5}


def test_a_poll_sent_after_a_write_answered_must_show_it():
    from bench.dashboards import Poll
    from bench.freshness import Write, judge

    zero = {period: {"confirmed": 0, "pending": 0} for period in ("today", "week", "month", "nextMonth")}
    booked = {**zero, **{p: {"confirmed": 1, "pending": 0} for p in ("today", "week", "month")}}
    write = Write("t", sent=10.0, received=11.0, ok=True, change={"confirmed": +1})

    def poll(sent: float, counts: dict) -> Poll:
        return Poll("t", sent, sent + 0.5, 200, "HIT", counts, conditional=False)

    verdicts = judge([poll(5, zero), poll(10.8, zero), poll(12, booked), poll(13, zero)], [write], {"t": zero})
    assert (verdicts.judged, verdicts.unjudged, verdicts.stale) == (3, 1, 1)
