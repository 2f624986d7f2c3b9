"""python-engineio's WebSocket session loop, with fewer tasks per socket and per packet.

python-engineio 4.15's `AsyncSocket._websocket_handler` waits for each received frame in a
task of its own under `asyncio.wait_for` (on Python 3.11 a second task): ~1.5 KB for every
idle socket. Its writer waits for outgoing packets the same way (a task per batch), then
hands them to Tornado one by one, and Tornado's `write_message` makes a task and a write to
the socket for each. `websocket_session` is the same loop, frame for frame, waiting under
`asyncio.timeout` in the session's own tasks, and writing each batch of queued packets as
one write. Used by the Tornado driver's WebSocket wrapper below unless something (the Admin
UI's instrumentation) has replaced python-engineio's loop.

While a WebSocket session runs, its socket's `send` is `TurnOutbox`'s: a message packet is
written at the end of the event loop's turn, with every other packet sent to that socket in the
same turn, in one write, and no task woken. Through the queue, each packet woke the socket's
writer task: for a message that reaches six sockets, six task steps (with their timeout timers)
to write six packets.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import engineio.async_drivers.tornado
import engineio.async_socket
import tornado.websocket
from engineio import exceptions, packet

_ENGINEIO_HANDLER = engineio.async_socket.AsyncSocket._websocket_handler
_ENGINEIO_SEND = engineio.async_socket.AsyncSocket.send


class TurnOutbox:
    """Message packets for WebSocket sessions, written when the loop's turn ends: one write per
    socket for all it was sent during the turn, from one callback for all sockets."""

    __slots__ = ("_loop", "_pending")

    def __init__(self) -> None:
        self._pending: dict[Any, tuple[Any, list[Any]]] = {}  # socket -> (ws, packets)
        self._loop: asyncio.AbstractEventLoop | None = None  # where `flush` is scheduled

    def add(self, socket: Any, ws: Any, pkt: Any) -> None:
        # A flush is due unless nothing waits, or the loop it was due on closed first.
        if not self._pending or self._loop is None or self._loop.is_closed():
            self._loop = asyncio.get_running_loop()
            self._loop.call_soon(self.flush)
        entry = self._pending.get(socket)
        if entry is None:
            self._pending[socket] = (ws, [pkt])
        else:
            entry[1].append(pkt)

    def flush(self) -> None:
        pending, self._pending = self._pending, {}
        encoded: dict[int, str] = {}  # a packet emitted to many sockets is encoded once
        for ws, packets in pending.values():
            _write(ws, packets, encoded)

    def flush_socket(self, socket: Any) -> None:
        """Write what waits for `socket` now (before a packet that takes the queue)."""
        entry = self._pending.pop(socket, None)
        if entry is not None:
            _write(*entry, {})


def _write(ws: Any, packets: list[Any], encoded: dict[int, str]) -> None:
    frames = []
    for pkt in packets:
        frame = encoded.get(id(pkt))
        if frame is None:
            frame = encoded[id(pkt)] = pkt.encode()
        frames.append(frame)
    try:
        ws.send_all(frames)
    except Exception:  # noqa: S110 - closed meanwhile: its session loop ends and tells
        pass


OUTBOX = TurnOutbox()


def turn_send(self: Any, ws: Any) -> Any:
    """`AsyncSocket.send` for a socket whose WebSocket session runs: a message packet goes to
    `OUTBOX` when nothing waits in the socket's queue and no ping is overdue; anything else
    (a ping, the CLOSE packet, a packet behind queued ones) goes python-engineio's way, after
    what waits in `OUTBOX` for the socket, so that packets keep their order."""
    server = self.server

    async def send(pkt: Any) -> None:
        if self.closed:
            raise exceptions.SocketIsClosedError()
        if (
            pkt.packet_type == packet.MESSAGE
            and not self.queue.qsize()
            and not (self.last_ping and time.time() - self.last_ping > server.ping_timeout)
        ):
            OUTBOX.add(self, ws, pkt)
            return
        OUTBOX.flush_socket(self)
        await _ENGINEIO_SEND(self, pkt)

    return send


async def websocket_session(self: Any, ws: Any) -> None:
    """`AsyncSocket._websocket_handler(self, ws)` of python-engineio 4.15.1, but for the
    wait on each frame."""
    server = self.server

    async def websocket_wait() -> Any:
        data = await ws.wait()
        if data and len(data) > server.max_http_buffer_size:
            raise ValueError("packet is too large")
        return data

    if self.connected:
        # the socket was already connected, so this is an upgrade
        self.upgrading = True  # hold packet sends during the upgrade
        try:
            pkt = await websocket_wait()
        except OSError:
            return
        decoded_pkt = packet.Packet(encoded_packet=pkt)
        if decoded_pkt.packet_type != packet.PING or decoded_pkt.data != "probe":
            server.logger.info("%s: Failed websocket upgrade, no PING packet", self.sid)
            self.upgrading = False
            return
        await ws.send(packet.Packet(packet.PONG, data="probe").encode())
        await self.queue.put(packet.Packet(packet.NOOP))  # end poll
        try:
            pkt = await websocket_wait()
        except OSError:
            self.upgrading = False
            return
        decoded_pkt = packet.Packet(encoded_packet=pkt)
        if decoded_pkt.packet_type != packet.UPGRADE:
            self.upgraded = False
            server.logger.info(
                "%s: Failed websocket upgrade, expected UPGRADE packet, received %s instead.",
                self.sid,
                pkt,
            )
            self.upgrading = False
            return
        self.upgraded = True
        self.upgrading = False
    else:
        self.connected = True
        self.upgraded = True

    async def writer() -> None:
        while True:
            packets = await poll(self)
            if not packets:
                # empty packet list returned -> connection closed (or nothing for too long)
                break
            try:
                ws.send_all([pkt.encode() for pkt in packets])
            except BaseException:
                break
            if self.closed and self.queue.empty():
                # The server closed the session, and its CLOSE packet is out: close the
                # WebSocket too (python-engineio's loop waits for the client to do it), which
                # also ends the reader below.
                break
        await ws.close()

    writer_task = asyncio.ensure_future(writer())
    server.logger.info("%s: Upgrade to websocket successful", self.sid)
    self.send = turn_send(self, ws)
    try:
        while True:
            p = None
            try:
                async with asyncio.timeout(server.ping_interval + server.ping_timeout):
                    p = await websocket_wait()
            except BaseException:  # as python-engineio: a timeout, a closed socket, cancellation
                break
            if p is None:
                # connection closed by client
                break
            pkt = packet.Packet(encoded_packet=p)
            try:
                await self.receive(pkt)
            except exceptions.UnknownPacketError:
                pass
            except exceptions.SocketIsClosedError:
                server.logger.info("Receive error -- socket is closed")
                break
            except Exception:
                # if we get an unexpected exception we log the error and exit
                # the connection properly
                server.logger.exception("Unknown receive error")
            if self.closed:
                break  # the server closed the session while handling this packet
    finally:
        del self.send  # python-engineio's again
        OUTBOX.flush_socket(self)

    await self.queue.put(None)  # unlock the writer task so it can exit
    await writer_task
    await self.close(wait=False, abort=True, reason=server.reason.TRANSPORT_CLOSE)


async def poll(self: Any) -> list[Any]:
    """`AsyncSocket.poll()`: every packet queued for the socket, waiting for the first up to
    ping_interval + ping_timeout; [] once the socket is closing or after that wait. Waits
    under `asyncio.timeout` in the writer's own task (python-engineio's `wait_for` starts a
    task for each wait on Python 3.11, so one for every batch a socket is sent)."""
    server = self.server
    try:
        async with asyncio.timeout(server.ping_interval + server.ping_timeout):
            first = await self.queue.get()
    except (TimeoutError, asyncio.CancelledError):  # as python-engineio: the writer ends
        return []
    self.queue.task_done()
    if first is None:
        return []
    packets = [first]
    while True:
        try:
            pkt = self.queue.get_nowait()
        except asyncio.QueueEmpty:
            break
        self.queue.task_done()
        if pkt is None:
            self.queue.put_nowait(None)
            break
        packets.append(pkt)
    return packets


class WebSocket(engineio.async_drivers.tornado.WebSocket):  # type: ignore[misc]
    """python-engineio's Tornado WebSocket wrapper, running `websocket_session`."""

    def send_all(self, messages: list[str | bytes]) -> None:
        """Writes these Engine.IO packets as one write to the socket (`write_frames`);
        `EngineIOError` if the socket is closed, as `send`."""
        try:
            self.tornado_handler.write_frames(messages)
        except tornado.websocket.WebSocketClosedError:
            raise exceptions.EngineIOError() from None

    async def __call__(self, environ: dict[str, Any]) -> None:
        if getattr(self.handler, "__func__", None) is not _ENGINEIO_HANDLER:
            await super().__call__(environ)  # python-engineio's loop was replaced: keep it
            return
        self.tornado_handler = environ["tornado.handler"]
        self.environ = environ
        await websocket_session(self.handler.__self__, self)
