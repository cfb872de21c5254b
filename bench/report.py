"""The one results table, and ``bench/RESULTS.md`` around it: machine, commands, plans, notes.

Every measurement is one row with a single number, so the table can be read by a person and
checked by a test alike. Targets are judged here and only reported ("met" or "missed"); the
benchmark never fails because a target is missed.
"""

from __future__ import annotations

import math
import os
import platform
import statistics
from dataclasses import dataclass, field
from importlib import metadata

HEADERS = ("Scenario", "Configuration", "Measure", "Value", "Unit", "Target", "Result")
LIBRARIES = ("Flask", "Flask-Caching", "Flask-SQLAlchemy", "SQLAlchemy", "gunicorn", "Werkzeug",
             "cachelib", "redis", "psycopg")


@dataclass
class Row:
    scenario: str
    configuration: str
    measure: str
    value: float
    unit: str
    target: str = ""
    result: str = ""

    def cells(self) -> tuple[str, ...]:
        return (self.scenario, self.configuration, self.measure, format_number(self.value),
                self.unit, self.target or "—", self.result or "—")


@dataclass
class Report:
    title: str
    rows: list[Row] = field(default_factory=list)
    sections: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, scenario: str, configuration: str, measure: str, value: float, unit: str,
            target: tuple[str, float] | None = None) -> Row:
        """Add a row; ``target`` is ``(">=" | "<=" | "==", threshold)`` and is judged here."""
        row = Row(scenario, configuration, measure, value, unit)
        if target is not None:
            op, threshold = target
            row.target = f"{'≥' if op == '>=' else '≤' if op == '<=' else '='} {format_number(threshold)}"
            met = {">=": value >= threshold, "<=": value <= threshold, "==": value == threshold}[op]
            row.result = "met" if met else "missed"
        self.rows.append(row)
        return row

    def section(self, title: str, text: str) -> None:
        self.sections.append((title, text))

    def missed(self) -> list[Row]:
        return [row for row in self.rows if row.result == "missed"]

    def table(self) -> str:
        lines = ["| " + " | ".join(HEADERS) + " |", "|" + "|".join(" --- " for _ in HEADERS) + "|"]
        lines += ["| " + " | ".join(row.cells()) + " |" for row in self.rows]
        return "\n".join(lines)

    def markdown(self, machine: dict[str, str], commands: list[str], invocation: str, seconds: float) -> str:
        parts = [f"# {self.title}", "",
                 f"Produced by `{invocation}` in {seconds / 60:.1f} minutes. Targets are reported, "
                 "never asserted.", "", "## Machine", ""]
        parts += [f"- {name}: {value}" for name, value in machine.items()]
        parts += ["", "## Results", "", self.table(), ""]
        missed = self.missed()
        parts += ["## Targets missed", ""]
        parts += [f"- {r.scenario} — {r.configuration}: {r.measure} = {format_number(r.value)} {r.unit} "
                  f"(target {r.target})" for r in missed] or ["- none"]
        parts.append("")
        if self.notes:
            parts += ["## Notes", ""] + [f"- {note}" for note in self.notes] + [""]
        for title, text in self.sections:
            parts += [f"## {title}", "", text.rstrip(), ""]
        parts += ["## Commands", "", "Run from the project root; `$NAMES` stand for values made "
                  "per run (signing key, tokens, scratch folder, free ports).", "", "```sh"]
        parts += commands + ["```", ""]
        return "\n".join(parts)


def format_number(value: float) -> str:
    if float(value).is_integer():
        return str(int(value))
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile, so it is always a measured value."""
    ordered = sorted(values)
    if not ordered:
        return 0.0
    rank = max(1, math.ceil(share * len(ordered) - 1e-9))
    return ordered[min(rank, len(ordered)) - 1]


def machine(extra: dict[str, str]) -> dict[str, str]:
    """Cores, CPU, memory, OS, Python and library versions: what the numbers depend on."""
    facts = {"cores": str(os.cpu_count()), "CPU": _cpu_model(), "memory": _memory(),
             "OS": f"{platform.system()} {platform.release()}",
             "Python": platform.python_version()}
    versions = []
    for name in LIBRARIES:
        try:
            versions.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    facts["libraries"] = ", ".join(versions)
    facts.update(extra)
    return facts


def _cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory() -> str:
    try:
        for line in open("/proc/meminfo", encoding="utf-8"):
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def previous_ratios(text: str) -> dict[tuple[str, str, str], tuple[float, str]]:
    """The judged ratios of an earlier RESULTS.md: (scenario, configuration, measure) to the
    value and its target's direction (``≥`` higher is better, ``≤`` lower is better)."""
    found = {}
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != len(HEADERS) or cells[4] != "ratio" or cells[5][:1] not in ("≥", "≤"):
            continue
        try:
            found[(cells[0], cells[1], cells[2])] = (float(cells[3].replace(",", "")), cells[5][:1])
        except ValueError:
            continue
    return found


def regressions(previous: dict[tuple[str, str, str], tuple[float, str]], rows: list[Row],
                tolerance: float = 0.10) -> list[str]:
    """Judged ratios more than ``tolerance`` worse than in the earlier results."""
    worse = []
    for row in rows:
        before = previous.get((row.scenario, row.configuration, row.measure))
        if row.unit != "ratio" or before is None or not before[0]:
            continue
        value, direction = before
        change = (value - row.value) / value if direction == "≥" else (row.value - value) / value
        if change > tolerance:
            worse.append(f"{row.scenario} — {row.configuration}: {row.measure} is {format_number(row.value)}, "
                         f"{change:.0%} worse than the {format_number(value)} in the previous results")
    return worse
