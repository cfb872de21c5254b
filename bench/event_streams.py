"""Many server-sent-event streams held by the harness: asyncio on raw sockets, in one thread.

An open dashboard's stream is an idle socket nearly all the time. A thread per stream would make
the harness, not the server, the thing measured at 5,000 streams; one event loop holds them for a
few kilobytes each while the scenario's own steps (writes, wrk, ``/proc`` readings) go on in the
calling thread. Each stream keeps when each of its ``stats`` events arrived (``time.monotonic()``,
taken as the event's last line is read) and its id. A stream that ``follows`` comes back when the
server ends it, after the ``retry:`` it was sent and with ``Last-Event-ID``, as the dashboard's
``live.js`` does; every request it makes is kept as a :class:`Visit`.

HTTP/1.1 as a browser speaks it (the body is chunked); the parsing is only what these answers
need. Streams are closed with a reset (``SO_LINGER`` 0), so the server's next write to one fails
at once rather than being acknowledged by a half-closed socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import socket
import struct
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field

#: Streams being opened at once: enough to keep the server busy, few enough to stay far from
#: its listen backlog.
OPENING = 64


@dataclass
class Visit:
    """One request of a stream. Times are ``time.monotonic()``."""

    sent: float
    status: int = 0  # 0: no answer (the error says why)
    error: str = ""
    ended: float | None = None  # the server ended its answer or it failed; None: open, or closed here
    events: int = 0  # stats events on this request


@dataclass(eq=False)
class Stream:
    path: str
    token: str
    tenant: str
    follow: bool = False
    visits: list[Visit] = field(default_factory=list)
    events: list[tuple[float, str]] = field(default_factory=list)  # (arrival, id), every visit's
    comments: int = 0
    retry_ms: int = 3000  # the last ``retry:`` the server sent
    _task: asyncio.Task | None = field(default=None, init=False, repr=False)
    _writer: asyncio.StreamWriter | None = field(default=None, init=False, repr=False)
    _closing: bool = field(default=False, init=False, repr=False)

    @property
    def status(self) -> int:
        return self.visits[-1].status if self.visits else 0

    @property
    def open(self) -> bool:
        """Answered 200 and its first event came."""
        return self.status == 200 and bool(self.events) and self.visits[-1].ended is None


class Holder:
    """An event loop in a thread of its own, holding streams to one server."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="event-streams", daemon=True)
        self._thread.start()

    @classmethod
    def to(cls, base_url: str) -> Holder:
        """A holder for the server at ``http://host:port``."""
        host, port = base_url.removeprefix("http://").rsplit(":", 1)
        return cls(host, int(port))

    def open(self, streams: list[Stream], timeout: float = 120) -> None:
        """Open ``streams``, ``OPENING`` at a time; return when each has its first event or its
        refusal (or ``timeout`` passed). They stay open, read by the loop, until :meth:`close`."""
        asyncio.run_coroutine_threadsafe(self._open(streams, timeout), self._loop).result(timeout + 10)

    def close(self, streams: list[Stream]) -> None:
        asyncio.run_coroutine_threadsafe(self._close(streams), self._loop).result(60)

    def stop(self) -> None:
        def cancel_all() -> None:
            for task in asyncio.all_tasks(self._loop):
                task.cancel()
            self._loop.call_soon(self._loop.stop)

        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(cancel_all)
            self._thread.join(10)
        if not self._thread.is_alive():
            self._loop.close()

    async def _open(self, streams: list[Stream], timeout: float) -> None:
        gate = asyncio.Semaphore(OPENING)
        ready = [self._loop.create_future() for _ in streams]
        for stream, future in zip(streams, ready):
            stream._task = self._loop.create_task(self._run(stream, gate, future))
        await asyncio.wait(ready, timeout=timeout)

    async def _close(self, streams: list[Stream]) -> None:
        for stream in streams:
            stream._closing = True
            if stream._writer is not None:
                _reset(stream._writer)
            if stream._task is not None:
                stream._task.cancel()
        tasks = [s._task for s in streams if s._task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=10)

    async def _run(self, stream: Stream, gate: asyncio.Semaphore, ready: asyncio.Future) -> None:
        """The stream's requests, one after another while it ``follows``; ``ready`` is set (and
        the gate passed on) at its first event, or when its first request ends without one."""

        def opened() -> None:
            if not ready.done():
                ready.set_result(None)
                gate.release()

        try:
            await gate.acquire()
            try:
                while True:
                    visit = Visit(time.monotonic())
                    stream.visits.append(visit)
                    try:
                        await self._visit(stream, visit, opened)
                    except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                        visit.error = type(exc).__name__
                        visit.ended = time.monotonic()
                    finally:
                        if stream._writer is not None:
                            _reset(stream._writer)
                            stream._writer = None
                    opened()
                    if not stream.follow or stream._closing or visit.status != 200 or visit.error:
                        return
                    await asyncio.sleep(stream.retry_ms / 1000)
            finally:
                opened()
        except asyncio.CancelledError:
            pass

    async def _visit(self, stream: Stream, visit: Visit, opened: Callable[[], None]) -> None:
        """One request, read until the server ends its answer (``visit.ended``)."""
        reader, writer = await asyncio.open_connection(self.host, self.port)
        stream._writer = writer
        request = (f"GET {stream.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                   f"Authorization: Bearer {stream.token}\r\nAccept: text/event-stream\r\n")
        if stream.events:
            request += f"Last-Event-ID: {stream.events[-1][1]}\r\n"
        writer.write((request + "\r\n").encode())
        status_line = await reader.readline()
        visit.status = int(status_line.split()[1]) if status_line else 0
        chunked = False
        while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            if name.strip().lower() == "transfer-encoding" and "chunked" in value.lower():
                chunked = True
        if visit.status == 200:
            async for block in _blocks(reader, chunked):
                fields = dict(_fields(block))
                if fields.get("retry", "").isdigit():
                    stream.retry_ms = int(fields["retry"])
                if "comment" in fields:
                    stream.comments += 1
                if fields.get("event") == "stats":
                    stream.events.append((time.monotonic(), fields.get("id", "")))
                    visit.events += 1
                    opened()
        visit.ended = time.monotonic()


async def _blocks(reader: asyncio.StreamReader, chunked: bool) -> AsyncIterator[bytes]:
    """The body's event blocks (separated by a blank line), until the server ends the body."""
    buffer = b""
    async for data in (_chunks(reader) if chunked else _until_closed(reader)):
        buffer += data
        while (end := buffer.find(b"\n\n")) >= 0:
            yield buffer[:end]
            buffer = buffer[end + 2:]


async def _chunks(reader: asyncio.StreamReader) -> AsyncIterator[bytes]:
    while True:
        size_line = await reader.readline()
        if not size_line:
            return
        size = int(size_line.split(b";")[0].strip(), 16)
        if size == 0:
            await reader.readline()
            return
        yield (await reader.readexactly(size + 2))[:-2]


async def _until_closed(reader: asyncio.StreamReader) -> AsyncIterator[bytes]:
    while data := await reader.read(65536):
        yield data


def _fields(block: bytes) -> Iterator[tuple[str, str]]:
    for line in block.decode().split("\n"):
        name, _, value = line.partition(":")
        yield (name or "comment"), value.removeprefix(" ")


def _reset(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    with contextlib.suppress(OSError, AttributeError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


@contextlib.contextmanager
def open_files(needed: int) -> Iterator[int]:
    """This process's open-files soft limit raised to its hard limit for the block (servers
    started meanwhile inherit it); the limit in force, which may still be below ``needed``."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    raised = max(soft, needed) if hard == resource.RLIM_INFINITY else hard
    resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
    try:
        yield raised
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
