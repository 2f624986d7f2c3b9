"""Load generator for supportchat, through the wire contract only (HTTP API + Socket.IO).

    python bench/load.py setup    --url URL --tokens FILE [--users 200 --admins 5]
    python bench/load.py messages --url URL[,URL...] --tokens FILE --server-pid PID [...]
    python bench/load.py idle     --url URL[,URL...] --tokens FILE --server-pid PID --sockets N

`setup` registers the users (POST /api/register) and logs everyone in (POST /api/login;
admins must exist already: `server.py adduser NAME --name N --admin`), keeping the tokens in
FILE. `messages` is a closed loop by default: each user keeps `--window` messages in flight
(`mensaje_privado` with an ack and a unique client_msg_id); with `--rate R` it is an open
loop instead: the users send R messages a second in total on a fixed schedule, whatever the
acks, at most `--cap` in flight per user (what the cap holds back is counted, not sent), and
latency is measured from each message's scheduled time. The admins receive every user
message and one of them replies to a fraction `--reply` of them. After sending stops, the
run waits `--drain` seconds, then up to `--settle` more for late deliveries. `idle` opens N
idle WebSockets and reports the server's RSS per socket. Results: a human table on stderr,
one JSON line on stdout. Exit status 1 when a correctness counter is not 0.

Two client implementations (`--client`): `raw` (default), a minimal Engine.IO v4 /
Socket.IO v5 client over aiohttp WebSockets, and `socketio`, python-socketio's AsyncClient.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import heapq
import json
import os
import random
import resource
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import aiohttp

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024
USER_PREFIX, ADMIN_PREFIX = "bchusr", "bchadm"
PASSWORD = "bench-password-0123456789"  # noqa: S105 - throwaway accounts of a benchmark DB

OnEvent = Callable[[str, Any], None]


def raise_nofile() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def proc_cpu(pid: int) -> float:
    """utime + stime of a process, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_stime(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[12]) / CLK_TCK


def proc_rss_kb(pid: int) -> int:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_KB


def percentiles(values: list[float], with_max: bool = False) -> dict[str, float | None]:
    keys = ["p50", "p95", "p99"] + (["max"] if with_max else [])
    if not values:
        return dict.fromkeys(keys)
    s = sorted(values)

    def at(q: float) -> float:
        return round(s[min(len(s) - 1, int(q * len(s)))] * 1000, 2)  # ms

    out: dict[str, float | None] = {"p50": at(0.50), "p95": at(0.95), "p99": at(0.99)}
    if with_max:
        out["max"] = round(s[-1] * 1000, 2)
    return out


# -- clients --------------------------------------------------------------------------------


class RawClient:
    """Engine.IO v4 / Socket.IO v5 over one aiohttp WebSocket, namespace "/", JSON only."""

    def __init__(self, session: aiohttp.ClientSession, base: str, token: str, on_event: OnEvent):
        self.session, self.token, self.on_event = session, token, on_event
        self.url = base.replace("http", "ws", 1) + "/socket.io/?EIO=4&transport=websocket"
        self.acks: dict[int, asyncio.Future[Any]] = {}
        self.next_id = 0
        self.connected: asyncio.Future[None] | None = None
        self.closed = False
        self._reader: asyncio.Task[None] | None = None

    async def connect(self, timeout: float = 30) -> None:
        self.connected = asyncio.get_running_loop().create_future()
        self.ws = await self.session.ws_connect(self.url, heartbeat=None, autoping=True)
        self._reader = asyncio.create_task(self._read())
        await asyncio.wait_for(self.connected, timeout)

    async def _read(self) -> None:
        ws = self.ws
        try:
            async for msg in ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue
                data: str = msg.data
                kind = data[:1]
                if kind == "2":
                    await ws.send_str("3")
                elif kind == "4":
                    self._packet(data[1:])
                elif kind == "0":
                    await ws.send_str("40" + json.dumps({"token": self.token}))
                elif kind == "1":
                    break
        finally:
            self.closed = True
            if self.connected is not None and not self.connected.done():
                self.connected.set_exception(ConnectionError("closed during handshake"))
            for fut in self.acks.values():
                if not fut.done():
                    fut.set_exception(ConnectionError("socket closed"))

    def _packet(self, data: str) -> None:
        kind = data[:1]
        if kind == "2":
            name, *args = json.loads(data[1:])
            self.on_event(name, args[0] if args else None)
        elif kind == "3":
            i = 1
            while data[i].isdigit():
                i += 1
            fut = self.acks.pop(int(data[1:i]), None)
            if fut is not None and not fut.done():
                fut.set_result(json.loads(data[i:])[0])
        elif kind == "0" and self.connected is not None and not self.connected.done():
            self.connected.set_result(None)
        elif kind == "4" and self.connected is not None and not self.connected.done():
            self.connected.set_exception(ConnectionError(f"connect_error {data[1:]}"))

    async def call(self, event: str, payload: Any, timeout: float = 60) -> Any:
        self.next_id += 1
        fut = asyncio.get_running_loop().create_future()
        self.acks[self.next_id] = fut
        await self.ws.send_str(f"42{self.next_id}" + json.dumps([event, payload]))
        return await asyncio.wait_for(fut, timeout)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.ws.close()
        if self._reader is not None:
            self._reader.cancel()


