"""Egress policy: may this process connect to this URL?

Tasks fetch URLs that clients chose, so without a policy a task can be turned inward
(SSRF): ``http://mailsink:8025/messages`` (the operators' mailbox),
``http://flower:5555/metrics``, cloud metadata at ``169.254.169.254``, anything on
the deployment's network. A URL is refused (:class:`~celeryref.errors.EgressRefused`,
permanent: dead-lettered with the reason) when

* its scheme is not http or https;
* its host is one of the deployment's service names (:data:`SERVICE_NAMES`);
* ANY address its host resolves to is not public unicast (:func:`address_refusal`:
  loopback, private/ULA, link-local, multicast, unspecified, reserved, not globally
  routable, and the same inside IPv4-mapped, 6to4 and NAT64 addresses).

Hosts a deployment does call are listed in ``EGRESS_ALLOWED_HOSTS`` (``host`` for any
port, ``host:port`` for one): they skip the name and address checks.

Checking and connecting are one step (DNS rebinding): :func:`session` gives a
``requests`` session whose connections resolve the host once, check every address,
and connect to a checked one, while the Host header, TLS SNI and certificate
verification stay on the name. It follows no proxy from the environment. Redirects are
followed by the caller, each hop checked again (:mod:`celeryref.adapters.http`).
"""

from __future__ import annotations

import fnmatch
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
from urllib3.util.connection import allowed_gai_family, create_connection

from celeryref.errors import EgressRefused
from celeryref.settings import settings

#: The deployment's own compose service names (fnmatch patterns, matched against hosts
#: without a dot): refused before any DNS lookup, unless allowlisted.
SERVICE_NAMES = (
    "redis", "postgres", "migrate", "app", "worker", "worker-*", "beat", "flower", "mailsink",
)  # fmt: skip
#: Schemes a task may fetch.
SCHEMES = frozenset({"http", "https"})

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
#: RFC 6052 NAT64 prefix: the low 32 bits are the IPv4 address reached.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
#: (test, reason) in order; the first that holds names why an address is refused.
_REFUSALS: tuple[tuple[str, str], ...] = (
    ("is_unspecified", "unspecified (reaches this host)"),
    ("is_loopback", "loopback"),
    ("is_link_local", "link-local (incl. cloud metadata 169.254.169.254)"),
    ("is_multicast", "multicast"),
    ("is_reserved", "reserved"),
    ("is_private", "private (RFC 1918, ULA or another non-public range)"),
    ("is_site_local", "site-local"),
)


def address_refusal(ip: IPAddress) -> str | None:
    """Why connecting to ``ip`` is refused; ``None`` for a public unicast address."""
    if isinstance(ip, ipaddress.IPv6Address):
        inner, form = ip.ipv4_mapped, "IPv4-mapped"
        if inner is None:
            inner, form = ip.sixtofour, "6to4"
        if inner is None and ip in _NAT64:
            inner, form = ipaddress.IPv4Address(int(ip) & 0xFFFF_FFFF), "NAT64"
        if inner is not None:
            reason = address_refusal(inner)
            return None if reason is None else f"{form} {inner}: {reason}"
    for test, reason in _REFUSALS:
        if getattr(ip, test, False):
            return reason
    return None if ip.is_global else "not globally routable"


def _normal_host(host: str) -> str:
    return host.strip().strip("[]").rstrip(".").lower()


def _is_service_name(host: str) -> bool:
    return "." not in host and any(fnmatch.fnmatchcase(host, pattern) for pattern in SERVICE_NAMES)


