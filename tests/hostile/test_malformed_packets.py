"""Raw Engine.IO / Socket.IO packets that no real client sends, over a raw WebSocket and over
polling; a flood of abandoned handshakes; a client that never reads.

Throughout, a normal python-socketio client keeps sending and must get its acks, and nothing
but its own messages is ever stored.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import secrets
import socket
import struct
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import httpx
import pytest
from sqlalchemy import func, select

from models.message import Message
from tests.conftest import Client, Stack, StackFactory

pytestmark = pytest.mark.parametrize("make_stack", ["sqlite"], indirect=True)

LEAK_MARKERS = ("Traceback", "Error", "Exception", 'File "')


async def stored(stack: Stack) -> int:
    async with stack.services.sessions() as db:
        return int((await db.execute(select(func.count()).select_from(Message))).scalar_one())


class RawSocket:
    """An Engine.IO v4 WebSocket driven packet by packet."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, sid: str) -> None:
        self.ws, self.sid = ws, sid
        self.seen: list[str | bytes] = []

    @classmethod
    async def open(cls, session: aiohttp.ClientSession, stack: Stack) -> RawSocket:
        ws = await session.ws_connect(f"{stack.url}/socket.io/?EIO=4&transport=websocket")
        first = await ws.receive_str(timeout=5)
        assert first.startswith("0{"), first
        return cls(ws, json.loads(first[1:])["sid"])

    async def join(self, token: str) -> None:
        await self.ws.send_str("40" + json.dumps({"token": token}))
        reply = await self.next(5)
        assert isinstance(reply, str) and reply.startswith("40{"), reply

    async def next(self, timeout: float) -> str | bytes | None:
        """The next data frame, or None when the socket closed (or nothing came in time)."""
        while True:
            try:
                msg = await self.ws.receive(timeout=timeout)
            except TimeoutError:
                return None
            if msg.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                self.seen.append(msg.data)
                if msg.data == "2":  # Engine.IO ping
                    await self.ws.send_str("3")
                    continue
                return msg.data  # type: ignore[no-any-return]
            return None

    async def answers_sync(self) -> bool:
        """Whether the socket still works: `sync` with ack id 77 comes back acked."""
        if self.ws.closed:
            return False
        try:
            await self.ws.send_str('4277["sync",{"after":0}]')
        except (ConnectionError, RuntimeError):
            return False
        while (frame := await self.next(3)) is not None:
            if isinstance(frame, str) and frame.startswith("4377["):
                return json.loads(frame[4:])[0]["ok"] is True
        return False


@dataclass
class Bench:
    stack: Stack
    normal: Client
    token: str
    session: aiohttp.ClientSession
    sent: int = 0

    async def normal_still_works(self) -> float:
        started = time.monotonic()
        ack = await self.normal.call("mensaje_privado", {"text": f"normal {self.sent}"}, timeout=5)
        assert ack["ok"] is True, ack
        self.sent += 1
        return time.monotonic() - started

    async def nothing_else_stored(self) -> None:
        assert await stored(self.stack) == self.sent


@pytest.fixture
async def bench(make_stack: StackFactory) -> AsyncIterator[Bench]:
    stack = await make_stack(msg_rate=0.0, msg_max_chars=40_000)
    normal = await stack.connect(await stack.register("ana"))
    token = await stack.register("eve")
    async with aiohttp.ClientSession() as session:
        yield Bench(stack, normal, token, session)