class SioClient:
    """The same interface over python-socketio's AsyncClient (WebSocket only)."""

    def __init__(self, session: aiohttp.ClientSession, base: str, token: str, on_event: OnEvent):
        import socketio

        self.base, self.token = base, token
        self.sio = socketio.AsyncClient(reconnection=False)
        self.sio.on("mensaje_privado", lambda data: on_event("mensaje_privado", data))
        self.closed = False

        async def gone(*_: Any) -> None:
            self.closed = True

        self.sio.on("disconnect", gone)

    async def connect(self, timeout: float = 30) -> None:
        await self.sio.connect(
            self.base, auth={"token": self.token}, transports=["websocket"], wait_timeout=timeout
        )

    async def call(self, event: str, payload: Any, timeout: float = 60) -> Any:
        return await self.sio.call(event, payload, timeout=timeout)

    async def close(self) -> None:
        await self.sio.disconnect()


CLIENTS: dict[str, Any] = {"raw": RawClient, "socketio": SioClient}


# -- setup ----------------------------------------------------------------------------------


async def setup(args: argparse.Namespace) -> int:
    """Register the users, log everyone in, keep the tokens."""
    base = args.url.split(",")[0]
    users = [f"{USER_PREFIX}{i}" for i in range(args.users)]
    admins = [f"{ADMIN_PREFIX}{i}" for i in range(args.admins)]
    tokens: dict[str, str] = {}
    gate = asyncio.Semaphore(4)  # argon2 runs on the server's 2 cores

    async def post(session: aiohttp.ClientSession, path: str, body: dict[str, str]) -> Any:
        """POST, again after a pause while the server says it is busy (503: its password
        hashing is saturated, as on a loaded 2-core machine)."""
        for attempt in range(10):
            async with session.post(f"{base}{path}", json=body) as r:
                if r.status != 503:
                    return r.status, await r.json()
            await asyncio.sleep(0.5 * (attempt + 1))
        raise RuntimeError(f"{path} {body['username']}: still 503 after 10 attempts")

    async def one(session: aiohttp.ClientSession, name: str, register: bool) -> None:
        async with gate:
            if register:
                body = {"username": name, "name": f"Bench {name}", "password": PASSWORD}
                status, answer = await post(session, "/api/register", body)
                if status not in (201, 409):
                    raise RuntimeError(f"register {name}: {status} {answer}")
            status, answer = await post(
                session, "/api/login", {"username": name, "password": PASSWORD}
            )
            if status != 200:
                raise RuntimeError(f"login {name}: {status} {answer}")
            tokens[name] = answer["token"]

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(
            *(one(session, u, True) for u in users), *(one(session, a, False) for a in admins)
        )
    await asyncio.to_thread(Path(args.tokens).write_text, json.dumps(tokens))
    sys.stderr.write(f"setup: {len(users)} users, {len(admins)} admins -> {args.tokens}\n")
    return 0


