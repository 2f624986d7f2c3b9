"""`turn_send` and `TurnOutbox` (sockets/engine.py): message packets sent to a WebSocket session
during one turn of the event loop are written together at its end, and a socket's packets keep
their order whichever way each goes (the turn's outbox, or python-engineio's queue and the
session's writer)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from engineio import exceptions, packet

from sockets.engine import OUTBOX, turn_send
from sockets.queues import PacketQueue


class FakeWs:
    def __init__(self) -> None:
        self.writes: list[list[str]] = []
        self.broken = False

    def send_all(self, messages: list[str]) -> None:
        if self.broken:
            raise exceptions.EngineIOError()
        self.writes.append(list(messages))


class FakeServer:
    ping_timeout = 20
    logger = logging.getLogger("test")


class FakeSocket:
    """What python-engineio's `AsyncSocket.send` reads of its socket."""

    def __init__(self) -> None:
        self.server = FakeServer()
        self.sid = "s"
        self.closed = False
        self.last_ping: float | None = None
        self.queue = PacketQueue()

    async def check_ping_timeout(self) -> bool:
        return True


def message(text: str) -> Any:
    return packet.Packet(packet.MESSAGE, data=text)


async def test_messages_of_one_turn_go_out_in_one_write_at_its_end() -> None:
    socket, ws = FakeSocket(), FakeWs()
    other, other_ws = FakeSocket(), FakeWs()
    send, send_other = turn_send(socket, ws), turn_send(other, other_ws)
    await send(message("a"))
    await send_other(message("x"))
    await send(message("b"))
    assert ws.writes == [] and other_ws.writes == []  # not before the turn ends
    await asyncio.sleep(0)
    assert ws.writes == [["4a", "4b"]]
    assert other_ws.writes == [["4x"]]
    assert socket.queue.empty()


async def test_a_packet_sent_to_many_sockets_is_encoded_once() -> None:
    shared = message("to all")
    calls = 0
    encode = shared.encode

    def counted(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        return encode(*args, **kwargs)

    shared.encode = counted
    pairs = [(FakeSocket(), FakeWs()) for _ in range(3)]
    for socket, ws in pairs:
        await turn_send(socket, ws)(shared)
    await asyncio.sleep(0)
    assert [ws.writes for _, ws in pairs] == [[["4to all"]]] * 3
    assert calls == 1


async def test_a_ping_and_what_follows_it_keep_their_place() -> None:
    socket, ws = FakeSocket(), FakeWs()
    send = turn_send(socket, ws)
    await send(message("a"))
    await send(packet.Packet(packet.PING))  # takes the queue: "a" is written first
    assert ws.writes == [["4a"]]
    await send(message("b"))  # behind the queued ping: the queue too
    queued = [socket.queue.get_nowait().encode() for _ in range(socket.queue.qsize())]
    assert queued == ["2", "4b"]
    await asyncio.sleep(0)
    assert ws.writes == [["4a"]]


async def test_a_closed_socket_refuses_and_a_broken_one_drops_quietly() -> None:
    socket, ws = FakeSocket(), FakeWs()
    send = turn_send(socket, ws)
    ws.broken = True
    await send(message("lost"))
    await asyncio.sleep(0)  # the write fails: the session's loop sees the closed socket
    socket.closed = True
    with pytest.raises(exceptions.SocketIsClosedError):
        await send(message("late"))
    assert OUTBOX._pending == {}


async def test_an_overdue_ping_takes_python_engineios_way() -> None:
    socket, ws = FakeSocket(), FakeWs()
    socket.last_ping = 1.0  # long ago: python-engineio's check decides (here: still open)
    send = turn_send(socket, ws)
    await send(message("a"))
    assert [socket.queue.get_nowait().encode()] == ["4a"]
    assert ws.writes == []


def test_a_loop_that_closed_before_its_flush_leaves_nothing_stuck() -> None:
    socket, ws = FakeSocket(), FakeWs()

    async def send_one(text: str) -> None:
        await turn_send(socket, ws)(message(text))

    first = asyncio.new_event_loop()

    async def send_then_stop() -> None:
        await send_one("a")
        first.stop()  # the loop stops before the turn in which its flush was due

    task = first.create_task(send_then_stop())
    first.run_forever()
    assert task.done()
    first.close()
    second = asyncio.new_event_loop()
    try:
        second.run_until_complete(send_one("b"))
        second.run_until_complete(asyncio.sleep(0))
    finally:
        second.close()
    assert ws.writes == [["4a", "4b"]]
