"""What an attacker found in the transport, each driven against the real server: polling POSTs
left unanswered, binary packets kept without bound, sessions that never connect, slow and
idle connections, floods of connections, typing floods, deep JSON, and sockets that outlived
a logout or role change started during their handshake."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest

import handlers.listen
import sockets
from tests.conftest import Client, Stack, StackFactory, free_port, service_url
from tests.hostile.test_malformed_packets import Polling, RawSocket

ROOT = Path(__file__).resolve().parent.parent.parent


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


async def closes(raw: RawSocket, within: float = 3) -> bool:
    """Whether the server closes the WebSocket within `within` seconds; an Engine.IO CLOSE
    packet ("1") may come first."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        frame = await raw.next(max(0.01, deadline - time.monotonic()))
        if frame is None:
            return raw.ws.closed
        assert frame == "1", frame
    return False


# -- 1. every polling POST is answered, whatever it holds ------------------------------------


@pytest.mark.parametrize("make_stack", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    "body", ["6", "x" * 70_000, "4" + "x" * 65_536], ids=["noop", "garbage", "over the limit"]
)
async def test_a_refused_polling_post_is_answered_at_once(stack: Stack, body: str) -> None:
    token = await stack.register("eve")
    async with httpx.AsyncClient(base_url=stack.url, timeout=5) as http:
        polling = Polling(http)
        await polling.open(token)
        started = time.monotonic()
        try:
            r = await polling.post(body)
            assert r.status_code in (200, 400), r.status_code
        except (httpx.ReadError, httpx.RemoteProtocolError, httpx.WriteError):
            pass  # answered 400 and closed before the client sent all of it: an answer too
        assert time.monotonic() - started < 3


@pytest.mark.parametrize("make_stack", ["sqlite"], indirect=True)
async def test_1000_refused_polling_posts_leave_memory_bounded(stack: Stack) -> None:
    """Each used to hang until shutdown, holding its body: 2 x 1,000 took 540 MB."""
    token = await stack.register("eve")
    before = rss_mb()
    body = "6" + "x" * 59_999  # a NOOP (no client may send one), under the body limit
    limits = httpx.Limits(max_connections=50)
    async with httpx.AsyncClient(base_url=stack.url, timeout=10, limits=limits) as http:

        async def one() -> int:
            polling = Polling(http)
            await polling.open(token)
            return (await polling.post(body)).status_code

        for _ in range(10):
            statuses = await asyncio.gather(*(one() for _ in range(100)))
            assert all(s in (200, 400) for s in statuses), statuses
    grown = rss_mb() - before
    assert grown < 50, f"RSS grew {grown:.0f} MB over 1,000 refused posts"


# -- 2. binary packets close the session -----------------------------------------------------


@pytest.mark.parametrize("make_stack", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    "first",
    ['4599999999-["mensaje_privado",{"_placeholder":true,"num":0}]', "46" + "1-[{}]", b"\x00"],
    ids=["binary event", "binary ack", "binary frame"],
)
async def test_a_binary_packet_closes_the_websocket(stack: Stack, first: str | bytes) -> None:
    token = await stack.register("eve")
    async with aiohttp.ClientSession() as session:
        raw = await RawSocket.open(session, stack)
        await raw.join(token)
        if isinstance(first, bytes):
            await raw.ws.send_bytes(first)
        else:
            await raw.ws.send_str(first)
        with contextlib.suppress(ConnectionError, RuntimeError):
            for _ in range(50):  # what python-socketio used to keep, frame after frame
                await raw.ws.send_bytes(b"\x00" * 200_000)
        assert await closes(raw)
    engine = stack.services.fanout.server.eio  # type: ignore[attr-defined]
    assert raw.sid not in engine.sockets
    assert not stack.services.fanout.server._binary_packet  # type: ignore[attr-defined]


