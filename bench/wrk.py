"""Running wrk and reading its report.

wrk is the load generator because it is a real, well-known one: the numbers can be reproduced
by anyone with the command line printed in the results, and Python's own overhead stays out of
the client side. This module only builds that command line and parses wrk's text output.
"""

from __future__ import annotations

import math
import re
import shutil
import signal
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path

LUA_SCRIPT = Path(__file__).with_name("requests.lua")

_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
_PERCENTILE = re.compile(r"^\s*(50|75|90|99)%\s+([\d.]+)(us|ms|s|m|h)\s*$", re.M)
_RATE = re.compile(r"^Requests/sec:\s+([\d.]+)", re.M)
_TOTAL = re.compile(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m|h)", re.M)
_NON_2XX = re.compile(r"^\s*Non-2xx or 3xx responses:\s+(\d+)", re.M)
_SOCKET = re.compile(
    r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", re.M
)
_XCACHE = re.compile(r"^xcache HIT=(\d+) MISS=(\d+) BYPASS=(\d+) OTHER=(\d+)$", re.M)


class WrkMissing(RuntimeError):
    """wrk is not installed; the message says how to get it."""


@dataclass
class WrkResult:
    """What one wrk run measured. Latencies in milliseconds."""

    requests: int
    seconds: float
    rate: float
    p50: float
    p99: float
    non_2xx: int = 0
    socket_errors: dict[str, int] = field(default_factory=dict)
    xcache: dict[str, int] | None = None

    @property
    def failed(self) -> int:
        """Requests a client saw fail: a non-2xx answer or any socket error."""
        return self.non_2xx + sum(self.socket_errors.values())


def wrk_path() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise WrkMissing("wrk not installed: apt-get install wrk")
    return path


def version() -> str:
    out = subprocess.run([wrk_path(), "--version"], capture_output=True, text=True, timeout=10)
    return (out.stdout + out.stderr).splitlines()[0].strip()


def command(
    url: str,
    seconds: float,
    connections: int,
    threads: int = 1,
    token: str | None = None,
    rotate: Path | None = None,
    once: bool = False,
    timeout_s: float = 5.0,
    headers: dict[str, str] | None = None,
) -> list[str]:
    """The wrk command line. ``rotate`` is a file of ``path<TAB>token`` lines sent in turn by
    ``requests.lua``, which also counts X-Cache answers; ``once`` sends each line once."""
    threads = max(1, min(threads, connections))
    args = [
        wrk_path(), f"-t{threads}", f"-c{connections}", f"-d{_duration(seconds)}",
        "--timeout", _duration(timeout_s), "--latency",
    ]
    if token:
        args += ["-H", f"Authorization: Bearer {token}"]
    for name, value in (headers or {}).items():
        args += ["-H", f"{name}: {value}"]
    if rotate is not None:
        args += ["-s", str(LUA_SCRIPT)]
    args.append(url)
    if rotate is not None:
        args += ["--", str(rotate), "once" if once else "loop", str(threads)]
    return args


def run(args: list[str], seconds: float) -> WrkResult:
    """Run a command from :func:`command`, bounded by its own duration plus a margin.

    With ``once``, wrk would still wait out its whole duration after every line was sent, so
    it is interrupted (SIGINT: it then reports as usual) when each thread has said it is done.
    """
    threads = int(next(a for a in args if a.startswith("-t"))[2:])
    once = "once" in args[args.index("--"):] if "--" in args else False
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    killer = threading.Timer(seconds + 30, process.kill)
    killer.start()
    try:
        lines, done = [], 0
        for line in process.stdout:
            lines.append(line)
            if once and line.startswith("thread-done"):
                done += 1
                if done == threads:
                    process.send_signal(signal.SIGINT)
        errors = process.stderr.read()
        process.wait()
    finally:
        killer.cancel()
    text = "".join(lines)
    if process.returncode != 0:
        raise RuntimeError(f"wrk failed ({process.returncode}): {errors.strip() or text.strip()}")
    return parse(text)


def parse(text: str) -> WrkResult:
    """Parse wrk's report (run with ``--latency``)."""
    rate = _RATE.search(text)
    total = _TOTAL.search(text)
    percentiles = {m.group(1): float(m.group(2)) * _UNITS[m.group(3)] for m in _PERCENTILE.finditer(text)}
    if not rate or not total or "50" not in percentiles or "99" not in percentiles:
        raise ValueError(f"unexpected wrk output:\n{text}")
    result = WrkResult(
        requests=int(total.group(1)),
        seconds=float(total.group(2)) * _UNITS[total.group(3)] / 1000.0,
        rate=float(rate.group(1)),
        p50=percentiles["50"],
        p99=percentiles["99"],
    )
    if non_2xx := _NON_2XX.search(text):
        result.non_2xx = int(non_2xx.group(1))
    if socket := _SOCKET.search(text):
        result.socket_errors = dict(zip(("connect", "read", "write", "timeout"), map(int, socket.groups())))
    if xcache := _XCACHE.search(text):
        result.xcache = dict(zip(("HIT", "MISS", "BYPASS", "OTHER"), map(int, xcache.groups())))
    return result


def _duration(seconds: float) -> str:
    """wrk takes whole seconds (or minutes, hours), one at least."""
    return f"{max(1, math.ceil(seconds))}s"
