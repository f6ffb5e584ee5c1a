"""The egress policy (celeryref/adapters/egress.py): what a URL-taking task may connect to.

Refusals are checked on the policy itself, then end to end through
:func:`celeryref.adapters.http.request` against a real HTTP server on 127.0.0.1
(tests/support/upstream.py), reached as "localhost" when that name is allowlisted and
refused when it is not. Names other than localhost come from a fake resolver.
"""

from __future__ import annotations

import ipaddress
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from celeryref.adapters import egress, http
from celeryref.adapters.egress import EgressPolicy, address_refusal
from celeryref.errors import BadRequestUpstream, EgressRefused, InvalidArguments, classify
from celeryref.submission.catalog import CATALOG, validate_args
from celeryref.tasks.io_intensive import fetch
from tests.support.upstream import FakeDNS, UpstreamServer, upstream

ROOT = Path(__file__).resolve().parents[2]
NOBODY = EgressPolicy()
LOCALHOST = EgressPolicy.from_entries(["localhost"])


@pytest.fixture
def server() -> Iterator[UpstreamServer]:
    with upstream() as s:
        yield s


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> FakeDNS:
    """Fake names: public.test (public), inward.test (public + private), meta.test."""
    fake = FakeDNS(
        {
            "public.test": ["93.184.216.34"],
            "inward.test": ["93.184.216.34", "10.0.0.7"],
            "meta.test": ["169.254.169.254"],
            "v6inward.test": ["2606:4700:4700::1111", "fd00:ec2::254"],
        },
        then={"public.test": ["127.0.0.1"]},
    )
    monkeypatch.setattr("socket.getaddrinfo", fake)
    return fake


REFUSED = [
    ("127.0.0.1", "loopback"),
    ("127.8.9.10", "loopback"),
    ("10.1.2.3", "private"),
    ("172.16.0.1", "private"),
    ("192.168.1.1", "private"),
    ("169.254.169.254", "link-local"),
    ("224.0.0.1", "multicast"),
    ("0.0.0.0", "unspecified"),  # noqa: S104
    ("0.1.2.3", "private"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "reserved"),
    ("100.64.0.1", "not globally routable"),
    ("::1", "loopback"),
    ("::", "unspecified"),
    ("fd00:ec2::254", "private"),
    ("fc00::1", "private"),
    ("fe80::1", "link-local"),
    ("ff02::1", "multicast"),
    ("fec0::1", "site-local"),
    ("::ffff:127.0.0.1", "IPv4-mapped 127.0.0.1: loopback"),
    ("::ffff:10.0.0.1", "IPv4-mapped 10.0.0.1: private"),
    ("::ffff:169.254.169.254", "IPv4-mapped 169.254.169.254: link-local"),
    ("2002:7f00:1::", "6to4 127.0.0.1: loopback"),
    ("64:ff9b::a00:1", "NAT64 10.0.0.1: private"),
    ("::7f00:1", "reserved"),
    ("2001:db8::1", "private"),
]


@pytest.mark.parametrize(("address", "reason"), REFUSED, ids=[a for a, _ in REFUSED])
def test_every_internal_address_class_is_refused(address: str, reason: str) -> None:
    """Loopback, private/ULA, link-local, multicast, unspecified, reserved and their
    IPv4-in-IPv6 forms: refused, v4 and v6, as a URL literal too."""
    assert reason in (address_refusal(ipaddress.ip_address(address)) or "")
    literal = f"[{address}]" if ":" in address else address
    with pytest.raises(EgressRefused, match="refused"):
        NOBODY.check_url(f"http://{literal}:8080/x")


@pytest.mark.parametrize(
    "address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8"]
)
def test_public_unicast_addresses_pass(address: str) -> None:
    assert address_refusal(ipaddress.ip_address(address)) is None