@dataclass(frozen=True)
class EgressPolicy:
    """Where this process may connect; :meth:`from_settings` for the deployment's."""

    #: ``(host, port)`` pairs that skip the checks; port ``None`` = any port.
    allowed: frozenset[tuple[str, int | None]] = frozenset()

    @classmethod
    def from_entries(cls, entries: Iterable[str]) -> EgressPolicy:
        """From ``host`` / ``host:port`` / ``[v6]:port`` strings (``EGRESS_ALLOWED_HOSTS``)."""
        allowed = set()
        for entry in entries:
            parts = urlsplit(f"//{entry.strip()}")
            if not parts.hostname:
                raise ValueError(f"not a host or host:port: {entry!r}")
            allowed.add((_normal_host(parts.hostname), parts.port))
        return cls(frozenset(allowed))

    @classmethod
    def from_settings(cls) -> EgressPolicy:
        """The policy ``EGRESS_ALLOWED_HOSTS`` describes."""
        return cls.from_entries(settings.egress_allowed_hosts)

    def allows(self, host: str, port: int) -> bool:
        """Whether ``host:port`` is allowlisted (skips every check)."""
        host = _normal_host(host)
        return (host, None) in self.allowed or (host, port) in self.allowed

    def check_url(self, url: str) -> tuple[str, int]:
        """``(host, port)`` of ``url``, or :class:`EgressRefused` for what the URL alone
        shows: scheme, a service name, a refused IP literal. No DNS lookup: addresses
        of names are checked when connecting (:meth:`resolve`)."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise EgressRefused(url, f"not a valid URL ({exc})") from None
        if parts.scheme.lower() not in SCHEMES:
            raise EgressRefused(url, f"scheme {parts.scheme!r} is not http or https")
        if not parts.hostname:
            raise EgressRefused(url, "the URL names no host")
        host = _normal_host(parts.hostname)
        port = port or (443 if parts.scheme.lower() == "https" else 80)
        if not self.allows(host, port):
            self._check_name(host)
        return host, port

    def resolve(self, host: str, port: int) -> list[str]:
        """The addresses to connect to for ``host:port``, from ONE lookup; every one
        checked (unless allowlisted), :class:`EgressRefused` if any is refused."""
        host = _normal_host(host)
        allowlisted = self.allows(host, port)
        if not allowlisted:
            self._check_name(host)
        found = socket.getaddrinfo(host, port, allowed_gai_family(), socket.SOCK_STREAM)
        addresses = list(dict.fromkeys(str(info[4][0]) for info in found))
        for address in [] if allowlisted else addresses:
            ip = ipaddress.ip_address(address.partition("%")[0])
            if reason := address_refusal(ip):
                raise EgressRefused(host, f"it resolves to {ip}, {reason}")
        return addresses

    def _check_name(self, host: str) -> None:
        if _is_service_name(host):
            raise EgressRefused(host, "a service of this deployment")
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            return
        if reason := address_refusal(ip):
            raise EgressRefused(host, reason)


def _connect_checked(conn: HTTPConnection, policy: EgressPolicy) -> socket.socket:
    """urllib3's ``_new_conn`` with the lookup checked: connect to a checked address."""
    try:
        addresses = policy.resolve(conn.host, conn.port)
    except socket.gaierror as exc:
        raise NameResolutionError(conn.host, conn, exc) from exc
    error: Exception = NewConnectionError(conn, f"no address for {conn.host}")
    for ip in addresses:
        try:
            return create_connection(
                (ip, conn.port),
                conn.timeout,
                source_address=conn.source_address,
                socket_options=conn.socket_options,
            )
        except TimeoutError as exc:
            error = ConnectTimeoutError(conn, f"connecting to {conn.host} ({ip}) timed out")
            error.__cause__ = exc
        except OSError as exc:
            error = NewConnectionError(conn, f"cannot connect to {conn.host} ({ip}): {exc}")
            error.__cause__ = exc
    raise error


class _CheckedHTTPConnection(HTTPConnection):
    policy: ClassVar[EgressPolicy]

    def _new_conn(self) -> socket.socket:
        return _connect_checked(self, self.policy)


class _CheckedHTTPSConnection(HTTPSConnection):
    policy: ClassVar[EgressPolicy]

    def _new_conn(self) -> socket.socket:
        return _connect_checked(self, self.policy)


class CheckedAdapter(HTTPAdapter):
    """A transport whose every connection goes through ``policy`` (no retries)."""

    def __init__(self, policy: EgressPolicy) -> None:
        self.policy = policy  # before super().__init__, which builds the pool manager
        super().__init__(max_retries=0)

    def init_poolmanager(
        self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any
    ) -> None:
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)
        bound = {"policy": self.policy}
        http = type("CheckedHTTPConnection", (_CheckedHTTPConnection,), bound)
        https = type("CheckedHTTPSConnection", (_CheckedHTTPSConnection,), bound)
        self.poolmanager.pool_classes_by_scheme = {
            "http": type("CheckedHTTPPool", (HTTPConnectionPool,), {"ConnectionCls": http}),
            "https": type("CheckedHTTPSPool", (HTTPSConnectionPool,), {"ConnectionCls": https}),
        }

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        raise EgressRefused(proxy, "proxies bypass the egress policy")


def session(policy: EgressPolicy) -> requests.Session:
    """A session that connects only where ``policy`` allows (redirects: caller's job)."""
    s = requests.Session()
    s.trust_env = False  # no proxy or .netrc from the environment
    adapter = CheckedAdapter(policy)
    s.mount("http://", adapter)
    s.mount("https://", adapter)
    return s
