"""A dashboard's stream reader for tests: the mega-stats stream read in a thread, reconnected
when it ends or fails, as ``static/js/live.js`` does (the token in ``Authorization``, the last
event's id as ``Last-Event-ID``, the server's ``retry:`` as the delay), with every event and
every connection attempt recorded on the monotonic clock, so failure tests can judge them.
"""

from __future__ import annotations

import http.client
import socket
import threading
import time
from dataclasses import dataclass

STREAM = "/api/v1/appointments/mega-stats/stream"


@dataclass(frozen=True)
class Event:
    at: float  # time.monotonic() when the event's blank line arrived
    id: str
    data: str


@dataclass(frozen=True)
class Attempt:
    at: float
    status: int | None  # None: no answer (refused, cut, timed out)
    ended: float | None = None  # when the stream (or the failed attempt) ended
    why: str = ""


class LiveStream:
    """One dashboard's stream, read from ``start()`` until ``stop()``.

    ``retry`` starts at ``default_retry`` and follows every ``retry:`` the server sends; a stream
    silent for ``quiet`` seconds (no event, no keep-alive) counts as dead, as the dashboard's
    quiet limit does (give the server's keep-alive a few times over)."""

    def __init__(self, port: int, token: str, path: str = STREAM, default_retry: float = 1.0,
                 quiet: float = 5.0):
        self.port, self.token, self.path, self.quiet = port, token, path, quiet
        self.retry = default_retry
        self.events: list[Event] = []
        self.attempts: list[Attempt] = []
        self._stop = threading.Event()
        self._sock: socket.socket | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def last(self) -> Event | None:
        return self.events[-1] if self.events else None

    @property
    def local_port(self) -> int | None:
        """The client side's port of the connection now open, if any (to find its worker)."""
        sock = self._sock
        try:
            return sock.getsockname()[1] if sock else None
        except OSError:
            return None

    def live(self) -> bool:
        """Whether the latest attempt is a stream that is still open."""
        return bool(self.attempts) and self.attempts[-1].status == 200 and self.attempts[-1].ended is None

    def start(self) -> LiveStream:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._shut()
        self._thread.join(10)

    def _shut(self) -> None:
        sock = self._sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)  # wakes a blocked read, which close() would not
            except OSError:
                pass

    def _run(self) -> None:
        while not self._stop.is_set():
            self._connect_once()
            self._stop.wait(self.retry)

    def _connect_once(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "text/event-stream"}
        if self.last is not None:
            headers["Last-Event-ID"] = self.last.id
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.quiet)
        started, status, why = time.monotonic(), None, "ended"
        index = len(self.attempts)
        self.attempts.append(Attempt(started, None))
        try:
            conn.connect()
            self._sock = conn.sock
            if self._stop.is_set():
                return
            conn.request("GET", self.path, headers=headers)
            response = conn.getresponse()
            status = response.status
            self.attempts[index] = Attempt(started, status)
            if status == 200:
                self._read(response)
            else:
                response.read()
                why = f"refused {status}"
        except (OSError, http.client.HTTPException, ValueError) as exc:
            why = type(exc).__name__
        finally:
            self._sock = None
            conn.close()
            self.attempts[index] = Attempt(started, status, time.monotonic(), why)

    def _read(self, response: http.client.HTTPResponse) -> None:
        """Server-sent events as the HTML standard parses them (the fields this stream uses)."""
        name, event_id, data = "message", None, []
        while True:
            line = response.readline()
            if not line:
                return
            line = line.decode().rstrip("\r\n")
            if line == "":
                if name == "stats" and event_id is not None and data:
                    self.events.append(Event(time.monotonic(), event_id, "\n".join(data)))
                name, data = "message", []
                continue
            if line.startswith(":"):
                continue
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "event":
                name = value
            elif field == "id":
                event_id = value
            elif field == "data":
                data.append(value)
            elif field == "retry" and value.isdigit():
                self.retry = int(value) / 1000
