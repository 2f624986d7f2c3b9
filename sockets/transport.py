"""The Tornado handler that carries Engine.IO, with this server's fixes to its defaults:
no per-socket compression, TCP_NODELAY, no xsrf on polling, the origin check, a bounded
write buffer for sockets that never read, and little memory held by each idle WebSocket."""

from __future__ import annotations

import struct
import sys
import weakref
from typing import Any, ClassVar
from urllib.parse import urlsplit

import socketio
import tornado.httputil
import tornado.iostream
import tornado.web
import tornado.websocket

from config.settings import Settings
from services.forwarding import origin_allowed
from sockets.engine import WebSocket
from sockets.queues import PacketQueue

# A socket whose unsent output passes this is a client that stopped reading: drop it.
MAX_PENDING_WRITE_BYTES = 4 * 1024 * 1024

# What python-engineio reads of a WebSocket's request environ once the socket is open: nothing
# until the socket ends, and then at most these (the rest is the request's headers).
_ENGINE_KEEPS = ("REQUEST_METHOD", "QUERY_STRING", "PATH_INFO", "tornado.handler")

# Stands for a WebSocket's response headers once it is open: Tornado reads them no more after
# the upgrade's 101.
_NO_HEADERS = tornado.httputil.HTTPHeaders()


class _Body:
    """The request body as python-engineio reads it (`await environ["wsgi.input"].read(n)`).
    python-engineio's own Tornado driver defines this class anew on every request (~2.4 KB
    each, kept alive by the environ for the socket's life)."""

    __slots__ = ("payload",)

    def __init__(self, payload: bytes | None) -> None:
        self.payload = payload or b""

    async def read(self, length: int | None = None) -> bytes:
        if length is None:
            r, self.payload = self.payload, b""
        else:
            r, self.payload = self.payload[:length], self.payload[length:]
        return r


def translate_request(handler: tornado.web.RequestHandler) -> dict[str, Any]:
    """The WSGI-style environ of a request, as python-engineio 4.15's Tornado driver builds it
    (same keys and values), without a new class per request."""
    request = handler.request
    full_uri = request.path + ("?" + request.query if request.query else "")
    environ: dict[str, Any] = {
        "wsgi.input": _Body(request.body),
        "wsgi.errors": sys.stderr,
        "wsgi.version": (1, 0),
        "wsgi.async": True,
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "SERVER_SOFTWARE": "aiohttp",
        "REQUEST_METHOD": request.method,
        "QUERY_STRING": request.query or "",
        "RAW_URI": full_uri,
        "SERVER_PROTOCOL": f"HTTP/{request.version}",
        "REMOTE_ADDR": "127.0.0.1",
        "REMOTE_PORT": "0",
        "SERVER_NAME": "aiohttp",
        "SERVER_PORT": "0",
        "tornado.handler": handler,
    }
    for name, value in request.headers.items():
        name = name.upper()
        if name == "CONTENT-TYPE":
            environ["CONTENT_TYPE"] = value
        elif name == "CONTENT-LENGTH":
            environ["CONTENT_LENGTH"] = value
        else:
            environ["HTTP_" + name.replace("-", "_")] = value
    environ["wsgi.url_scheme"] = environ.get("HTTP_X_FORWARDED_PROTO", "http")
    environ["PATH_INFO"] = urlsplit(request.path).path
    environ["SCRIPT_NAME"] = ""
    if isinstance(handler, tornado.websocket.WebSocketHandler) and handler.ws_connection:
        handler._engine_environ = environ  # type: ignore[attr-defined]  # trimmed once open
    return environ


def websocket_frames(messages: list[str | bytes]) -> bytes:
    """Unmasked, uncompressed, unfragmented WebSocket frames (RFC 6455 5.2) of these
    messages, as a server sends them: text frames for str (UTF-8), binary for bytes."""
    parts: list[bytes] = []
    for message in messages:
        if isinstance(message, str):
            payload, head = message.encode(), 0x81  # FIN, text
        else:
            payload, head = message, 0x82  # FIN, binary
        size = len(payload)
        if size < 126:
            parts.append(bytes((head, size)))
        elif size <= 0xFFFF:
            parts.append(struct.pack("!BBH", head, 126, size))
        else:
            parts.append(struct.pack("!BBQ", head, 127, size))
        parts.append(payload)
    return b"".join(parts)