CHUNK = "[" * 30_000 + "]" * 30_000
# (packets after the namespace connect, whether the socket must still answer afterwards)
WEBSOCKET_CASES: dict[str, tuple[list[str | bytes], bool]] = {
    "garbage": (["hello world"], False),
    "empty": ([""], False),
    "unknown engineio type": (["9", "7abc"], False),
    "unknown socketio type": (["49", "48[]", "4x"], False),
    "bare message type": (["4"], False),
    "truncated json": (['42["mensaje_privado",{"text":"x"', '421["sync",{"after":'], True),
    "non-list payloads": (
        ['42{"text":"x"}', '42"mensaje_privado"', "421123", "42null", "42true"],
        True,
    ),
    "non-string event names": (
        ["42[1,2]", '421[{"a":1}]', "42[null]", "421[]", '421[["mensaje_privado"],{"text":"x"}]'],
        True,
    ),
    "deeply nested json": (['421["mensaje_privado",' + CHUNK + "]"], True),
    "integer of 5000 digits": (['421["sync",{"after":' + "9" * 5000 + "}]"], True),
    # The contract has no binary packets: each of these closes the session.
    "binary event whose attachment is bytes": (
        ['451-["mensaje_privado",{"_placeholder":true,"num":0}]', b"\x00\x01\x02"],
        False,
    ),
    "placeholder out of range": (
        ['451-["mensaje_privado",{"text":{"_placeholder":true,"num":7}}]', b"x"],
        False,
    ),
    "binary frame nobody expects": ([b"\x01\x02garbage", b""], False),
    "too many attachments": (['4599999999999-["mensaje_privado",{"text":"x"}]'], False),
    "acks for ids never sent": (["43[1]", "4399[{}]", "43" + "9" * 99 + "[]"], True),
    "ack id too long": (["42" + "9" * 150 + '["sync",{}]', "43" + "9" * 150 + "[]"], True),
    "huge ack id on an event": (["42" + "9" * 99 + '["sync",{"after":0}]'], True),
    "unknown namespace": (
        ["40/admin,", "41/admin,", '42/admin,["mensaje_privado",{"text":"x"}]'],
        True,
    ),
    "second connect with a bad token": (['40{"token":"not.a.jwt"}'], False),
    "connect_error from the client": (['44{"message":"x"}'], True),
    "engineio upgrade, noop, pong, ping": (["5", "6", "3", "2"], False),
    "oversized packet": (['42["mensaje_privado",{"text":"' + "x" * 70_000 + '"}]'], False),
}


@pytest.mark.parametrize("case", list(WEBSOCKET_CASES))
async def test_malformed_websocket_packets_neither_store_nor_break_the_server(
    bench: Bench, case: str
) -> None:
    packets, must_answer = WEBSOCKET_CASES[case]
    raw = await RawSocket.open(bench.session, bench.stack)
    await raw.join(bench.token)
    for packet in packets:
        if raw.ws.closed:
            break
        if isinstance(packet, bytes):
            await raw.ws.send_bytes(packet)
        else:
            await raw.ws.send_str(packet)
    await bench.normal_still_works()
    engine = bench.stack.services.fanout.server.eio  # type: ignore[attr-defined]
    if await raw.answers_sync():
        outcome = "answers"
    elif raw.ws.closed or raw.sid not in engine.sockets:
        outcome = "closed"
    else:
        outcome = "open but deaf"
    assert outcome == "answers" if must_answer else outcome != "open but deaf", (
        f"{case}: {outcome}; saw {raw.seen!r:.300}"
    )
    for frame in raw.seen:
        text = frame if isinstance(frame, str) else frame.decode("latin-1")
        assert not any(m in text for m in LEAK_MARKERS), frame
    await raw.ws.close()
    await bench.normal_still_works()
    await bench.nothing_else_stored()


async def test_events_before_the_namespace_connect_are_ignored(bench: Bench) -> None:
    raw = await RawSocket.open(bench.session, bench.stack)
    for packet in (
        '42["mensaje_privado",{"text":"sneaky"}]',
        '421["mensaje_privado",{"text":"sneaky"}]',
        '451-["mensaje_privado",{"_placeholder":true,"num":0}]',
        '422["sync",{"after":0}]',
    ):
        await raw.ws.send_str(packet)
    frame = await raw.next(1)
    assert frame is None or not (isinstance(frame, str) and frame.startswith("43")), frame
    await bench.normal_still_works()
    await bench.nothing_else_stored()
    await raw.ws.close()


