"""A TCP proxy between a test's Redis client and the tier's Redis that cuts, once, the
connection carrying a marker: as a connection cut or a killed container would, at the
one moment a test needs (F9, F25, the acknowledgement riding on a pop)."""

from __future__ import annotations

import contextlib
import socket
import threading
from urllib.parse import urlsplit, urlunsplit


class CuttingProxy:
    """A TCP proxy to ``upstream`` that cuts, once, the connection whose reply carries
    ``marker`` (``on_request``: the reply to the request that carries it, F25; ``drop``:
    the request that carries it, before Redis has it whole)."""

    def __init__(
        self,
        upstream: tuple[str, int],
        marker: bytes,
        on_request: bool = False,
        drop: bool = False,
    ) -> None:
        self.upstream = upstream
        self.marker = marker
        self.on_request = on_request
        self.drop = drop
        #: Set once a reply carrying :attr:`marker` was dropped and its connection cut.
        self.cut = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._sockets: list[socket.socket] = [self._listener]
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    @property
    def port(self) -> int:
        return int(self._listener.getsockname()[1])

    def url_through(self, url: str) -> str:
        """``url`` (a ``redis://`` URL, credentials kept) with this proxy as its host."""
        parts = urlsplit(url)
        credentials = parts.netloc.rpartition("@")[0]
        return urlunsplit(parts._replace(netloc=f"{credentials}@127.0.0.1:{self.port}"))

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            server = socket.create_connection(self.upstream)
            self._sockets += [client, server]
            armed = threading.Event()  # this connection's request carried the marker
            for source, sink, scan in ((client, server, False), (server, client, True)):
                thread = threading.Thread(
                    target=self._pump,
                    args=(source, sink, scan, armed, client, server),
                    daemon=True,
                )
                self._threads.append(thread)
                thread.start()

    def _pump(
        self,
        source: socket.socket,
        sink: socket.socket,
        scan: bool,
        armed: threading.Event,
        *pair: socket.socket,
    ) -> None:
        tail = b""
        while True:
            try:
                data = source.recv(65536)
            except OSError:
                data = b""
            seen = tail + data
            if self.drop and not scan and self.marker in seen and not self.cut.is_set():
                self.cut.set()  # what came before the marker is an incomplete command
                _cut(*pair)
                return
            if self.on_request and not scan and self.marker in seen:
                armed.set()  # before the request goes on: its reply cannot come first
            carried = armed.is_set() if self.on_request else self.marker in seen and not self.drop
            if scan and data and carried and not self.cut.is_set():  # drop it, cut both
                self.cut.set()
                _cut(*pair)
                return
            if not data:
                _cut(*pair)
                return
            try:
                sink.sendall(data)
            except OSError:
                return
            tail = seen[-len(self.marker) :]

    def close(self) -> None:
        _cut(*self._sockets)
        for thread in self._threads:
            thread.join(timeout=5)


def _cut(*sockets: socket.socket) -> None:
    """Close ``sockets`` now: a peer sees the end at once, a thread reading one returns."""
    for sock in sockets:
        with contextlib.suppress(OSError):  # not connected, or closed already
            sock.shutdown(socket.SHUT_RDWR)  # close() alone waits for a reading thread
        sock.close()