def load_tokens(args: argparse.Namespace) -> tuple[dict[str, str], list[str], list[str]]:
    tokens = json.loads(Path(args.tokens).read_text())
    users = [f"{USER_PREFIX}{i}" for i in range(args.users)]
    admins = [f"{ADMIN_PREFIX}{i}" for i in range(args.admins)]
    missing = [n for n in users + admins if n not in tokens]
    if missing:
        raise SystemExit(f"no token for {missing[:3]}...: run `load.py setup` with these sizes")
    return tokens, users, admins


class Usage:
    """CPU seconds and RSS of the server processes and of this process."""

    def __init__(self, pids: list[int], db_pids: list[int] | None = None) -> None:
        self.pids = pids
        self.db_pids = db_pids or []

    def snap(self) -> dict[str, float]:
        t = os.times()
        return {
            "db_cpu": sum(proc_cpu(p) for p in self.db_pids),
            "server_cpu": sum(proc_cpu(p) for p in self.pids),
            "server_sys": sum(proc_stime(p) for p in self.pids),
            "client_cpu": t.user + t.system,
            "wall": time.monotonic(),
        }

    def rss_kb(self) -> int:
        return sum(proc_rss_kb(p) for p in self.pids)


async def connect_all(clients: list[Any], concurrency: int = 50) -> None:
    gate = asyncio.Semaphore(concurrency)

    async def one(c: Any) -> None:
        async with gate:
            await c.connect()

    await asyncio.gather(*(one(c) for c in clients))


# -- messages -------------------------------------------------------------------------------