def make_transport_handler(sio: socketio.AsyncServer, settings: Settings) -> type[Any]:
    base: type[Any] = socketio.get_tornado_handler(sio)
    sio.eio._async = {
        **sio.eio._async,
        "translate_request": translate_request,
        "websocket": WebSocket,
    }

    class SocketTransport(base):  # type: ignore[misc]
        # Open WebSockets, so that shutdown can close every transport for real.
        open_sockets: ClassVar[weakref.WeakSet[tornado.websocket.WebSocketHandler]] = (
            weakref.WeakSet()
        )
        _engine_environ: dict[str, Any] | None = None

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            # Not python-engineio's __init__: it makes an asyncio.Queue (~3 KB) and origin lists
            # that check_origin below does not read.
            tornado.websocket.WebSocketHandler.__init__(self, *args, **kwargs)
            self.receive_queue = PacketQueue()

        def prepare(self) -> None:
            # Refused before the token is looked at, so another site cannot ride the cookie.
            if not origin_allowed(self.request, settings.trusted_proxies, settings.allowed_origins):
                raise tornado.web.HTTPError(403)

        def check_xsrf_cookie(self) -> None:
            """Engine.IO polling POSTs carry no _xsrf; the origin check above protects them."""

        def check_origin(self, origin: str) -> bool:
            return True  # checked in prepare(), against trusted forwarded headers

        def get_compression_options(self) -> None:
            return None  # per-socket zlib state costs ~150 KB per idle socket

        async def open(self, *args: Any, **kwargs: Any) -> None:
            self.set_nodelay(True)
            stream = getattr(self.ws_connection, "stream", None)
            if stream is not None:
                stream.max_write_buffer_size = MAX_PENDING_WRITE_BYTES
            self.open_sockets.add(self)
            await super().open(*args, **kwargs)

        def on_message(self, message: str | bytes) -> None:
            # python-engineio's reader dies on a text frame that is not an Engine.IO packet and
            # leaves the socket open but deaf: close it instead.
            if isinstance(message, str) and (not message or message[0] not in "0123456"):
                self.close(1003, "not an Engine.IO packet")
                return
            # Not a coroutine, so that Tornado makes no task per frame.
            self.receive_queue.put_nowait(message)

        async def get_next_message(self) -> Any:
            if self._engine_environ is not None:
                self._shed_handshake()
            return await self.receive_queue.get()

        def _shed_handshake(self) -> None:
            """python-engineio waits for the first frame: it has read what it needs of the
            request, so the socket stops holding the request's headers."""
            environ, self._engine_environ = self._engine_environ, None
            if environ is not None and not settings.admin_ui:  # the Admin UI shows headers
                kept = {k: environ[k] for k in _ENGINE_KEEPS if k in environ}
                environ.clear()
                environ.update(kept)
            # Tornado's get() keeps the request's header object for the socket's life: empty it.
            self.request.headers.clear()
            self._headers = _NO_HEADERS
            self.ui = None  # templates only; Tornado drops it at close anyway

        def on_close(self) -> None:
            self.open_sockets.discard(self)
            super().on_close()

        def write_message(self, message: Any, binary: bool = False) -> Any:
            try:
                return super().write_message(message, binary=binary)
            except tornado.iostream.StreamBufferFullError:
                self.close(1008, "not reading")
                raise tornado.websocket.WebSocketClosedError() from None

        def write_frames(self, messages: list[str | bytes]) -> None:
            """Sends each message as a WebSocket message (str as text, bytes as binary),
            all in one write to the stream: not `write_message`'s task, future and write
            for each. `WebSocketClosedError` if the socket is closed or closing."""
            # Unmasked (a server's frames) and uncompressed (compression is never negotiated
            # here, see get_compression_options; RFC 7692 allows uncompressed frames anyway).
            conn = self.ws_connection
            if conn is None or conn.is_closing():
                raise tornado.websocket.WebSocketClosedError()
            try:
                conn.stream.write(websocket_frames(messages))
            except tornado.iostream.StreamClosedError:
                raise tornado.websocket.WebSocketClosedError() from None
            except tornado.iostream.StreamBufferFullError:
                self.close(1008, "not reading")
                raise tornado.websocket.WebSocketClosedError() from None

    return SocketTransport