class Polling:
    """An Engine.IO v4 polling session driven by hand."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http
        self.sid = ""

    @property
    def path(self) -> str:
        return f"/socket.io/?EIO=4&transport=polling&sid={self.sid}"

    async def open(self, token: str) -> None:
        r = await self.http.get("/socket.io/?EIO=4&transport=polling")
        assert r.status_code == 200 and r.text.startswith("0{"), r.text
        self.sid = json.loads(r.text[1:])["sid"]
        assert (await self.post("40" + json.dumps({"token": token}))).text.lower() == "ok"
        assert (await self.http.get(self.path, timeout=5)).text.startswith("40{")

    async def post(self, body: str | bytes) -> httpx.Response:
        return await self.http.post(
            self.path, content=body, headers={"Content-Type": "text/plain;charset=UTF-8"}
        )

    async def answers_sync(self) -> bool:
        if (await self.post('4277["sync",{"after":0}]')).status_code != 200:
            return False
        for _ in range(3):  # earlier answers (a connect_error, say) may come first
            try:
                r = await self.http.get(self.path, timeout=5)
            except httpx.TimeoutException:
                return False
            if r.status_code != 200:
                return False
            if "4377[" in r.text:
                return True
        return False


POLLING_CASES: dict[str, tuple[str | bytes, bool]] = {
    "garbage": ("hello world", False),
    "unknown packet types": ("9\x1e7\x1e49", False),
    "truncated json": ('42["mensaje_privado",{"text":"x"', True),
    "non-list payloads and names": ('42null\x1e42[1,2]\x1e42[{"a":1}]\x1e42[null]', True),
    "base64 binary nobody expects": ("b" + base64.b64encode(b"\x00\x01").decode(), False),
    "invalid base64": ("b!!!not base64", False),
    "unknown namespace": ('40/admin,\x1e42/admin,["mensaje_privado",{"text":"x"}]', True),
    "not utf-8": (b'42["mensaje_privado",{"text":"\xff\xfe"}]', False),
    "over MAX_PACKET_CHARS": ('42["mensaje_privado",{"text":"' + "x" * 70_000 + '"}]', False),
    "over the HTTP body limit": ("4" + "x" * 300_000, False),
}


@pytest.mark.parametrize("case", list(POLLING_CASES))
async def test_malformed_polling_posts_neither_store_nor_break_the_server(
    bench: Bench, case: str
) -> None:
    body, must_answer = POLLING_CASES[case]
    async with httpx.AsyncClient(base_url=bench.stack.url, timeout=10) as http:
        polling = Polling(http)
        await polling.open(bench.token)
        try:
            r = await polling.post(body)
        except httpx.TransportError:
            r = None  # the server closed the connection: allowed
        if r is not None:
            assert r.status_code < 500, (r.status_code, r.text)
            assert not any(m in r.text for m in LEAK_MARKERS), r.text
        await bench.normal_still_works()
        alive = await polling.answers_sync()
        if must_answer:
            assert alive, case
    await bench.normal_still_works()
    await bench.nothing_else_stored()


async def test_content_length_far_above_the_limit_is_refused_without_reading_it(
    bench: Bench,
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", bench.stack.port)
    writer.write(
        b"POST /socket.io/?EIO=4&transport=polling&sid=x HTTP/1.1\r\n"
        b"Host: 127.0.0.1\r\nContent-Type: text/plain\r\nContent-Length: 1000000000\r\n\r\n"
        + b"4"
        * 1000
    )
    await writer.drain()
    head = await asyncio.wait_for(reader.read(200), 5)  # an error status, or closed at once
    assert head == b"" or head.split(b" ")[1][:1] == b"4", head
    writer.close()
    await bench.normal_still_works()
    await bench.nothing_else_stored()


async def test_flood_of_abandoned_handshakes_does_not_stop_a_normal_client(
    bench: Bench,
) -> None:
    """300 handshakes from one address, opened as fast as possible and abandoned: 200 polling
    sessions and 100 WebSockets left open without a namespace connect."""
    latencies: list[float] = []
    stop = asyncio.Event()

    async def keep_sending() -> None:
        while not stop.is_set():
            latencies.append(await bench.normal_still_works())
            await asyncio.sleep(0.05)

    sender = asyncio.ensure_future(keep_sending())
    limits = httpx.Limits(max_connections=50)
    async with httpx.AsyncClient(base_url=bench.stack.url, limits=limits, timeout=20) as http:
        polls = await asyncio.gather(
            *(http.get("/socket.io/?EIO=4&transport=polling") for _ in range(200))
        )
    assert all(r.status_code == 200 for r in polls)
    sockets = await asyncio.gather(
        *(RawSocket.open(bench.session, bench.stack) for _ in range(100))
    )
    await asyncio.sleep(0.3)
    stop.set()
    await sender
    assert len(latencies) >= 3
    assert max(latencies) < 5, latencies
    assert await bench.normal_still_works() < 2
    await bench.nothing_else_stored()
    for raw in sockets:
        await raw.ws.close()


def _frame(payload: bytes, opcode: int = 1) -> bytes:
    """A masked client WebSocket frame."""
    mask = secrets.token_bytes(4)
    size = len(payload)
    head = bytes([0x80 | opcode])
    if size < 126:
        head += bytes([0x80 | size])
    elif size < 65536:
        head += bytes([0x80 | 126]) + struct.pack("!H", size)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", size)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


async def _read_frame(reader: asyncio.StreamReader) -> bytes:
    _, b1 = await reader.readexactly(2)
    size = b1 & 0x7F
    if size == 126:
        (size,) = struct.unpack("!H", await reader.readexactly(2))
    elif size == 127:
        (size,) = struct.unpack("!Q", await reader.readexactly(8))
    return await reader.readexactly(size)


def rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


async def test_a_client_that_never_reads_is_dropped_and_memory_stays_bounded(
    bench: Bench,
) -> None:
    stack = bench.stack
    boss = await stack.connect(await stack.register("boss", admin=True))
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: no autotuning
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", stack.port))
    reader, writer = await asyncio.open_connection(sock=sock, limit=4096)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        f"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: 127.0.0.1:{stack.port}\r\n"
        f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert b" 101 " in head.split(b"\r\n")[0], head
    opened = await asyncio.wait_for(_read_frame(reader), 5)
    eio_sid = json.loads(opened[1:])["sid"]
    writer.write(_frame(b"40" + json.dumps({"token": bench.token}).encode()))
    assert (await asyncio.wait_for(_read_frame(reader), 5)).startswith(b"40{")
    # From here on `eve` never reads again.
    engine = stack.services.fanout.server.eio  # type: ignore[attr-defined]
    assert eio_sid in engine.sockets
    rss_before = rss_bytes()
    text = "x" * 30_000
    dropped_after: int | None = None
    for batch in range(12):  # 12 x 50 = 600 messages of 30 KB: 18 MB, past what the kernel
        # buffers (up to 4 MiB of send buffer) and the 4 MiB bound of sockets/transport.py
        acks = await asyncio.gather(
            *(
                boss.call("mensaje_privado", {"to": "eve", "text": text}, timeout=20)
                for _ in range(50)
            )
        )
        assert all(a["ok"] for a in acks)
        if dropped_after is None and eio_sid not in engine.sockets:
            dropped_after = (batch + 1) * 50
        if batch % 3 == 0:
            assert await bench.normal_still_works() < 5  # responsive for others throughout
    bench.sent += 600
    for _ in range(50):  # the transport bound has tripped by now: give the close 5 s
        if dropped_after is not None or eio_sid not in engine.sockets:
            break
        await asyncio.sleep(0.1)
    left = engine.sockets.get(eio_sid)
    queued = left.queue.qsize() if left is not None else 0
    growth = rss_bytes() - rss_before
    writer.close()
    assert growth < 200 * 2**20, f"RSS grew {growth / 2**20:.0f} MiB"
    assert left is None, f"still connected with {queued} packets queued; RSS +{growth >> 20} MiB"
    assert await bench.normal_still_works() < 2
    await bench.nothing_else_stored()
