"""`PacketQueue` keeps `asyncio.Queue`'s guarantees for what the sockets use of it."""

from __future__ import annotations

import asyncio

import pytest

from sockets.queues import PacketQueue


async def test_fifo_and_nowait() -> None:
    q = PacketQueue()
    with pytest.raises(asyncio.QueueEmpty):
        q.get_nowait()
    for i in range(3):
        await q.put(i)
    q.put_nowait(3)
    assert q.qsize() == 4 and not q.empty()
    assert [await q.get(), q.get_nowait(), await q.get(), q.get_nowait()] == [0, 1, 2, 3]
    assert q.empty()


async def test_get_waits_for_put() -> None:
    q = PacketQueue()
    getter = asyncio.ensure_future(q.get())
    await asyncio.sleep(0)
    assert not getter.done()
    q.put_nowait("a")
    assert await asyncio.wait_for(getter, 1) == "a"


async def test_cancelled_get_loses_nothing() -> None:
    q = PacketQueue()
    first = asyncio.ensure_future(q.get())
    second = asyncio.ensure_future(q.get())
    await asyncio.sleep(0)
    q.put_nowait("x")  # wakes `first`, which is cancelled before it runs
    first.cancel()
    assert await asyncio.wait_for(second, 1) == "x"
    with pytest.raises(asyncio.CancelledError):
        await first


async def test_get_under_wait_for_timeout_then_put() -> None:
    q = PacketQueue()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(q.get(), 0.01)
    q.put_nowait(1)
    assert await q.get() == 1


async def test_join_waits_for_task_done() -> None:
    q = PacketQueue()
    await asyncio.wait_for(q.join(), 1)  # nothing put: returns at once
    q.put_nowait(1)
    q.put_nowait(2)
    joined = asyncio.ensure_future(q.join())
    await asyncio.sleep(0)
    q.get_nowait()
    q.task_done()
    await asyncio.sleep(0)
    assert not joined.done()
    q.get_nowait()
    q.task_done()
    await asyncio.wait_for(joined, 1)
    with pytest.raises(ValueError):
        q.task_done()
