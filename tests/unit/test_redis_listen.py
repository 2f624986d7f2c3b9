"""The Redis manager's listener drops what its own process published (and its probes), and
passes on what python-socketio still needs: other processes' messages, and callbacks."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from sockets import orjson_codec
from sockets.managers import RedisManager


def _manager(published: list[Any], monkeypatch: pytest.MonkeyPatch) -> RedisManager:
    manager = RedisManager("redis://127.0.0.1:1/0", channel="chan", json=orjson_codec)

    async def capture(data: Any) -> None:
        published.append(data)

    monkeypatch.setattr(manager, "_publish", capture)
    return manager


async def test_own_messages_and_probes_are_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    mine: list[Any] = []
    theirs: list[Any] = []
    me, other = _manager(mine, monkeypatch), _manager(theirs, monkeypatch)
    await me.emit("mensaje_privado", {"text": "hola"}, namespace="/", room="admins")
    await me.emit("mensaje_privado", {"text": "\ud800"}, namespace="/", room="admins")
    await other.emit("mensaje_privado", {"text": "from the other"}, namespace="/", room="admins")
    await other._return_callback(me.host_id, "sid", "/", 7, "ack")  # a callback for me
    (own_emit, own_surrogate), (other_emit, callback) = mine, theirs
    # as `_publish` encodes them (the second by the standard library: orjson refuses it), and
    # one of mine with its keys in another order, as another encoder may write them
    wire = [orjson_codec.dumps(m).encode() for m in (own_emit, own_surrogate, other_emit, callback)]
    wire.append(json.dumps(dict(reversed(own_emit.items()))).encode())
    wire.append(json.dumps({"method": "probe", "host_id": me.host_id, "seq": 1}).encode())
    wire.append(b"not json")

    async def from_redis() -> AsyncIterator[bytes]:
        for data in wire:
            yield data

    monkeypatch.setattr(me, "_subscribed", from_redis)
    me._roundtrip, me._probes = 0.0, {1: 0.0}
    got = [message async for message in me._listen()]
    assert got == json.loads(json.dumps([other_emit, callback]))
    assert me._probes == {}  # the probe was read back


async def test_publishing_with_redis_down_gives_up_and_returns(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """As python-socketio's own: a publish that fails twice is logged and dropped, and its
    caller goes on (the stored message reaches the other processes' sockets by `sync`)."""
    manager = RedisManager("redis://127.0.0.1:1/0", channel="chan", json=orjson_codec)
    try:
        await asyncio.wait_for(manager._publish({"method": "emit", "host_id": "x"}), 10)
    finally:
        await manager.close()
    assert "Cannot publish to redis" in caplog.text and "giving up" in caplog.text


async def test_a_cancelled_publisher_leaves_the_rest_of_its_batch_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    manager = RedisManager("redis://127.0.0.1:1/0", channel="chan", json=orjson_codec)
    sent: list[list[str]] = []
    release = asyncio.Event()

    async def batch(messages: list[str]) -> None:
        await release.wait()
        sent.append(messages)

    monkeypatch.setattr(manager, "_publish_batch", batch)
    callers = [asyncio.ensure_future(manager._publish({"n": i})) for i in range(3)]
    await asyncio.sleep(0)  # all three queued, for one pipelined batch
    callers[0].cancel()
    release.set()
    await asyncio.wait_for(asyncio.gather(callers[1], callers[2]), 5)
    assert sent == [['{"n":0}', '{"n":1}', '{"n":2}']]  # queued before it was cancelled
