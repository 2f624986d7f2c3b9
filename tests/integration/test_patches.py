"""Each replacement of a library's private part (docs/ARCHITECTURE.md, "Library internals") is
the code that runs: spies on the patched functions while real clients use a real server. A
library that renamed what a patch overrides would leave the patch silently unused, and
behaviour tests alone might not notice; these would."""

from __future__ import annotations

import asyncio
import functools
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import engineio
import engineio.payload
import httpx
import pytest

import sockets.engine
import sockets.transport
from sockets import EngineServer, SocketServer
from sockets.managers import DirectEmit, RedisManager
from sockets.queues import PacketQueue
from tests.conftest import StackFactory, service_url
from tests.hostile.test_malformed_packets import Polling

pytestmark = pytest.mark.parametrize("make_stack", ["sqlite"], indirect=True)


class Spies:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.monkeypatch = monkeypatch
        self.calls: Counter[str] = Counter()

    def on(self, owner: Any, name: str) -> None:
        """Count the calls of `owner.name` (a function, coroutine function or async
        generator function), which still does what it did."""
        if isinstance(owner, type):  # ours, not the library's under the same name
            assert name in vars(owner), f"{owner.__name__} does not define {name}"
        original: Callable[..., Any] = getattr(owner, name)
        label = f"{getattr(owner, '__name__', owner)}.{name}"
        if hasattr(original, "__func__") and not isinstance(owner, type):
            original = original.__func__  # a bound method of an instance: spy its function

        if asyncio.iscoroutinefunction(original):

            @functools.wraps(original)
            async def spy(*args: Any, **kwargs: Any) -> Any:
                self.calls[label] += 1
                return await original(*args, **kwargs)

        elif getattr(original, "__code__", None) is not None and (
            original.__code__.co_flags & 0x200  # CO_ASYNC_GENERATOR
        ):

            @functools.wraps(original)
            async def spy(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
                self.calls[label] += 1
                async for item in original(*args, **kwargs):
                    yield item

        else:

            @functools.wraps(original)
            def spy(*args: Any, **kwargs: Any) -> Any:
                self.calls[label] += 1
                return original(*args, **kwargs)

        self.monkeypatch.setattr(owner, name, spy)

    def ran(self, *labels: str) -> None:
        missing = [label for label in labels if not self.calls[label]]
        assert missing == [], f"never ran: {missing}; ran: {dict(self.calls)}"


@pytest.fixture
def spies(monkeypatch: pytest.MonkeyPatch) -> Spies:
    return Spies(monkeypatch)


async def test_the_engineio_and_socketio_patches_run(
    make_stack: StackFactory, spies: Spies
) -> None:
    for name in (
        "_handle_eio_connect",
        "_handle_eio_message",
        "_handle_event",
        "_handle_eio_disconnect",
        "_handle_disconnect",
        "_engineio_server_class",
    ):
        spies.on(SocketServer, name)
    spies.on(engineio.AsyncServer, "send_packet")  # what DirectEmit hands packets to
    for name in ("generate_id", "create_queue", "start_background_task", "_ping", "disconnect"):
        spies.on(EngineServer, name)
    spies.on(DirectEmit, "emit")
    stack = await make_stack(worker_id="w1")
    stack.services.fanout.server.eio.ping_interval = 0.2  # type: ignore[attr-defined]
    ana = await stack.connect(await stack.register("ana"))
    boss = await stack.connect(await stack.register("boss", admin=True))
    assert (await ana.call("mensaje_privado", {"text": "hola"}))["ok"]
    await boss.wait_for("mensaje_privado")
    assert ana.sio.get_sid().startswith("w1.")
    engine = stack.services.fanout.server.eio  # type: ignore[attr-defined]
    assert type(engine) is EngineServer
    assert all(isinstance(s.queue, PacketQueue) for s in engine.sockets.values())
    await asyncio.sleep(0.6)  # a ping or two, from the timer
    await ana.sio.disconnect()
    # a refused polling POST closes its session through EngineServer.disconnect
    async with httpx.AsyncClient(base_url=stack.url, timeout=5) as http:
        polling = Polling(http)
        await polling.open(await stack.login("ana"))
        await polling.post("6")
    await asyncio.sleep(0.2)
    spies.ran(
        "SocketServer._handle_eio_connect",
        "SocketServer._handle_eio_message",
        "SocketServer._handle_event",
        "SocketServer._handle_eio_disconnect",
        "SocketServer._handle_disconnect",
        "SocketServer._engineio_server_class",
        "AsyncServer.send_packet",
        "EngineServer.generate_id",
        "EngineServer.create_queue",
        "EngineServer.start_background_task",
        "EngineServer._ping",
        "EngineServer.disconnect",
        "DirectEmit.emit",
    )
    payload = engineio.payload.Payload
    assert payload.max_decode_packets >= stack.settings.max_packet_chars


async def test_the_websocket_loop_writes_and_request_patches_run(
    make_stack: StackFactory, spies: Spies
) -> None:
    spies.on(sockets.engine, "websocket_session")
    spies.on(sockets.engine, "poll")
    spies.on(sockets.engine.WebSocket, "send_all")
    spies.on(sockets.engine.TurnOutbox, "flush")
    spies.on(sockets.transport, "translate_request")  # before the handler is made
    stack = await make_stack()
    ana = await stack.connect(await stack.register("ana"))
    boss = await stack.connect(await stack.register("boss", admin=True))
    assert (await ana.call("mensaje_privado", {"text": "hola"}))["ok"]
    await boss.wait_for("mensaje_privado")
    spies.ran(
        "sockets.engine.websocket_session",
        "sockets.engine.poll",
        "WebSocket.send_all",
        "TurnOutbox.flush",
        "sockets.transport.translate_request",
    )
    # While their WebSocket sessions run, sockets send through the turn's outbox.
    engine = stack.services.fanout.server.eio  # type: ignore[attr-defined]
    assert engine.sockets and all(
        getattr(s.send, "__qualname__", "") == "turn_send.<locals>.send"
        for s in engine.sockets.values()
    )
    handlers = list(stack.services.fanout.server.eio._async["websocket"].__mro__)  # type: ignore[attr-defined]
    assert sockets.engine.WebSocket in handlers
    open_sockets = [
        h for h in gc_handlers() if isinstance(getattr(h, "receive_queue", None), PacketQueue)
    ]
    assert open_sockets, "no transport handler with a PacketQueue"
    # once open, a WebSocket holds no request headers (_shed_handshake)
    assert all(h._headers is sockets.transport._NO_HEADERS for h in open_sockets)


def gc_handlers() -> list[Any]:
    import gc

    import tornado.websocket

    return [o for o in gc.get_objects() if isinstance(o, tornado.websocket.WebSocketHandler)]


@pytest.mark.redis
async def test_the_redis_managers_hooks_run(make_stack: StackFactory, spies: Spies) -> None:
    spies.on(RedisManager, "_publish")
    spies.on(RedisManager, "_listen")
    redis_url = service_url("redis")
    a = await make_stack(redis_url=redis_url)
    b = await make_stack(redis_url=redis_url)
    boss = await b.connect(await b.register("boss", admin=True))
    ana = await a.connect(await a.register("ana"))
    sent = await ana.call("mensaje_privado", {"text": "across"})
    assert sent["ok"]
    assert (await boss.wait_for("mensaje_privado"))[0] == sent["message"]
    spies.ran("RedisManager._publish", "RedisManager._listen")
