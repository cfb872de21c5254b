"""Free loopback ports, for the servers the tests and the benchmark start of their own.

A port the kernel hands out with ``bind(0)`` comes from the ephemeral range, the same range it
draws every outgoing connection's local port from. Between choosing such a port and a server
binding it, any client in any test worker can take it, and the server then fails to start. So
ports come from 10000–19999, whose cluster bus ports (port + 10000) stay below the ephemeral range
too; each pytest worker draws from its own slice of it, and a process never hands out the same
port twice.

It imports nothing from pytest or the test fixtures, so ``bench`` (``python -m bench``) uses it too.
"""

from __future__ import annotations

import contextlib
import os
import random
import socket

LOWEST = 10000
BUS_OFFSET = 10000  # Redis Cluster's bus port is the client port + 10000
_handed_out: set[int] = set()


def _ephemeral_start() -> int:
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/sys/net/ipv4/ip_local_port_range") as limits:
            return int(limits.read().split()[0])
    return 32768


def _slice() -> range:
    """This process's share of the ports: one slice per xdist worker (gw0, gw1, …)."""
    highest = min(LOWEST + BUS_OFFSET, _ephemeral_start() - BUS_OFFSET)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    index = int(worker[2:]) if worker.startswith("gw") and worker[2:].isdigit() else 0
    width = (highest - LOWEST) // max(workers, 1)
    start = LOWEST + (index % max(workers, 1)) * width
    return range(start, start + width)


def _bindable(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(bus: bool = False) -> int:
    """A free loopback port below the ephemeral range; with ``bus``, port + 10000 is free too."""
    candidates = _slice()
    if len(candidates) < 16:  # an unusual ephemeral range leaves no room below it: ask the kernel
        return _kernel_port(bus)
    for _ in range(1000):
        port = random.choice(candidates)
        if port in _handed_out or not _bindable(port):
            continue
        if bus and (port + BUS_OFFSET in _handed_out or not _bindable(port + BUS_OFFSET)):
            continue
        _handed_out.add(port)
        if bus:
            _handed_out.add(port + BUS_OFFSET)
        return port
    raise RuntimeError(f"no free loopback port in {candidates.start}–{candidates.stop - 1}")


def _kernel_port(bus: bool) -> int:
    while True:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if not bus or (port + BUS_OFFSET < 65536 and _bindable(port + BUS_OFFSET)):
            return port
