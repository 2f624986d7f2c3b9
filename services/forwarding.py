"""The client's address and the server's own origin, believing forwarded headers only from
trusted proxies (Tornado's `xheaders` would believe them from anyone). For pages, the API and
the Socket.IO transport alike."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from typing import Protocol

from config.settings import IpNetwork


class HTTPServerRequest(Protocol):
    """What these rules read of a request (a `tornado.httputil.HTTPServerRequest`)."""

    @property
    def remote_ip(self) -> str | None: ...

    @property
    def protocol(self) -> str: ...

    @property
    def headers(self) -> Mapping[str, str]: ...


_DEFAULT_PORTS = {"http": "80", "https": "443"}


def _trusted(address: str, trusted: Sequence[IpNetwork]) -> bool:
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    return any(ip in net for net in trusted)


def client_address(request: HTTPServerRequest, trusted: Sequence[IpNetwork]) -> str:
    """The peer, or the nearest untrusted hop of X-Forwarded-For when the peer is a proxy."""
    peer = request.remote_ip or ""
    if not _trusted(peer, trusted):
        return peer
    hops = [h.strip() for h in request.headers.get("X-Forwarded-For", "").split(",") if h.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, trusted):
            return hop
    real = request.headers.get("X-Real-IP", "").strip()
    return real or (hops[0] if hops else peer)


def own_origin(request: HTTPServerRequest, trusted: Sequence[IpNetwork]) -> str:
    """scheme://host[:port] as the browser sees this server."""
    scheme, host = request.protocol, request.headers.get("Host", "")
    if _trusted(request.remote_ip or "", trusted):
        scheme = request.headers.get("X-Forwarded-Proto", scheme).split(",")[0].strip() or scheme
        host = request.headers.get("X-Forwarded-Host", host).split(",")[0].strip() or host
    return normalize_origin(f"{scheme}://{host}")


def normalize_origin(origin: str) -> str:
    scheme, _, host = origin.strip().lower().partition("://")
    name, sep, port = host.rpartition(":")
    if sep and port == _DEFAULT_PORTS.get(scheme):
        host = name  # http://a:80 is http://a
    return f"{scheme}://{host}"


def origin_allowed(
    request: HTTPServerRequest, trusted: Sequence[IpNetwork], allowed: Sequence[str]
) -> bool:
    """No Origin (a non-browser client) is allowed; else it must be ours or listed."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    origin = normalize_origin(origin)
    return origin == own_origin(request, trusted) or origin in {
        normalize_origin(a) for a in allowed
    }
