"""A socket's queued packets go out as one write of WebSocket frames, byte for byte the
frames Tornado would have written one by one."""

from __future__ import annotations

import asyncio
from typing import Any

import engineio.async_socket
import engineio.packet
import pytest
import tornado.websocket

from sockets import EngineServer
from sockets.engine import poll
from sockets.transport import websocket_frames


class _Stream:
    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))


def _tornado_frame(message: str | bytes) -> bytes:
    """The frame Tornado's own server side writes for one message."""
    conn: Any = object.__new__(tornado.websocket.WebSocketProtocol13)
    conn.mask_outgoing = False
    conn._wire_bytes_out = 0
    conn.stream = _Stream()
    payload = message.encode() if isinstance(message, str) else message
    conn._write_frame(True, 0x2 if isinstance(message, bytes) else 0x1, payload)
    (frame,) = conn.stream.writes
    return bytes(frame)


MESSAGES: list[str | bytes] = [
    "",
    "2",
    '42["mensaje_privado",{"mensaje":"¡hola! 💬"}]',
    "x" * 125,
    "y" * 126,
    "é" * 70,  # 140 bytes in UTF-8 for 70 characters: the length is of the bytes
    "z" * 0xFFFF,
    "w" * 0x10000,
    b"",
    b"\x00\xff" * 100,
    b"b" * 70000,
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: f"{type(m).__name__}-{len(m)}")
def test_one_frame_as_tornado_writes_it(message: str | bytes) -> None:
    assert websocket_frames([message]) == _tornado_frame(message)


def test_several_frames_in_order() -> None:
    assert websocket_frames(MESSAGES) == b"".join(_tornado_frame(m) for m in MESSAGES)
    assert websocket_frames([]) == b""


def _socket() -> engineio.async_socket.AsyncSocket:
    server = EngineServer(async_mode="tornado", ping_interval=0.05, ping_timeout=0.05)
    return engineio.async_socket.AsyncSocket(server, "s1")


def _pkt(data: str) -> engineio.packet.Packet:
    return engineio.packet.Packet(engineio.packet.MESSAGE, data)


async def test_poll_returns_every_queued_packet_at_once() -> None:
    sock = _socket()
    waiting = asyncio.ensure_future(poll(sock))
    await asyncio.sleep(0)
    for data in ("a", "b", "c"):
        sock.queue.put_nowait(_pkt(data))
    assert [p.data for p in await asyncio.wait_for(waiting, 1)] == ["a", "b", "c"]
    await asyncio.wait_for(sock.queue.join(), 1)  # each was marked done


async def test_poll_stops_at_close_and_keeps_it_for_the_next() -> None:
    sock = _socket()
    sock.queue.put_nowait(_pkt("a"))
    sock.queue.put_nowait(None)
    assert [p.data for p in await poll(sock)] == ["a"]
    assert await poll(sock) == []  # the close is seen by the next poll too


async def test_poll_gives_up_after_ping_interval_and_timeout() -> None:
    sock = _socket()  # 0.05 + 0.05 s
    assert await asyncio.wait_for(poll(sock), 1) == []


async def test_poll_of_a_cancelled_writer_returns_nothing() -> None:
    sock = _socket()
    sock.server.ping_interval = 60
    waiting = asyncio.ensure_future(poll(sock))
    await asyncio.sleep(0)
    waiting.cancel()
    assert await waiting == []
