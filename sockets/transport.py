"""The Tornado handler that carries Engine.IO, with this server's fixes to its defaults:
no per-socket compression, TCP_NODELAY, no xsrf on polling, the origin check, a bounded
write buffer for sockets that never read."""

from __future__ import annotations

import weakref
from typing import Any, ClassVar

import socketio
import tornado.iostream
import tornado.web
import tornado.websocket

from config.settings import Settings
from handlers.forwarding import origin_allowed

# A socket whose unsent output passes this is a client that stopped reading: drop it.
MAX_PENDING_WRITE_BYTES = 4 * 1024 * 1024


def make_transport_handler(sio: socketio.AsyncServer, settings: Settings) -> type[Any]:
    base: type[Any] = socketio.get_tornado_handler(sio)

    class SocketTransport(base):  # type: ignore[misc]
        # Open WebSockets, so that shutdown can close every transport for real.
        open_sockets: ClassVar[weakref.WeakSet[tornado.websocket.WebSocketHandler]] = (
            weakref.WeakSet()
        )

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

        async def on_message(self, message: str | bytes) -> None:
            # python-engineio's reader dies on a text frame that is not an Engine.IO packet and
            # leaves the socket open but deaf: close it instead.
            if isinstance(message, str) and (not message or message[0] not in "0123456"):
                self.close(1003, "not an Engine.IO packet")
                return
            await super().on_message(message)

        def on_close(self) -> None:
            self.open_sockets.discard(self)
            super().on_close()

        def write_message(self, message: Any, binary: bool = False) -> Any:
            try:
                return super().write_message(message, binary=binary)
            except tornado.iostream.StreamBufferFullError:
                self.close(1008, "not reading")
                raise tornado.websocket.WebSocketClosedError() from None

    return SocketTransport