async def messages(args: argparse.Namespace) -> int:
    tokens, users, admins = load_tokens(args)
    urls = args.url.split(",")
    usage = Usage(args.server_pid, args.db_pid)
    run = uuid.uuid4().hex[:8]
    client_cls = CLIENTS[args.client]
    open_loop = args.rate > 0
    sent_at: dict[str, float] = {}  # client_msg_id -> send time (monotonic; open loop: scheduled)
    expected: dict[int, set[str]] = {}  # message id -> who must receive it
    received: dict[int, Counter[str]] = defaultdict(Counter)
    ack_lat: list[tuple[float, float]] = []  # (send time, latency)
    user_ack_lat: list[tuple[float, float]] = []  # the same, user messages only
    deliv_lat: list[tuple[float, float]] = []
    ok_at: list[float] = []  # time of each ok ack
    ok_user_at: list[float] = []  # time of each ok ack of a user message
    delivered_at: list[float] = []
    errors: Counter[str] = Counter()
    stop = asyncio.Event()
    reply_queues: list[asyncio.Queue[dict[str, Any]]] = [asyncio.Queue() for _ in admins]
    reply_threshold = int(args.reply * 1000)
    admin_set = set(admins)
    # Open loop: scheduled user messages, what was sent (with its lateness), what the cap held.
    scheduled_at: list[float] = []
    send_lag: list[tuple[float, float]] = []  # (scheduled time, actual send - scheduled)
    capped_at: dict[str, list[float]] = {"user": [], "admin": []}
    in_flight: Counter[str] = Counter()  # per sender, open loop
    in_flight_max = 0
    tasks: set[asyncio.Task[None]] = set()
    fire_reply: Callable[[int, dict[str, Any], float], None] | None = None

    def on_event_for(me: str, admin_index: int | None) -> OnEvent:
        def on_event(name: str, m: Any) -> None:
            if name != "mensaje_privado":
                return
            now = time.monotonic()
            delivered_at.append(now)
            received[m["id"]][me] += 1
            if admin_index is None or m["to"] != "admins":
                return
            t0 = sent_at.get(m.get("client_msg_id") or "")
            if t0 is not None:
                deliv_lat.append((t0, now - t0))
            mid = m["id"]
            # One admin answers, chosen by the id; a fraction `reply` of the messages.
            if mid % len(admins) == admin_index and (mid * 2654435761) % 1000 < reply_threshold:
                if stop.is_set():
                    return
                if fire_reply is not None:
                    fire_reply(admin_index, m, now)
                else:
                    reply_queues[admin_index].put_nowait(m)

        return on_event

    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0, force_close=False)
    ) as session:
        admin_clients = [
            client_cls(session, urls[i % len(urls)], tokens[a], on_event_for(a, i))
            for i, a in enumerate(admins)
        ]
        user_clients = [
            client_cls(session, urls[i % len(urls)], tokens[u], on_event_for(u, None))
            for i, u in enumerate(users)
        ]
        await connect_all(admin_clients + user_clients)
        await asyncio.sleep(1)

        async def record_ack(kind: str, t0: float, ack: Any, expect: set[str]) -> None:
            now = time.monotonic()
            if not isinstance(ack, dict) or not ack.get("ok"):
                errors[f"{kind}:{(ack or {}).get('error', 'bad_ack')}"] += 1
                return
            ok_at.append(now)
            ack_lat.append((t0, now - t0))
            if kind == "user":
                ok_user_at.append(now)
                user_ack_lat.append((t0, now - t0))
            expected[ack["message"]["id"]] = expect

        pad = "x" * max(0, args.text_size - 40)

        async def user_loop(client: Any, user: str, lane: int) -> None:
            seq = 0
            while not stop.is_set():
                seq += 1
                cid = f"{run}.{user}.{lane}.{seq}"
                payload = {"text": f"hello {user} #{seq} {pad}", "client_msg_id": cid}
                t0 = time.monotonic()
                sent_at[cid] = t0
                try:
                    ack = await client.call("mensaje_privado", payload)
                except Exception as exc:
                    errors[f"user:{type(exc).__name__}"] += 1
                    if client.closed:
                        return
                    continue
                await record_ack("user", t0, ack, admin_set)

        def reply_payload(admin: str, seq: int, m: dict[str, Any]) -> dict[str, Any]:
            return {
                "to": m["from"],
                "text": f"re: {m['id']}",
                "client_msg_id": f"{run}.{admin}.{seq}.{random.random()}",  # noqa: S311
            }

        async def admin_loop(client: Any, admin: str, queue: asyncio.Queue[dict[str, Any]]) -> None:
            seq = 0
            while True:
                m = await queue.get()
                if stop.is_set():
                    continue
                seq += 1
                payload = reply_payload(admin, seq, m)
                t0 = time.monotonic()
                try:
                    ack = await client.call("mensaje_privado", payload)
                except Exception as exc:
                    errors[f"admin:{type(exc).__name__}"] += 1
                    continue
                await record_ack("admin", t0, ack, (admin_set - {admin}) | {m["from"]})

        # -- open loop: one dispatcher walks the merged schedule of all users -----------------

        async def send_open(
            kind: str,
            client: Any,
            sender: str,
            payload: dict[str, Any],
            t0: float,
            expect: set[str],
        ) -> None:
            """One message sent at (or, when this client is behind, after) its scheduled time
            t0; its latency counts from t0."""
            send_lag.append((t0, time.monotonic() - t0))
            try:
                ack = await client.call("mensaje_privado", payload)
            except Exception as exc:
                errors[f"{kind}:{type(exc).__name__}"] += 1
                return
            finally:
                in_flight[sender] -= 1
            await record_ack(kind, t0, ack, expect)

        def launch(
            kind: str, sender: str, t0: float, make: Callable[[], Coroutine[Any, Any, None]]
        ) -> None:
            nonlocal in_flight_max
            if in_flight[sender] >= args.cap:
                capped_at[kind].append(t0)
                return
            in_flight[sender] += 1
            in_flight_max = max(in_flight_max, in_flight[sender])
            task = asyncio.create_task(make())
            tasks.add(task)
            task.add_done_callback(tasks.discard)

        reply_seq = [0] * len(admins)

        def open_reply(admin_index: int, m: dict[str, Any], now: float) -> None:
            admin = admins[admin_index]
            reply_seq[admin_index] += 1
            payload = reply_payload(admin, reply_seq[admin_index], m)
            expect = (admin_set - {admin}) | {m["from"]}
            client = admin_clients[admin_index]
            launch(
                "admin", admin, now, lambda: send_open("admin", client, admin, payload, now, expect)
            )

        async def dispatcher(t_begin: float, t_stop: float) -> None:
            rng = random.Random(args.seed)  # noqa: S311 - a load schedule, not a secret
            per_user = args.rate / len(users)

            def gap() -> float:
                if args.arrival == "uniform":
                    return float(1 / per_user)
                return rng.expovariate(per_user)

            # First send: uniform, a random phase within the period; Poisson (memoryless), an
            # exponential gap from the start.
            heap = [
                (t_begin + (rng.random() if args.arrival == "uniform" else 1) * gap(), i)
                for i in range(len(users))
            ]
            heapq.heapify(heap)
            seqs = [0] * len(users)
            burst = 0
            while True:
                t, i = heap[0]
                if t >= t_stop:
                    return
                now = time.monotonic()
                if t > now:
                    burst = 0
                    await asyncio.sleep(t - now)
                    continue
                heapq.heapreplace(heap, (t + gap(), i))
                user, client = users[i], user_clients[i]
                seqs[i] += 1
                cid = f"{run}.{user}.{seqs[i]}"
                payload = {"text": f"hello {user} #{seqs[i]} {pad}", "client_msg_id": cid}
                scheduled_at.append(t)
                sent_at[cid] = t

                def make(
                    c: Any = client, u: str = user, p: dict[str, Any] = payload, t0: float = t
                ) -> Coroutine[Any, Any, None]:
                    return send_open("user", c, u, p, t0, admin_set)

                launch("user", user, t, make)
                burst += 1
                if burst % 64 == 0:  # behind schedule: let the sends and acks run meanwhile
                    await asyncio.sleep(0)

        # As the server does: what exists now (clients, their sockets) is out of the
        # collector's sight, whose full collections (up to ~100 ms here) would otherwise show
        # as the server's latency.
        gc.collect()
        gc.freeze()
        if open_loop:
            fire_reply = open_reply
            t_begin = time.monotonic()
            senders = [
                asyncio.create_task(
                    dispatcher(t_begin, t_begin + args.warmup + args.duration + 0.05)
                )
            ]
            repliers: list[asyncio.Task[None]] = []
        else:
            senders = [
                asyncio.create_task(user_loop(c, u, lane))
                for c, u in zip(user_clients, users, strict=True)
                for lane in range(args.window)
            ]
            repliers = [
                asyncio.create_task(admin_loop(c, a, reply_queues[i]))
                for i, (c, a) in enumerate(zip(admin_clients, admins, strict=True))
                for _ in range(args.window)
            ]
        await asyncio.sleep(args.warmup)
        before = usage.snap()
        await asyncio.sleep(args.duration)
        after = usage.snap()
        rss = usage.rss_kb()
        stop.set()
        t_stop = time.monotonic()
        for q in reply_queues:
            while not q.empty():
                q.get_nowait()
        await asyncio.wait(senders, timeout=60)
        if tasks:  # open loop: the messages still in flight get their acks (or time out)
            await asyncio.wait(set(tasks), timeout=65)
        await asyncio.sleep(0.5)
        for r in repliers:
            r.cancel()
        t_acked = time.monotonic()
        await asyncio.sleep(args.drain)  # let the last deliveries arrive

        def missing_pairs() -> set[tuple[int, str]]:
            return {
                (mid, who)
                for mid, want in expected.items()
                for who in want - received.get(mid, Counter()).keys()
            }

        at_drain = missing_pairs()
        t_settled = time.monotonic()
        still = at_drain
        if at_drain and args.settle > 0:  # keep listening: late, or lost?
            deadline = t_settled + args.settle
            while still and time.monotonic() < deadline:
                await asyncio.sleep(0.25)
                still = {(mid, who) for mid, who in still if not received[mid].get(who)}
            t_settled = time.monotonic()
        disconnected = sum(c.closed for c in admin_clients + user_clients)
        for c in admin_clients + user_clients:
            await c.close()

    t_start, t_end = before["wall"], after["wall"]
    window = t_end - t_start

    def in_window(times: list[float]) -> int:
        return sum(t_start <= t < t_end for t in times)

    acked = in_window(ok_at)
    missing = len(still)
    duplicates = sum(n - 1 for c in received.values() for n in c.values() if n > 1)
    unexpected = sum(1 for mid in received if mid not in expected)
    result: dict[str, Any] = {
        "mode": "messages",
        "label": args.label,
        "client": args.client,
        "users": len(users),
        "admins": len(admins),
        "load": "open" if open_loop else "closed",
        "window": None if open_loop else args.window,
        "rate": args.rate if open_loop else None,
        "reply": args.reply,
        "duration_s": round(window, 2),
        "acked_per_s": round(acked / window, 1),
        "deliveries_per_s": round(in_window(delivered_at) / window, 1),
        "ack_latency_ms": percentiles([lat for t, lat in ack_lat if t_start <= t < t_end]),
        "user_ack_latency_ms": percentiles(
            [lat for t, lat in user_ack_lat if t_start <= t < t_end]
        ),
        "delivery_latency_ms": percentiles([lat for t, lat in deliv_lat if t_start <= t < t_end]),
        "server_cpu_ms_per_msg": round(
            (after["server_cpu"] - before["server_cpu"]) * 1000 / max(acked, 1), 3
        ),
        "server_cpu_pct": round((after["server_cpu"] - before["server_cpu"]) * 100 / window, 1),
        # the database server's own CPU (MariaDB's mariadbd), when its pid was given
        "db_cpu_ms_per_msg": round((after["db_cpu"] - before["db_cpu"]) * 1000 / max(acked, 1), 3)
        if args.db_pid
        else None,
        "total_cpu_ms_per_msg": round(
            (after["server_cpu"] - before["server_cpu"] + after["db_cpu"] - before["db_cpu"])
            * 1000
            / max(acked, 1),
            3,
        ),
        "server_sys_share": round(
            (after["server_sys"] - before["server_sys"])
            / max(after["server_cpu"] - before["server_cpu"], 1e-9),
            2,
        ),
        "client_cpu_ms_per_msg": round(
            (after["client_cpu"] - before["client_cpu"]) * 1000 / max(acked, 1), 3
        ),
        "server_rss_mb": round(rss / 1024, 1),
    }
    if open_loop:
        scheduled = in_window(scheduled_at)
        capped_user = in_window(capped_at["user"])
        result.update(
            arrival=args.arrival,
            cap=args.cap,
            offered_per_s=round(scheduled / window, 1),
            sent_per_s=round((scheduled - capped_user) / window, 1),
            achieved_per_s=round(in_window(ok_user_at) / window, 1),
            replies_per_s=round((acked - in_window(ok_user_at)) / window, 1),
            not_sent_cap={"user": capped_user, "admin": in_window(capped_at["admin"])},
            not_sent_cap_total={k: len(v) for k, v in capped_at.items()},
            not_sent_share=round(capped_user / max(scheduled, 1), 4),
            send_lag_ms=percentiles(
                [lag for t, lag in send_lag if t_start <= t < t_end], with_max=True
            ),
            in_flight_max=in_flight_max,
        )
    result.update(
        acks_done_after_stop_s=round(t_acked - t_stop, 2),
        acked_total=len(expected),
        delivered_late=len(at_drain) - missing,
        acked_not_delivered=missing,
        settle_waited_s=round(t_settled - t_acked - args.drain, 2) if args.settle > 0 else 0,
        duplicates_delivered=duplicates,
        unexpected_deliveries=unexpected,
        errors=dict(errors),
        disconnected=disconnected,
    )
    print_table(result)
    sys.stdout.write(json.dumps(result) + "\n")
    return 0 if missing == 0 and duplicates == 0 else 1


