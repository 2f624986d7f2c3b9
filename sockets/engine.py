"""python-engineio's WebSocket session loop, with one task fewer per idle socket.

python-engineio 4.15's `AsyncSocket._websocket_handler` waits for each received frame in a
task of its own under `asyncio.wait_for` (on Python 3.11 a second task): ~1.5 KB for every
idle socket. `websocket_session` is the same loop, frame for frame, waiting under
`asyncio.timeout` in the session's own task. Used by the Tornado driver's WebSocket wrapper
below unless something (the Admin UI's instrumentation) has replaced python-engineio's loop.
"""

from __future__ import annotations

import asyncio
from typing import Any

import engineio.async_drivers.tornado
import engineio.async_socket
from engineio import exceptions, packet

_ENGINEIO_HANDLER = engineio.async_socket.AsyncSocket._websocket_handler


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
            packets = None
            try:
                packets = await self.poll()
            except exceptions.QueueEmpty:
                break
            if not packets:
                # empty packet list returned -> connection closed
                break
            try:
                for pkt in packets:
                    await ws.send(pkt.encode())
            except BaseException:
                break
        await ws.close()

    writer_task = asyncio.ensure_future(writer())
    server.logger.info("%s: Upgrade to websocket successful", self.sid)

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

    await self.queue.put(None)  # unlock the writer task so it can exit
    await writer_task
    await self.close(wait=False, abort=True, reason=server.reason.TRANSPORT_CLOSE)


class WebSocket(engineio.async_drivers.tornado.WebSocket):  # type: ignore[misc]
    """python-engineio's Tornado WebSocket wrapper, running `websocket_session`."""

    async def __call__(self, environ: dict[str, Any]) -> None:
        if getattr(self.handler, "__func__", None) is not _ENGINEIO_HANDLER:
            await super().__call__(environ)  # python-engineio's loop was replaced: keep it
            return
        self.tornado_handler = environ["tornado.handler"]
        self.environ = environ
        await websocket_session(self.handler.__self__, self)
