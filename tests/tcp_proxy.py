"""A TCP proxy for failure tests: forwards bytes both ways until told to cut a connection at a
chosen moment, the way a network or a load balancer loses a connection, or to cut them all and
refuse new ones until healed, the way a network partition does."""

from __future__ import annotations

import socket
import threading


class Proxy:
    """Listens on a free loopback port and forwards each connection to ``target``.

    ``lose_reply_after(marker)``: the next time a client sends bytes containing ``marker``
    (e.g. PostgreSQL's ``COMMIT`` query), they are forwarded to the server, and the
    connection is then cut before the server's reply reaches the client: the server did the
    work, the client never hears of it.

    ``cut()``: every connection carried is closed, and each new one is closed at once until
    ``heal()``: a partition, which both ends see as connections closed."""

    def __init__(self, target: tuple[str, int]):
        self.target = target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._marker: bytes | None = None
        self._cut = threading.Event()
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self.open = True
        threading.Thread(target=self._accept, daemon=True).start()

    def lose_reply_after(self, marker: bytes) -> threading.Event:
        """Arm the cut; the event is set once a connection was cut."""
        with self._lock:
            self._marker = marker
            self._cut.clear()
        return self._cut

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                try:
                    if not self.open:
                        raise ConnectionRefusedError
                    server = socket.create_connection(self.target)
                except OSError:
                    self._close(client)
                    continue
                self._sockets += [client, server]
            pair = {"cut": False}
            threading.Thread(target=self._pump, args=(client, server, pair, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, pair, False), daemon=True).start()

    def cut(self) -> None:
        with self._lock:
            self.open = False
            carried, self._sockets = self._sockets, []
        self._close(*carried)

    def heal(self) -> None:
        with self._lock:
            self.open = True

    def _pump(self, source: socket.socket, sink: socket.socket, pair: dict, from_client: bool) -> None:
        try:
            while data := source.recv(65536):
                if pair["cut"]:
                    break
                if from_client:
                    with self._lock:
                        cut = self._marker is not None and self._marker in data
                        if cut:
                            self._marker = None
                    if cut:
                        pair["cut"] = True  # the server's reply is dropped from here on
                        sink.sendall(data)
                        threading.Timer(0.5, self._close, args=(source, sink)).start()
                        self._cut.set()
                        continue
                sink.sendall(data)
        except OSError:
            pass
        finally:
            if not pair["cut"]:
                self._close(source, sink)

    @staticmethod
    def _close(*sockets: socket.socket) -> None:
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def stop(self) -> None:
        self._listener.close()
        self._close(*self._sockets)
