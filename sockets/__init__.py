"""`make_sio` and `serve_chat`: the Socket.IO server, its namespace and the drain used at
shutdown."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from typing import Any

import engineio
import engineio.async_socket
import engineio.packet
import engineio.payload
import socketio
from socketio import packet

from config.settings import Settings
from services import Services
from services.errors import AppError, Code
from sockets import orjson_codec
from sockets.chat import ChatNamespace
from sockets.managers import AioPikaManager, LocalManager, RedisManager
from sockets.queues import PacketQueue

log = logging.getLogger(__name__)


# A Socket.IO EVENT packet that asks for an ack: "2", an optional "/nsp,", then the ack id.
_EVENT_WITH_ACK = re.compile(r"^2(?:(/[^,]*),)?(\d{1,15})\[")

# What of a session's handshake environ is read after it: the cookie, by `on_connect` when the
# client connects the namespace (again). python-socketio keeps the environ for the session's
# life, with every header of the request (and, on polling, the finished request's handler).
_SESSION_KEEPS = ("HTTP_COOKIE",)

# Socket.IO BINARY_EVENT and BINARY_ACK: no event of the contract carries binary data.
_BINARY_TYPES = ("5", "6")
# Seconds from the Engine.IO open (or from leaving the namespace) to the Socket.IO connect.
CONNECT_DEADLINE = 10


_SEND_PING = engineio.async_socket.AsyncSocket._send_ping


class EngineServer(engineio.AsyncServer):  # type: ignore[misc]
    def __init__(self, *args: Any, session_prefix: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.session_prefix = session_prefix
        self._pings: set[asyncio.Task[None]] = set()

    def generate_id(self) -> str:
        """Session ids start with the worker's WORKER_ID and a `.`: nginx routes every later
        request of a session on that prefix (python-socketio's namespace sids too)."""
        sid: str = super().generate_id()
        return sid if self.session_prefix is None else f"{self.session_prefix}.{sid}"

    def create_queue(self, *args: Any, **kwargs: Any) -> PacketQueue:
        return PacketQueue()  # each socket's outgoing packets: ~0.2 KB, not asyncio.Queue's 3

    def start_background_task(self, target: Any, *args: Any, **kwargs: Any) -> Any:
        # python-engineio's next ping of a socket is a task asleep for ping_interval (~1.5 KB
        # with its coroutine, sleep future and timer, for every idle socket): a timer instead,
        # and a task only for the moment of sending.
        if getattr(target, "__func__", None) is _SEND_PING and not args and not kwargs:
            loop = asyncio.get_running_loop()
            return loop.call_later(self.ping_interval, self._ping, target.__self__)
        return super().start_background_task(target, *args, **kwargs)

    async def disconnect(self, sid: str | None = None) -> None:
        """Close a session (all of them without `sid`) without waiting for its queue to drain.

        python-engineio's own waits for a poll to take the CLOSE packet, forever when none comes:
        a polling POST it refuses (too large, a packet it does not know) stayed unanswered, and
        held its body, until shutdown. The CLOSE packet still goes to a pending or later poll,
        and to a WebSocket, whose session loop ends once its socket is closed."""
        if sid is None:
            for session_id in list(self.sockets):
                await self.disconnect(session_id)
            return
        socket = self.sockets.pop(sid, None)
        if socket is not None:
            await socket.close(wait=False, reason=self.reason.SERVER_DISCONNECT)

    def _ping(self, socket: Any) -> None:
        """What python-engineio's `_send_ping` does once its sleep is over."""
        if not socket.closing and not socket.closed:
            socket.last_ping = time.time()
            task = asyncio.ensure_future(socket.send(engineio.packet.Packet(engineio.packet.PING)))
            self._pings.add(task)
            task.add_done_callback(self._pings.discard)


class SocketServer(socketio.AsyncServer):  # type: ignore[misc]
    # The Admin UI's instrumentation, when on. It patches python-engineio's socket class for
    # the whole process, so shutdown must undo it.
    instrumentation: Any = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._closing: set[asyncio.Task[None]] = set()

    def _engineio_server_class(self) -> type[engineio.AsyncServer]:
        return EngineServer

    async def _handle_eio_connect(self, eio_sid: str, environ: dict[str, Any]) -> None:
        await super()._handle_eio_connect(eio_sid, environ)
        if self.instrumentation is None:  # the Admin UI shows each session's headers
            self.environ[eio_sid] = {k: environ[k] for k in _SESSION_KEEPS if k in environ}
        self._connect_deadline(eio_sid)

    def _connect_deadline(self, eio_sid: str) -> None:
        """Close the Engine.IO session unless it is connected to the namespace within
        `CONNECT_DEADLINE` seconds: a session that never connects holds a socket for nothing."""
        loop = asyncio.get_running_loop()
        loop.call_later(CONNECT_DEADLINE, self._check_connected, eio_sid)

    def _check_connected(self, eio_sid: str) -> None:
        if eio_sid in self.eio.sockets and self.manager.sid_from_eio_sid(eio_sid, "/") is None:
            log.info("session closed: no Socket.IO connect within %d s", CONNECT_DEADLINE)
            self._close_session(eio_sid)

    def _close_session(self, eio_sid: str) -> None:
        """Close an Engine.IO session and its transport (not a Socket.IO disconnect)."""
        task = asyncio.ensure_future(self.eio.disconnect(eio_sid))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _handle_disconnect(
        self, eio_sid: str, namespace: str | None, reason: Any = None
    ) -> None:
        await super()._handle_disconnect(eio_sid, namespace, reason)
        if eio_sid in self.eio.sockets:  # the client left the namespace, not the session
            self._connect_deadline(eio_sid)

    async def _handle_eio_message(self, eio_sid: str, data: Any) -> None:
        if not isinstance(data, str) or data[:1] in _BINARY_TYPES:
            # The contract has no binary events, and python-socketio would keep every binary
            # frame a BINARY_EVENT announces, however many it announces: close the session.
            self._binary_packet.pop(eio_sid, None)
            log.warning("binary packet refused; session closed", extra={"eio_sid": eio_sid})
            self._close_session(eio_sid)
            return
        try:
            await super()._handle_eio_message(eio_sid, data)
        except (ValueError, IndexError, KeyError, TypeError) as exc:
            # A packet python-socketio cannot decode (an integer of over 100 digits, a binary
            # placeholder out of range, ...) is dropped; an event that asked for an ack gets
            # `invalid` rather than no answer, and a half-received binary packet is forgotten
            # so that the packets after it are read again.
            self._binary_packet.pop(eio_sid, None)
            ask = _EVENT_WITH_ACK.match(data) if isinstance(data, str) else None
            sid = ask and self.manager.sid_from_eio_sid(eio_sid, ask.group(1) or "/")
            log.warning("undecodable packet (%s)", type(exc).__name__, extra={"sid": sid})
            if ask and sid:
                error = AppError(Code.INVALID, "The packet could not be decoded.").ack()
                reply = self.packet_class(
                    packet.ACK, namespace=ask.group(1) or "/", id=int(ask.group(2)), data=[error]
                )
                await self._send_packet(eio_sid, reply)

    async def _handle_event(
        self, eio_sid: str, namespace: str, id: int | None, data: list[Any]
    ) -> None:
        # python-socketio would run on_connect / on_disconnect for a client's event of that
        # name, with the client's payload as the environ: those names are the server's only.
        if not data or not isinstance(data[0], str) or data[0] in self.reserved_events:
            log.warning("client sent a reserved or malformed event name")
            return
        await super()._handle_event(eio_sid, namespace, id, data)

    async def _handle_eio_disconnect(self, eio_sid: str, reason: object) -> None:
        await super()._handle_eio_disconnect(eio_sid, reason)
        # A polling client that closes its session leaves its long-poll GET pending until the
        # ping timeout in python-engineio: answer it now, so the connection is freed at once.
        socket = self.eio.sockets.get(eio_sid)
        if socket is not None and not socket.upgraded:
            socket.queue.put_nowait(None)


class TextPacket(packet.Packet):  # type: ignore[misc]
    """Socket.IO packets of JSON only (no event of the contract carries binary data, and the
    server refuses binary packets): not scanned for bytes, item by item, each time one is
    made, as python-socketio's are (26 calls of `data_is_binary` for a message and its ack).
    Passed as python-socketio's documented `serializer`."""

    uses_binary_events = False


def make_sio(settings: Settings) -> SocketServer:
    """The Socket.IO server and its manager (rooms, fan-out), serving no namespace yet: the
    services are built with it (their fan-out emits through it), then `serve_chat`."""
    # python-engineio refuses a polling POST of more than 16 packets, and drops all of it: a
    # client's burst (socket.io-client sends what it queued in one POST) lost all but one
    # message. Node's engine.io has no count limit; the body's size (MAX_PACKET_CHARS) bounds
    # the count here too.
    engineio.payload.Payload.max_decode_packets = max(
        engineio.payload.Payload.max_decode_packets, settings.max_packet_chars
    )
    return SocketServer(
        async_mode="tornado",
        json=orjson_codec,  # also python-engineio's, and the broker's messages
        serializer=TextPacket,
        client_manager=make_manager(settings),
        cors_allowed_origins=[],  # the transport handler checks origins itself
        max_http_buffer_size=settings.max_packet_chars,
        ping_interval=25,
        ping_timeout=20,
        logger=False,
        engineio_logger=False,
        session_prefix=settings.worker_id,  # EngineServer's
    )


def serve_chat(sio: SocketServer, services: Services) -> None:
    """The chat's namespace on `sio` (and the Admin UI's, when on)."""
    sio.register_namespace(ChatNamespace(services))
    if services.settings.admin_ui:
        # For the Socket.IO Admin UI: admins only, and it may look but not act.
        sio.instrumentation = sio.instrument(
            auth=services.auth.admin_ui_login, mode="production", read_only=True
        )


def make_manager(settings: Settings) -> socketio.AsyncManager:
    """Rooms in memory for one process; across processes on the broker's pub/sub."""
    channel = f"{settings.redis_prefix}:socketio"
    manager_log = logging.getLogger("socketio.manager")  # emits it drops are logged, not silent
    url = settings.broker_url or settings.redis_url
    if url is None:
        return LocalManager()
    if url.startswith(("amqp://", "amqps://")):
        return AioPikaManager(url, channel=channel, logger=manager_log)
    return RedisManager(url, channel=channel, logger=manager_log)


def namespace_of(sio: socketio.AsyncServer) -> ChatNamespace:
    handler = sio.namespace_handlers["/"]
    if not isinstance(handler, ChatNamespace):
        raise TypeError("the / namespace is not a ChatNamespace")
    return handler


async def drain(sio: socketio.AsyncServer, transport: type[Any], *, timeout: float = 10.0) -> None:
    """Let in-flight events finish (acked or not stored), then close every transport (not a
    Socket.IO disconnect) so that clients reconnect by themselves, elsewhere."""
    namespace = namespace_of(sio)
    namespace.draining = True
    try:
        await asyncio.wait_for(namespace.idle.wait(), timeout)
    except TimeoutError:
        log.warning(
            "shutdown: %d events still in flight after %.0f s", namespace.in_flight, timeout
        )
    # python-engineio's own disconnect() waits for each socket's queue to drain, forever when
    # the peer is gone: close without waiting, then close the WebSockets ourselves.
    closing = [
        asyncio.ensure_future(s.close(wait=False, reason=sio.eio.reason.SERVER_DISCONNECT))
        for s in list(sio.eio.sockets.values())
    ]
    if closing:
        await asyncio.wait(closing, timeout=2.0)
    await asyncio.sleep(0.05)  # let the writers flush the close packets
    for handler in list(transport.open_sockets):
        handler.close(1001, "server shutting down")
    sio.eio.sockets.clear()
    await sio.shutdown()
    if getattr(sio, "instrumentation", None) is not None:
        await sio.instrumentation.shutdown()  # its stats task
        sio.instrumentation.uninstrument()
    if isinstance(sio.manager, RedisManager):
        await sio.manager.close()
