"""The Engine.IO ping runs from a timer (not a task asleep per socket), as python-engineio's."""

from __future__ import annotations

import asyncio

import engineio.async_socket
import engineio.packet

from sockets import EngineServer
from sockets.queues import PacketQueue


async def test_ping_sent_after_interval_and_not_after_close() -> None:
    server = EngineServer(async_mode="tornado", ping_interval=0.05, ping_timeout=1)
    sock = engineio.async_socket.AsyncSocket(server, "s1")
    assert isinstance(sock.queue, PacketQueue)
    before = len(asyncio.all_tasks())
    sock.schedule_ping()
    assert sock.last_ping is None
    assert len(asyncio.all_tasks()) == before  # nothing asleep for the interval
    await asyncio.sleep(0.15)
    pkt = sock.queue.get_nowait()
    assert pkt.packet_type == engineio.packet.PING
    assert sock.last_ping is not None
    # the client's pong schedules the next one; a closed socket gets none
    await sock.receive(engineio.packet.Packet(engineio.packet.PONG))
    sock.closed = True
    await asyncio.sleep(0.15)
    assert sock.queue.empty()