@pytest.mark.parametrize("make_stack", ["sqlite"], indirect=True)
async def test_a_binary_packet_over_polling_closes_the_session(stack: Stack) -> None:
    token = await stack.register("eve")
    async with httpx.AsyncClient(base_url=stack.url, timeout=5) as http:
        polling = Polling(http)
        await polling.open(token)
        r = await polling.post('451-["mensaje_privado",{"_placeholder":true,"num":0}]')
        assert r.status_code == 200
        r = await http.get(polling.path)
        assert r.status_code == 400 or r.text.endswith("1"), r.text  # gone, or its CLOSE
        engine = stack.services.fanout.server.eio  # type: ignore[attr-defined]
        assert polling.sid not in engine.sockets


# -- 7. connections: Socket.IO connect deadline, HTTP timeouts, MAX_CONNECTIONS --------------


@pytest.mark.parametrize("make_stack", ["sqlite"], indirect=True)
async def test_a_session_that_never_connects_the_namespace_is_closed(
    make_stack: StackFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sockets, "CONNECT_DEADLINE", 0.5)
    stack = await make_stack()
    token = await stack.register("eve")
    async with aiohttp.ClientSession() as session:
        idle = await RawSocket.open(session, stack)
        joined = await RawSocket.open(session, stack)
        await joined.join(token)
        assert await closes(idle)
        assert await joined.answers_sync()
        # Leaving the namespace without closing the session starts the clock again.
        await joined.ws.send_str("41")
        assert await closes(joined)


