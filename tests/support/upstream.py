"""A real HTTP upstream on 127.0.0.1 for the egress and bounded-read tests.

Paths: ``/ok`` answers JSON; ``/redirect?to=URL&status=N`` redirects; ``/loop``
redirects to itself; ``/endless`` streams chunks until the client goes away;
``/huge`` declares a body of 10**12 bytes and sends none; ``/short`` declares 1000
bytes, sends 10 and closes. Every request is recorded (path, Host header).
"""

from __future__ import annotations

import socket
import ssl
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

#: Bytes per chunk of ``/endless``.
CHUNK = 16 * 1024


class UpstreamServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        #: ``(path, Host header)`` of every request, in order.
        self.requests: list[tuple[str, str]] = []
        #: Bytes ``/endless`` wrote before the client went away.
        self.streamed = 0
        #: Set when a stream ended because the client closed the connection.
        self.client_left = threading.Event()
        #: TLS server names (SNI) clients asked for.
        self.sni: list[str | None] = []
        super().__init__(("127.0.0.1", 0), UpstreamHandler)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def paths(self) -> list[str]:
        return [path for path, _ in self.requests]

    def use_tls(self, cert: str, key: str) -> None:
        """Serve https with ``cert``, recording each client's SNI."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        context.sni_callback = self._record_sni
        self.socket = context.wrap_socket(self.socket, server_side=True)

    def _record_sni(self, _sock: ssl.SSLObject, name: str | None, _ctx: ssl.SSLContext) -> None:
        self.sni.append(name)


class UpstreamHandler(BaseHTTPRequestHandler):
    server: UpstreamServer
    protocol_version = "HTTP/1.1"

    def _send(self, status: int, body: bytes = b"", **headers: str) -> None:
        self.send_response(status)
        for name, value in {"Content-Length": str(len(body)), **headers}.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        self.wfile.write(body)

    def _answer(self) -> None:
        self.server.requests.append((self.path, self.headers.get("Host", "")))
        self.rfile.read(int(self.headers.get("Content-Length", "0")))  # keep-alive stays in step
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path == "/ok":
            self._send(200, b'{"ok": true}', Content_Type="application/json")
        elif url.path == "/redirect":
            self._send(int(query.get("status", "302")), Location=query["to"])
        elif url.path == "/loop":
            self._send(302, Location="/loop")
        elif url.path == "/endless":
            self._endless()
        elif url.path == "/huge":
            self.send_response(200)
            self.send_header("Content-Length", str(10**12))
            self.end_headers()
            self.wfile.flush()
            self.server.client_left.wait(timeout=30)
        elif url.path == "/short":
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b"0123456789")
            self.close_connection = True
        else:
            self._send(404, b"no such path")

    def _endless(self) -> None:
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        frame = f"{CHUNK:x}\r\n".encode() + b"x" * CHUNK + b"\r\n"
        try:
            while True:
                self.wfile.write(frame)
                self.server.streamed += CHUNK
        except OSError:
            self.server.client_left.set()
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_HEAD = _answer

    def log_message(self, *args: Any) -> None:
        pass


@contextmanager
def upstream(cert: str | None = None, key: str | None = None) -> Iterator[UpstreamServer]:
    """A running :class:`UpstreamServer` (https when ``cert``/``key`` are given)."""
    server = UpstreamServer()
    if cert and key:
        server.use_tls(cert, key)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.client_left.set()
        server.shutdown()
        server.server_close()


class FakeDNS:
    """A ``socket.getaddrinfo`` answering ``names`` (name -> addresses); from the second
    lookup of a name on, ``then`` answers instead when it has the name (DNS rebinding).
    Other names go to the real resolver; :attr:`lookups` counts lookups per fake name."""

    def __init__(
        self, names: dict[str, list[str]], then: dict[str, list[str]] | None = None
    ) -> None:
        self.names, self.then = names, then or {}
        self.lookups: Counter[str] = Counter()
        self.real = socket.getaddrinfo

    def __call__(self, host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in self.names:
            return self.real(host, port, *args, **kwargs)
        self.lookups[host] += 1
        answers = self.names[host]
        if self.lookups[host] > 1:
            answers = self.then.get(host, answers)
        return [
            (socket.AF_INET6, socket.SOCK_STREAM, 6, "", (ip, int(port), 0, 0))
            if ":" in ip
            else (socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, int(port)))
            for ip in answers
        ]