def print_table(r: dict[str, Any]) -> None:
    rows = []
    for k, v in r.items():
        if isinstance(v, dict) and {"p50", "p95", "p99"} <= v.keys():
            v = "  ".join(f"{q} {x}" for q, x in v.items())
        rows.append((k, v))
    width = max(len(k) for k, _ in rows)
    sys.stderr.write("".join(f"  {k:<{width}}  {v}\n" for k, v in rows))


# -- idle -----------------------------------------------------------------------------------


async def idle(args: argparse.Namespace) -> int:
    tokens, users, _admins = load_tokens(args)
    urls = args.url.split(",")
    usage = Usage(args.server_pid)
    ignore: OnEvent = lambda _n, _d: None  # noqa: E731

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

        def make(i: int) -> RawClient:
            return RawClient(session, urls[i % len(urls)], tokens[users[i % len(users)]], ignore)

        warm = [make(i) for i in range(args.warm)]
        await connect_all(warm)
        await asyncio.sleep(3)
        rss_before = usage.rss_kb()
        client_rss_before = proc_rss_kb(os.getpid())
        clients = [make(i) for i in range(args.sockets)]
        t0 = time.monotonic()
        await connect_all(clients, args.concurrency)
        connect_s = time.monotonic() - t0
        before = usage.snap()
        await asyncio.sleep(args.hold)
        after = usage.snap()
        rss_after = usage.rss_kb()
        closed = sum(c.closed for c in warm + clients)
        client_rss_after = proc_rss_kb(os.getpid())
        await asyncio.gather(*(c.close() for c in warm + clients))

    n = args.sockets
    result = {
        "mode": "idle",
        "label": args.label,
        "sockets": n,
        "server_rss_before_mb": round(rss_before / 1024, 1),
        "server_rss_after_mb": round(rss_after / 1024, 1),
        "server_kb_per_socket": round((rss_after - rss_before) / n, 1),
        "connects_per_s": round(n / connect_s, 1),
        "idle_server_cpu_pct": round(
            (after["server_cpu"] - before["server_cpu"]) * 100 / (after["wall"] - before["wall"]),
            1,
        ),
        "client_kb_per_socket": round((client_rss_after - client_rss_before) / n, 1),
        "closed": closed,
    }
    print_table(result)
    sys.stdout.write(json.dumps(result) + "\n")
    return 0 if closed == 0 else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["setup", "messages", "idle"])
    parser.add_argument("--url", default="http://127.0.0.1:3000", help="comma-separated")
    parser.add_argument("--tokens", required=True, help="JSON file of tokens (setup writes it)")
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--admins", type=int, default=5)
    parser.add_argument("--window", type=int, default=1, help="messages in flight per user")
    parser.add_argument("--reply", type=float, default=0.2, help="fraction the admins answer")
    parser.add_argument("--duration", type=float, default=30)
    parser.add_argument("--warmup", type=float, default=5)
    parser.add_argument(
        "--rate",
        type=float,
        default=0,
        help="open loop: user messages per second in total, on a fixed schedule (0: closed loop)",
    )
    parser.add_argument("--cap", type=int, default=64, help="open loop: in flight per sender")
    parser.add_argument(
        "--arrival",
        choices=["poisson", "uniform"],
        default="poisson",
        help="open loop: each user's send times, Poisson or evenly spaced (random phase)",
    )
    parser.add_argument("--seed", type=int, default=1, help="open loop: the schedule's seed")
    parser.add_argument("--drain", type=float, default=2, help="seconds left for deliveries")
    parser.add_argument(
        "--settle",
        type=float,
        default=0,
        help="then up to this many more seconds to tell late deliveries from lost ones",
    )
    parser.add_argument("--text-size", type=int, default=100)
    parser.add_argument("--server-pid", type=int, action="append", default=[])
    parser.add_argument(
        "--db-pid", type=int, action="append", default=[], help="the database server's process"
    )
    parser.add_argument("--client", choices=sorted(CLIENTS), default="raw")
    parser.add_argument("--label", default="")
    parser.add_argument("--sockets", type=int, default=2000, help="idle: sockets to open")
    parser.add_argument("--warm", type=int, default=50, help="idle: sockets open before")
    parser.add_argument("--concurrency", type=int, default=50, help="idle: connects at once")
    parser.add_argument("--hold", type=float, default=5, help="idle: seconds held open")
    args = parser.parse_args()
    raise_nofile()
    run: dict[str, Callable[[argparse.Namespace], Coroutine[Any, Any, int]]] = {
        "setup": setup,
        "messages": messages,
        "idle": idle,
    }
    return asyncio.run(run[args.mode](args))


if __name__ == "__main__":
    sys.exit(main())
