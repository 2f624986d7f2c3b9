"""`listen`: the application's HTTP server, with bounds on what slow or idle clients and
floods of connections can hold: a cap on open connections, header and body timeouts, a body
no larger than one Socket.IO packet, and file descriptors to match the cap."""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from typing import Any

import tornado.httpserver
import tornado.iostream
import tornado.web

from config.settings import Settings

log = logging.getLogger(__name__)

# A request's headers must arrive within this many seconds of the connection or of the
# previous response (Tornado's idle_connection_timeout, which is its header timeout too), and
# its body within this many more (Tornado's default for both is an hour).
HEADER_TIMEOUT = 30.0
BODY_TIMEOUT = 30.0
# Descriptors kept free beyond MAX_CONNECTIONS: the database pool, Redis, the listening
# sockets, log and secret files.
RESERVED_FDS = 256
# A connection past the cap gets this, once its request head is read (or after this long).
_FULL_TEXT = b"The server is at capacity; retry in a moment.\n"
_FULL = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Retry-After: 1\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s"
    % (len(_FULL_TEXT), _FULL_TEXT)
)
_REFUSE_SECONDS = 2.0


def body_limit(settings: Settings) -> int:
    """The largest request body: one Socket.IO packet of `MAX_PACKET_CHARS` (python-engineio
    refuses a longer polling body anyway, but only once Tornado has read all of it)."""
    return settings.max_packet_chars


def descriptors_for(max_connections: int) -> int:
    """Raise this process's open-file limit (up to its hard limit) to fit `max_connections`;
    the number of connections it does fit (`max_connections` or fewer, with a warning), so that
    the accept loop never reaches the limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = max_connections + RESERVED_FDS
    if soft != resource.RLIM_INFINITY and soft < wanted:
        new = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        if new > soft:
            resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
            soft = new
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return max_connections
    fits = max(1, soft - RESERVED_FDS)
    log.warning(
        "open-file limit %d fits %d connections, not MAX_CONNECTIONS=%d: raise LimitNOFILE "
        "(ulimit -n) to at least %d",
        soft,
        fits,
        max_connections,
        wanted,
    )
    return fits


class BoundedHTTPServer(tornado.httpserver.HTTPServer):
    """Tornado's HTTP server, serving at most `max_connections` connections at once (HTTP and
    WebSocket alike); each one past that is answered 503 and closed, with one log line a
    second however many come."""

    def initialize(self, *args: Any, max_connections: int, **kwargs: Any) -> None:  # type: ignore[override]
        super().initialize(*args, **kwargs)
        self.max_connections = max_connections
        self._open: set[tornado.iostream.IOStream] = set()
        self._pruned_at = 0.0
        self._refusing: set[asyncio.Task[None]] = set()
        self._refused = 0
        self._logged_at = 0.0

    def handle_stream(self, stream: tornado.iostream.IOStream, address: tuple[Any, ...]) -> None:
        if len(self._open) >= self.max_connections:
            self._prune()
        if len(self._open) >= self.max_connections:
            self._refuse(stream)
            return
        self._open.add(stream)
        super().handle_stream(stream, address)

    def _prune(self, *, force: bool = False) -> None:
        """Forget closed connections: at most ten times a second while at the cap (Tornado
        gives a connection's close callback to its HTTP or WebSocket protocol, so closed ones
        are found by looking)."""
        now = time.monotonic()
        if force or now - self._pruned_at >= 0.1:
            self._pruned_at = now
            self._open = {s for s in self._open if not s.closed()}

    def _refuse(self, stream: tornado.iostream.IOStream) -> None:
        self._refused += 1
        now = time.monotonic()
        if now - self._logged_at >= 1.0:
            log.warning(
                "at MAX_CONNECTIONS (%d): %d connections refused with 503",
                self.max_connections,
                self._refused,
            )
            self._logged_at, self._refused = now, 0
        task = asyncio.ensure_future(_answer_full(stream))
        self._refusing.add(task)
        task.add_done_callback(self._refusing.discard)


async def _answer_full(stream: tornado.iostream.IOStream) -> None:
    """Read the request head (so that closing does not reset the connection before the client
    reads the answer), answer 503, close; within `_REFUSE_SECONDS` whatever the client does."""
    try:
        async with asyncio.timeout(_REFUSE_SECONDS):
            await stream.read_until_regex(b"\r?\n\r?\n", max_bytes=16_384)
            await stream.write(_FULL)
    except (TimeoutError, tornado.iostream.StreamClosedError):
        pass  # slow, gone, or a head over 16 KB: closed all the same
    finally:
        stream.close()


def listen(
    app: tornado.web.Application, settings: Settings, *, port: int, host: str
) -> BoundedHTTPServer:
    """Serve `app` on host:port with this server's limits."""
    server = BoundedHTTPServer(
        app,
        max_connections=descriptors_for(settings.max_connections),
        max_body_size=body_limit(settings),
        idle_connection_timeout=HEADER_TIMEOUT,
        body_timeout=BODY_TIMEOUT,
        xheaders=False,  # forwarded headers are believed from TRUSTED_PROXIES only
    )
    server.listen(port, host)
    return server
