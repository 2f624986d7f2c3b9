"""handlers.forwarding: client address and origin checks, believing proxies only when trusted."""

from __future__ import annotations

import ipaddress
from types import SimpleNamespace

import pytest
from tornado.httputil import HTTPHeaders, HTTPServerRequest, RequestStartLine

from services.forwarding import client_address, normalize_origin, origin_allowed, own_origin

LOOPBACK = (ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("::1/128"))
PROXIES = (*LOOPBACK, ipaddress.ip_network("10.0.0.0/8"))


def request(peer: str, headers: dict[str, str] | None = None, *, protocol: str = "http"):
    all_headers = {"Host": "chat.example.com:3000", **(headers or {})}
    connection = SimpleNamespace(context=SimpleNamespace(remote_ip=peer, protocol=protocol))
    return HTTPServerRequest(
        headers=HTTPHeaders(all_headers),
        connection=connection,  # type: ignore[arg-type]
        start_line=RequestStartLine("GET", "/socket.io/", "HTTP/1.1"),
    )


# client_address ----------------------------------------------------------------------------


def test_direct_client_is_its_peer_address():
    assert client_address(request("203.0.113.9"), LOOPBACK) == "203.0.113.9"


def test_forwarded_headers_from_an_untrusted_peer_are_ignored():
    forged = {"X-Forwarded-For": "198.51.100.1", "X-Real-IP": "198.51.100.2"}
    assert client_address(request("203.0.113.9", forged), LOOPBACK) == "203.0.113.9"


def test_trusted_proxy_forwards_the_client_address():
    req = request("127.0.0.1", {"X-Forwarded-For": "203.0.113.9"})
    assert client_address(req, LOOPBACK) == "203.0.113.9"


def test_ipv6_loopback_proxy_is_trusted_by_default():
    req = request("::1", {"X-Forwarded-For": "2001:db8::7"})
    assert client_address(req, LOOPBACK) == "2001:db8::7"


def test_nearest_untrusted_hop_wins_over_what_the_client_claimed():
    # The client sent "X-Forwarded-For: 1.1.1.1"; two of our proxies appended behind it.
    req = request("127.0.0.1", {"X-Forwarded-For": "1.1.1.1, 203.0.113.9, 10.0.0.5"})
    assert client_address(req, PROXIES) == "203.0.113.9"


def test_only_proxies_on_the_list_are_skipped():
    req = request("127.0.0.1", {"X-Forwarded-For": "203.0.113.9, 10.0.0.5"})
    assert client_address(req, LOOPBACK) == "10.0.0.5"


def test_x_real_ip_is_used_when_no_forwarded_for():
    req = request("127.0.0.1", {"X-Real-IP": "203.0.113.9"})
    assert client_address(req, LOOPBACK) == "203.0.113.9"


def test_trusted_peer_without_forwarded_headers_is_the_client():
    assert client_address(request("127.0.0.1"), LOOPBACK) == "127.0.0.1"


def test_empty_trusted_list_believes_no_one():
    req = request("127.0.0.1", {"X-Forwarded-For": "203.0.113.9"})
    assert client_address(req, ()) == "127.0.0.1"


# own_origin --------------------------------------------------------------------------------


def test_own_origin_is_scheme_and_host_of_the_request():
    assert own_origin(request("203.0.113.9"), LOOPBACK) == "http://chat.example.com:3000"


def test_own_origin_over_https():
    req = request("203.0.113.9", {"Host": "chat.example.com"}, protocol="https")
    assert own_origin(req, LOOPBACK) == "https://chat.example.com"


def test_own_origin_drops_default_ports_and_case():
    req = request("203.0.113.9", {"Host": "Chat.Example.com:80"})
    assert own_origin(req, LOOPBACK) == "http://chat.example.com"


def test_trusted_proxy_sets_the_scheme_and_host():
    headers = {"Host": "127.0.0.1:3001", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "a.io"}
    assert own_origin(request("127.0.0.1", headers), LOOPBACK) == "https://a.io"


def test_trusted_proxy_passing_host_with_port_keeps_it():
    headers = {"Host": "chat.example.com:8080", "X-Forwarded-Proto": "http"}
    assert own_origin(request("127.0.0.1", headers), LOOPBACK) == "http://chat.example.com:8080"


def test_untrusted_peer_cannot_change_the_origin():
    headers = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example"}
    assert own_origin(request("203.0.113.9", headers), LOOPBACK) == "http://chat.example.com:3000"


# origin_allowed ----------------------------------------------------------------------------


def test_no_origin_is_allowed():
    assert origin_allowed(request("203.0.113.9"), LOOPBACK, ()) is True


@pytest.mark.parametrize(
    "origin",
    [
        "http://chat.example.com:3000",
        "HTTP://CHAT.EXAMPLE.COM:3000",
        "http://chat.example.com:3000 ",
    ],
)
def test_own_origin_is_allowed(origin):
    assert origin_allowed(request("203.0.113.9", {"Origin": origin}), LOOPBACK, ()) is True


def test_own_origin_with_default_port_written_out_is_allowed():
    req = request(
        "203.0.113.9", {"Host": "chat.example.com", "Origin": "http://chat.example.com:80"}
    )
    assert origin_allowed(req, LOOPBACK, ()) is True


def test_own_origin_behind_tls_proxy_is_allowed():
    headers = {"Host": "chat.example.com", "X-Forwarded-Proto": "https"}
    headers["Origin"] = "https://chat.example.com"
    assert origin_allowed(request("127.0.0.1", headers), LOOPBACK, ()) is True


def test_listed_origins_are_allowed():
    allowed = ("https://app.example.org", "http://localhost:5173")
    for origin in (
        "https://app.example.org",
        "https://APP.example.org:443",
        "http://localhost:5173",
    ):
        req = request("203.0.113.9", {"Origin": origin})
        assert origin_allowed(req, LOOPBACK, allowed) is True


@pytest.mark.parametrize(
    "origin",
    [
        "https://evil.example",
        "http://chat.example.com",  # another port
        "https://chat.example.com:3000",  # another scheme
        "http://chat.example.com.evil.example:3000",
        "http://localhost:5174",
        "null",
        "",
    ],
)
def test_foreign_origin_is_refused(origin):
    allowed = ("http://localhost:5173",)
    assert origin_allowed(request("203.0.113.9", {"Origin": origin}), LOOPBACK, allowed) is False


def test_forged_forwarded_host_from_untrusted_peer_does_not_make_an_origin_ours():
    headers = {"Origin": "https://evil.example", "X-Forwarded-Host": "evil.example"}
    headers["X-Forwarded-Proto"] = "https"
    assert origin_allowed(request("203.0.113.9", headers), LOOPBACK, ()) is False


# normalize_origin --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "normal"),
    [
        ("http://a.test:80", "http://a.test"),
        ("https://a.test:443", "https://a.test"),
        ("http://a.test:443", "http://a.test:443"),
        ("https://a.test:80", "https://a.test:80"),
        ("HTTPS://A.Test", "https://a.test"),
        ("http://[::1]:80", "http://[::1]"),
        ("http://[::1]:3000", "http://[::1]:3000"),
    ],
)
def test_normalize_origin(raw, normal):
    assert normalize_origin(raw) == normal