def compose_services() -> list[str]:
    return list(yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"])


@pytest.mark.parametrize("host", [*compose_services(), "worker-io", "MailSink.", "FLOWER"])
def test_the_deployments_own_service_names_are_refused(host: str) -> None:
    """Every compose service (SERVICE_NAMES), whatever its case or a trailing dot."""
    with pytest.raises(EgressRefused, match="a service of this deployment"):
        NOBODY.check_url(f"http://{host}:8025/messages")
    with pytest.raises(EgressRefused, match="a service of this deployment"):
        NOBODY.resolve(host, 80)  # before any DNS lookup


@pytest.mark.parametrize("host", ["app.example.com", "workers.example.org", "redis.io"])
def test_public_names_that_start_like_a_service_are_not_refused_by_name(
    host: str, dns: FakeDNS
) -> None:
    assert NOBODY.check_url(f"https://{host}/") == (host, 443)


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.com/", "gopher://x/"])
def test_only_http_and_https_are_fetched(url: str) -> None:
    with pytest.raises(EgressRefused, match="scheme"):
        NOBODY.check_url(url)


def test_the_allowlist_names_hosts_optionally_with_a_port() -> None:
    """``host`` allows any port, ``host:port`` that port only; allowlisted service names
    (a deployment's own API) pass; everything else is still checked."""
    policy = EgressPolicy.from_entries(["app:8000", "Partner.Example.", "[fd00::5]:8443"])
    assert policy.check_url("http://app:8000/healthz") == ("app", 8000)
    with pytest.raises(EgressRefused):
        policy.check_url("http://app:8001/healthz")
    assert policy.check_url("https://partner.example/x") == ("partner.example", 443)
    assert policy.check_url("https://[fd00::5]:8443/") == ("fd00::5", 8443)
    with pytest.raises(EgressRefused):
        policy.check_url("https://[fd00::5]/")
    with pytest.raises(EgressRefused):
        policy.check_url("http://mailsink:8025/messages")


def test_the_allowlist_comes_from_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from celeryref.settings import load_settings

    local = load_settings({"EGRESS_ALLOWED_HOSTS": " flower:5555 , partner.example"})
    monkeypatch.setattr(egress, "settings", local)
    assert EgressPolicy.from_settings() == EgressPolicy.from_entries(
        ["flower:5555", "partner.example"]
    )


def test_any_refused_address_among_those_a_name_resolves_to_refuses_it(dns: FakeDNS) -> None:
    """Names are resolved and EVERY address checked, v4 and v6."""
    with pytest.raises(EgressRefused, match=r"resolves to 10\.0\.0\.7, private"):
        NOBODY.resolve("inward.test", 80)
    with pytest.raises(EgressRefused, match=r"resolves to fd00:ec2::254, private"):
        NOBODY.resolve("v6inward.test", 443)
    with pytest.raises(EgressRefused, match="link-local"):
        http.request("GET", "http://meta.test/latest/meta-data/", policy=NOBODY)
    assert NOBODY.resolve("public.test", 80) == ["93.184.216.34"]


def test_a_local_server_is_reached_only_under_an_allowlisted_name(server: UpstreamServer) -> None:
    url = f"http://localhost:{server.port}/ok"
    assert http.request("GET", url, policy=LOCALHOST).body == b'{"ok": true}'
    for policy in (NOBODY, EgressPolicy.from_entries([f"localhost:{server.port + 1}"])):
        with pytest.raises(EgressRefused, match=r"resolves to .*loopback"):
            http.request("GET", url, policy=policy)
    assert server.paths() == ["/ok"]  # the refused calls never connected


def test_numeric_tricks_are_resolved_and_refused(server: UpstreamServer) -> None:
    """``2130706433`` and ``127.1`` are 127.0.0.1 to the resolver: refused on connect."""
    for host in ("2130706433", "127.1", "0x7f.1"):
        with pytest.raises(EgressRefused, match="loopback"):
            http.request("GET", f"http://{host}:{server.port}/ok", policy=LOCALHOST)
    assert server.paths() == []


@pytest.mark.parametrize(
    "target",
    ["http://127.0.0.1:{port}/secret", "http://mailsink:8025/messages", "http://[::1]:{port}/"],
)
def test_a_redirect_to_an_internal_address_is_refused(server: UpstreamServer, target: str) -> None:
    """Every hop is checked again: an allowed host cannot bounce the call inward."""
    location = target.format(port=server.port)
    url = f"http://localhost:{server.port}/redirect?to={location}"
    with pytest.raises(EgressRefused):
        http.request("GET", url, policy=LOCALHOST)
    assert [path.partition("?")[0] for path in server.paths()] == ["/redirect"]


def test_allowed_redirects_are_followed_and_loops_stopped(server: UpstreamServer) -> None:
    """A 303 after a POST continues as a GET; more than MAX_REDIRECTS hops is permanent."""
    base = f"http://localhost:{server.port}"
    answer = http.request(
        "POST", f"{base}/redirect?to={base}/ok&status=303", json={"a": 1}, policy=LOCALHOST
    )
    assert (answer.status, answer.url) == (200, f"{base}/ok")
    with pytest.raises(BadRequestUpstream, match="redirects"):
        http.request("GET", f"{base}/loop", policy=LOCALHOST)
    assert server.paths().count("/loop") == http.MAX_REDIRECTS + 1


def test_the_connection_goes_to_the_address_that_was_checked(
    server: UpstreamServer, dns: FakeDNS, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DNS rebinding: public.test answers a public address, then 127.0.0.1. One lookup
    is made, the connection is opened to the checked address (redirected here to the
    local server), and the Host header keeps the name."""
    opened: list[tuple[str, int]] = []

    def connect(address: tuple[str, int], *args: Any, **kwargs: Any) -> Any:
        opened.append(address)
        return real_connect(("127.0.0.1", server.port), *args, **kwargs)

    real_connect = egress.create_connection
    monkeypatch.setattr(egress, "create_connection", connect)
    answer = http.request("GET", f"http://public.test:{server.port}/ok", policy=NOBODY)

    assert answer.status == 200
    assert opened == [("93.184.216.34", server.port)]
    assert dns.lookups["public.test"] == 1
    assert server.requests == [("/ok", f"public.test:{server.port}")]


def self_signed(tmp_path: Path, name: str) -> tuple[str, str]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", f"/CN={name}",
         "-addext", f"subjectAltName=DNS:{name}"],
        check=True, capture_output=True,
    )  # fmt: skip
    return str(cert), str(key)


def test_tls_sni_and_verification_stay_on_the_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Connected to the pinned IP, TLS still sends the name (SNI) and verifies the
    certificate against it: a certificate for another name is refused."""
    cert, key = self_signed(tmp_path, "egress.test")
    monkeypatch.setattr(
        "socket.getaddrinfo", FakeDNS({"egress.test": ["127.0.0.1"], "other.test": ["127.0.0.1"]})
    )
    policy = EgressPolicy.from_entries(["egress.test", "other.test"])
    with upstream(cert, key) as tls, egress.session(policy) as s:
        ok = s.get(f"https://egress.test:{tls.port}/ok", verify=cert, timeout=5)
        with pytest.raises(requests.exceptions.SSLError):
            s.get(f"https://other.test:{tls.port}/ok", verify=cert, timeout=5)
    assert ok.status_code == 200
    assert tls.sni[0] == "egress.test"
    assert tls.requests == [("/ok", f"egress.test:{tls.port}")]


def test_proxies_from_the_environment_are_not_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://10.0.0.1:3128")
    with egress.session(NOBODY) as s:
        assert not s.trust_env
        with pytest.raises(EgressRefused, match="proxies"):
            s.get("http://public.example/", proxies={"http": "http://10.0.0.1:3128"})


def test_the_tasks_refuse_internal_urls_with_a_permanent_error() -> None:
    """fetch_url's logic under the process settings (tests allow 127.0.0.1 only):
    "localhost" is loopback, dead-lettered as egress_refused, never retried."""
    with pytest.raises(EgressRefused, match="loopback") as refused:
        fetch("http://localhost:9/")
    assert (classify(refused.value).transient, classify(refused.value).category) == (
        False,
        "egress_refused",
    )
    assert isinstance(refused.value, InvalidArguments)


@pytest.mark.parametrize(
    ("task", "args"),
    [
        ("fetch_url", {"url": "http://mailsink:8025/messages"}),
        ("call_api", {"url": "http://169.254.169.254/latest/meta-data/"}),
        ("call_api", {"method": "POST", "url": "http://[::ffff:127.0.0.1]:5555/api"}),
    ],
)
def test_the_catalog_refuses_what_the_url_alone_shows(task: str, args: dict[str, Any]) -> None:
    """Submission answers 422 (InvalidArguments) at once for a service name or an
    internal IP literal; names are left to the worker's check on connect."""
    with pytest.raises(InvalidArguments, match=r"url: Value error, egress to .* refused"):
        validate_args(CATALOG[task], args)
    assert validate_args(CATALOG["fetch_url"], {"url": "https://example.com/"})