@pytest.mark.parametrize("make_stack", ["sqlite"], indirect=True)
async def test_headers_that_never_finish_are_cut_off(
    make_stack: StackFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(handlers.listen, "HEADER_TIMEOUT", 1.0)
    stack = await make_stack()
    reader, writer = await asyncio.open_connection("127.0.0.1", stack.port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    await writer.drain()
    started = time.monotonic()
    assert await asyncio.wait_for(reader.read(), 5) == b""
    assert time.monotonic() - started < 4
    writer.close()


@pytest.mark.parametrize("make_stack", ["sqlite"], indirect=True)
async def test_connections_past_max_connections_get_503_and_one_log_line_a_second(
    make_stack: StackFactory, caplog: pytest.LogCaptureFixture
) -> None:
    stack = await make_stack(max_connections=5)
    held = [await asyncio.open_connection("127.0.0.1", stack.port) for _ in range(5)]
    caplog.set_level(logging.WARNING, logger="handlers.listen")

    async def refused() -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", stack.port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        head = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        return head

    heads = await asyncio.gather(*(refused() for _ in range(100)))
    assert all(h.startswith(b"HTTP/1.1 503 ") for h in heads), heads[0]
    lines = [r for r in caplog.records if "MAX_CONNECTIONS" in r.getMessage()]
    assert 1 <= len(lines) <= 3, len(lines)
    for _, writer in held:
        writer.close()
    await asyncio.sleep(0.3)
    assert (await stack.http.get("/healthz")).status_code == 200  # type: ignore[union-attr]


@pytest.mark.parametrize("make_stack", ["sqlite"], indirect=True)
async def test_a_silent_connection_past_max_connections_is_closed_in_bounded_time(
    make_stack: StackFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the cap the server waits for a request head before answering 503; a client that
    sends nothing holds that descriptor no longer than the refusal's deadline."""
    monkeypatch.setattr(handlers.listen, "_REFUSE_SECONDS", 0.5)
    stack = await make_stack(max_connections=1)
    held = await asyncio.open_connection("127.0.0.1", stack.port)
    reader, writer = await asyncio.open_connection("127.0.0.1", stack.port)
    started = time.monotonic()
    assert await asyncio.wait_for(reader.read(), 5) == b""  # closed, nothing written
    assert time.monotonic() - started < 3
    for w in (writer, held[1]):
        w.close()


@pytest.mark.slow
def test_at_the_open_file_limit_the_server_refuses_calmly_and_recovers(tmp_path: Path) -> None:
    """With 300 descriptors, MAX_CONNECTIONS (10,000) cannot fit: the server says so once and
    serves what fits; 400 connections neither crash it nor flood its log."""
    port = free_port()
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}

    def low_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (300, 300))

    with open(tmp_path / "log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "server.py"), "--port", str(port)],
            cwd=tmp_path,
            env=env,
            stdout=log,
            stderr=log,
            preexec_fn=low_limit,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 20
            while True:
                try:
                    httpx.get(f"{url}/healthz", timeout=1)
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline and proc.poll() is None
                    time.sleep(0.1)
            import socket

            conns = []
            for _ in range(400):
                s = socket.create_connection(("127.0.0.1", port))
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                conns.append(s)
            time.sleep(2)
            answers = []
            for s in conns:
                s.settimeout(5)
                answers.append(s.recv(64))
                s.close()
            assert sum(a.startswith(b"HTTP/1.1 503 ") for a in answers) >= 300
            assert httpx.get(f"{url}/healthz", timeout=5).status_code == 200
            assert proc.poll() is None
        finally:
            proc.terminate()
            proc.wait(20)
    text = (tmp_path / "log").read_text()
    assert "LimitNOFILE" in text
    assert len(text) < 20_000, len(text)
    assert "Too many open files" not in text


# -- 9. typing floods and deep JSON ----------------------------------------------------------


@pytest.mark.parametrize("make_stack", ["sqlite"], indirect=True)
async def test_typing_past_5_a_second_is_dropped(stack: Stack) -> None:
    admin = await stack.connect(await stack.register("boss", admin=True))
    user = await stack.connect(await stack.register("eve"))
    started = time.monotonic()
    for i in range(200):
        ack = await user.call("typing", {"typing": i % 2 == 0})
        assert ack == {"ok": True}
    took = time.monotonic() - started
    await user.call("mensaje_privado", {"text": "marker"})
    await admin.wait_for("mensaje_privado")
    relayed = len(admin.got("typing"))
    assert 1 <= relayed <= 5 * (int(took) + 2), (relayed, took)


@pytest.mark.parametrize("make_stack", ["sqlite"], indirect=True)
async def test_deep_json_is_invalid_without_a_traceback(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    deep = "[" * 30_000 + "]" * 30_000  # within the body limit
    r = await stack.http.post(  # type: ignore[union-attr]
        "/api/login", content=deep, headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 400 and r.json()["error"] == "invalid", r.text
    r = await stack.http.post(  # type: ignore[union-attr]
        "/api/login", content="[" * 33 + "]" * 33, headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 400 and r.json()["error"] == "invalid", r.text
    token = await stack.register("eve")
    async with aiohttp.ClientSession() as session:
        raw = await RawSocket.open(session, stack)
        await raw.join(token)
        for _ in range(20):
            await raw.ws.send_str('421["sync",' + "[" * 20_000 + "]" * 20_000 + "]")
            reply = await raw.next(5)
            assert isinstance(reply, str) and reply.startswith("431["), reply
            assert json.loads(reply[3:])[0]["error"] == "invalid"
        assert await raw.answers_sync()
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


# -- 5. a logout or role change during a handshake -------------------------------------------


async def _handshakes_held_open(stack: Stack, token: str, count: int) -> tuple[Any, list[Client]]:
    """Start `count` handshakes whose database read waits until the returned event is set."""
    release = asyncio.Event()
    identify = stack.services.auth.identify

    async def slow_identify(*args: Any, **kwargs: Any) -> Any:
        result = await identify(*args, **kwargs)
        await release.wait()
        return result

    stack.services.auth.identify = slow_identify  # type: ignore[method-assign]
    clients = [Client() for _ in range(count)]
    tasks = [
        asyncio.ensure_future(
            c.sio.connect(stack.url, auth={"token": token}, transports=["websocket"])
        )
        for c in clients
    ]
    for c in clients:
        stack.clients.append(c.sio)
    deadline = time.monotonic() + 5
    while len(stack.services.connections._handshakes) < count:
        assert time.monotonic() < deadline, "handshakes did not start"
        await asyncio.sleep(0.02)
    release.tasks = tasks  # type: ignore[attr-defined]
    return release, clients


async def _all_closed(stack: Stack, clients: list[Client], jti_or_user: str) -> None:
    deadline = time.monotonic() + 2
    while any(c.sio.connected for c in clients):
        assert time.monotonic() < deadline, (
            f"{sum(c.sio.connected for c in clients)} sockets outlived it"
        )
        await asyncio.sleep(0.05)
    assert not stack.services.connections.of_user(jti_or_user)


@pytest.mark.parametrize("make_stack", ["sqlite"], indirect=True)
async def test_a_logout_during_handshakes_closes_those_sockets(stack: Stack) -> None:
    token = await stack.register("eve")
    release, clients = await _handshakes_held_open(stack, token, 30)
    r = await stack.http.post(  # type: ignore[union-attr]
        "/api/logout", json={}, headers={"Authorization": f"Bearer {token}"}
    )
    assert r.status_code == 204
    release.set()
    await asyncio.gather(*release.tasks, return_exceptions=True)
    await _all_closed(stack, clients, "eve")


@pytest.mark.parametrize("make_stack", ["sqlite"], indirect=True)
async def test_a_demotion_during_handshakes_leaves_no_admin_socket(stack: Stack) -> None:
    await stack.register("boss", admin=True)
    token = await stack.register("ana", admin=True)
    release, clients = await _handshakes_held_open(stack, token, 30)
    await stack.services.auth.set_role("ana", "user")
    release.set()
    await asyncio.gather(*release.tasks, return_exceptions=True)
    await _all_closed(stack, clients, "ana")
    again = await stack.connect(token)  # the page reconnects, with the new role
    assert stack.services.connections.get(again.sio.get_sid()).identity.rol == "user"  # type: ignore[union-attr]


@pytest.mark.redis
@pytest.mark.parametrize("make_stack", ["sqlite"], indirect=True)
async def test_a_logout_on_one_worker_closes_handshakes_under_way_on_another(
    make_stack: StackFactory,
) -> None:
    redis_url = service_url("redis")
    a = await make_stack(redis_url=redis_url)
    b = await make_stack(redis_url=redis_url)
    token = await a.register("eve")
    release, clients = await _handshakes_held_open(b, token, 30)
    r = await a.http.post(  # type: ignore[union-attr]
        "/api/logout", json={}, headers={"Authorization": f"Bearer {token}"}
    )
    assert r.status_code == 204
    await asyncio.sleep(0.3)  # the news crosses Redis while the handshakes wait
    release.set()
    await asyncio.gather(*release.tasks, return_exceptions=True)
    await _all_closed(b, clients, "eve")


@pytest.mark.parametrize("make_stack", ["sqlite"], indirect=True)
async def test_events_past_the_queue_bound_are_acked_rate_limited(
    make_stack: StackFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sockets.chat

    monkeypatch.setattr(sockets.chat, "MAX_QUEUED_EVENTS", 5)
    stack = await make_stack(msg_rate=0.0)
    ana = await stack.connect(await stack.register("ana"))
    release = asyncio.Event()
    place = stack.services.chat.place

    async def held(*args: Any, **kwargs: Any) -> Any:
        await release.wait()
        return await place(*args, **kwargs)

    stack.services.chat.place = held  # type: ignore[method-assign]
    calls = [
        asyncio.ensure_future(ana.call("mensaje_privado", {"text": f"m{i}"})) for i in range(8)
    ]
    await asyncio.sleep(0.5)
    release.set()
    acks = await asyncio.gather(*calls)
    assert [a["ok"] for a in acks] == [True] * 5 + [False] * 3, acks
    assert {a["error"] for a in acks[5:]} == {"rate_limited"}
