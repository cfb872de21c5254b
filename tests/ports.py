"""Free loopback ports, for the servers the tests and the benchmark start of their own.

It imports nothing from pytest or the test fixtures, so ``bench`` (``python -m bench``) uses it too.
"""

from __future__ import annotations

import contextlib
import socket


def free_port(bus: bool = False) -> int:
    """A free loopback port; with ``bus``, port + 10000 (a cluster node's bus port) is free too."""
    while True:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if not bus:
            return port
        if port + 10000 < 65536:
            with socket.socket() as probe, contextlib.suppress(OSError):
                probe.bind(("127.0.0.1", port + 10000))
                return port
