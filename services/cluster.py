"""What the processes of one deployment share: presence (first and last socket of a user
anywhere), the sids of a user, control news (forced disconnects, revocations) and the broker
health check. `LocalCluster` is one process in memory; `RedisCluster` spans every process on
one Redis."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from redis import asyncio as aioredis
from redis.exceptions import RedisError

from services.metrics import PUBSUB_ROUNDTRIP_SECONDS

log = logging.getLogger(__name__)

Control = dict[str, Any]
ControlHandler = Callable[[Control], Awaitable[None]]

HEARTBEAT_SECONDS = 5.0
# A process that stops heartbeating (crashed, or cut off from Redis) is declared dead after
# this long, and its users' sockets are forgotten: the bound on presence staleness.
DEAD_AFTER_SECONDS = 15.0


class Cluster(Protocol):
    instance: str

    async def start(self, on_control: ControlHandler) -> None: ...

    async def close(self) -> None: ...

    async def socket_opened(self, user: str, sid: str) -> bool:
        """Record a socket; True when it is the user's first anywhere."""

    async def socket_closed(self, user: str, sid: str) -> bool:
        """Forget a socket; True when it was the user's last anywhere."""

    async def sids_of(self, user: str) -> list[str]: ...

    async def restore(self, sockets: list[tuple[str, str]]) -> None:
        """Record again this process's (user, sid) pairs, after the store may have lost them."""

    async def online(self, users: list[str]) -> dict[str, bool]: ...

    async def publish(self, message: Control) -> None:
        """Deliver control news to every process, this one included."""

    async def health(self) -> dict[str, str]: ...


class LocalCluster:
    """One process: everything in memory."""

    def __init__(self) -> None:
        self.instance = secrets.token_hex(4)
        self._sids: dict[str, set[str]] = {}
        self._on_control: ControlHandler | None = None

    async def start(self, on_control: ControlHandler) -> None:
        self._on_control = on_control

    async def close(self) -> None:
        pass

    async def socket_opened(self, user: str, sid: str) -> bool:
        sids = self._sids.setdefault(user, set())
        sids.add(sid)
        return len(sids) == 1

    async def socket_closed(self, user: str, sid: str) -> bool:
        sids = self._sids.get(user)
        if sids is None or sid not in sids:
            return False
        sids.discard(sid)
        if sids:
            return False
        del self._sids[user]
        return True

    async def sids_of(self, user: str) -> list[str]:
        return list(self._sids.get(user, ()))

    async def restore(self, sockets: list[tuple[str, str]]) -> None:
        pass  # memory is never lost while the process lives

    async def online(self, users: list[str]) -> dict[str, bool]:
        return {u: u in self._sids for u in users}

    async def publish(self, message: Control) -> None:
        if self._on_control is not None:
            await self._on_control(message)

    async def health(self) -> dict[str, str]:
        return {}


# KEYS[1] = the user's hash (sid -> instance), KEYS[2] = the instance's set of "user\nsid"
_OPENED = """
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('SADD', KEYS[2], ARGV[3])
return redis.call('HLEN', KEYS[1])
"""
_CLOSED = """
local removed = redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('SREM', KEYS[2], ARGV[2])
if removed == 1 and redis.call('HLEN', KEYS[1]) == 0 then return 1 end
return 0
"""


class RedisCluster:
    """Presence as one Redis hash per user (sid -> instance); each instance heartbeats a key
    with a TTL, and any instance sweeps the sockets of instances whose key has expired."""

    def __init__(self, redis: aioredis.Redis, prefix: str) -> None:
        self.redis, self.prefix = redis, prefix
        self.instance = secrets.token_hex(6)
        self.channel = f"{prefix}:control"
        self._on_control: ControlHandler | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._pings: dict[str, asyncio.Future[None]] = {}
        self._listening = asyncio.Event()
        self._opened = self.redis.register_script(_OPENED)
        self._closed = self.redis.register_script(_CLOSED)

    def _user_key(self, user: str) -> str:
        return f"{self.prefix}:presence:{user}"

    def _instance_key(self, instance: str) -> str:
        return f"{self.prefix}:instance:{instance}:sockets"

    def _alive_key(self, instance: str) -> str:
        return f"{self.prefix}:instance:{instance}:alive"

    async def start(self, on_control: ControlHandler) -> None:
        self._on_control = on_control
        await self._heartbeat_once()
        self._tasks = [
            asyncio.ensure_future(self._listen()),
            asyncio.ensure_future(self._heartbeat()),
        ]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._listening.wait(), 5)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        # Sockets still recorded (their removal failed) are left to the sweep of another
        # instance, which finds this one no longer alive.
        with contextlib.suppress(RedisError, OSError):
            await self.redis.delete(self._alive_key(self.instance))
        await self.redis.aclose()

    # -- presence -------------------------------------------------------------------------

    async def socket_opened(self, user: str, sid: str) -> bool:
        keys = [self._user_key(user), self._instance_key(self.instance)]
        count = await self._opened(keys=keys, args=[sid, self.instance, f"{user}\n{sid}"])
        return int(count) == 1

    async def socket_closed(self, user: str, sid: str) -> bool:
        keys = [self._user_key(user), self._instance_key(self.instance)]
        return int(await self._closed(keys=keys, args=[sid, f"{user}\n{sid}"])) == 1

    async def sids_of(self, user: str) -> list[str]:
        return [_text(s) for s in await self.redis.hkeys(self._user_key(user))]

    async def restore(self, sockets: list[tuple[str, str]]) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            for user, sid in sockets:
                pipe.hset(self._user_key(user), sid, self.instance)
                pipe.sadd(self._instance_key(self.instance), f"{user}\n{sid}")
            await pipe.execute()
        await self._heartbeat_once()

    async def online(self, users: list[str]) -> dict[str, bool]:
        if not users:
            return {}
        async with self.redis.pipeline(transaction=False) as pipe:
            for user in users:
                pipe.exists(self._user_key(user))
            found = await pipe.execute()
        return {u: bool(n) for u, n in zip(users, found, strict=True)}

    async def _heartbeat_once(self) -> None:
        await self.redis.set(self._alive_key(self.instance), "1", px=int(DEAD_AFTER_SECONDS * 1000))

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            try:
                await self._heartbeat_once()
                await self._sweep()
            except (RedisError, OSError) as exc:
                log.warning("presence heartbeat failed: %s", type(exc).__name__)

    async def _sweep(self) -> None:
        """Forget the sockets of dead instances; one sweeper at a time across processes."""
        lock = f"{self.prefix}:sweep-lock"
        if not await self.redis.set(lock, self.instance, nx=True, px=int(HEARTBEAT_SECONDS * 1000)):
            return
        async for key in self.redis.scan_iter(match=f"{self.prefix}:instance:*:sockets", count=200):
            key = _text(key)
            instance = key.split(":")[-2]
            if instance == self.instance or await self.redis.exists(self._alive_key(instance)):
                continue
            for raw in await self.redis.smembers(key):
                member = _text(raw)
                user, _, sid = member.partition("\n")
                keys = [self._user_key(user), key]
                if int(await self._closed(keys=keys, args=[sid, member])) == 1:
                    await self._deliver({"op": "offline", "user": user})
            await self.redis.delete(key)
            log.info("forgot the sockets of a dead instance", extra={"instance": instance})

    # -- control news and health --------------------------------------------------------

    async def publish(self, message: Control) -> None:
        await self.redis.publish(self.channel, json.dumps(message))

    async def _deliver(self, message: Control) -> None:
        if message.get("op") == "ping":
            future = self._pings.pop(str(message.get("nonce")), None)
            if future is not None and not future.done():
                future.set_result(None)
            return
        if self._on_control is not None:
            try:
                await self._on_control(message)
            except Exception:
                log.exception("control message failed", extra={"op": message.get("op")})

    async def _listen(self) -> None:
        """Subscribe, and after any failure subscribe again within about a second (never the
        minute-long backoff of a plain AsyncRedisManager); a reconnect replays `resync`."""
        first = True
        while True:
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                self._listening.set()
                if not first:
                    await self._deliver({"op": "resync"})
                first = False
                async for item in pubsub.listen():
                    if item.get("type") == "message":
                        await self._deliver(json.loads(item["data"]))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._listening.clear()
                log.warning("control channel lost (%s); resubscribing", type(exc).__name__)
                await asyncio.sleep(0.5 + secrets.randbelow(500) / 1000)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def health(self, *, timeout: float = 2.0) -> dict[str, str]:
        """ok only if a message this process publishes comes back through its own listener."""
        nonce = secrets.token_hex(8)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pings[nonce] = future
        try:
            started = time.monotonic()
            await asyncio.wait_for(self.publish({"op": "ping", "nonce": nonce}), timeout)
            await asyncio.wait_for(future, max(0.1, timeout - (time.monotonic() - started)))
            PUBSUB_ROUNDTRIP_SECONDS.observe(time.monotonic() - started)
            return {"broker": "ok"}
        except Exception:
            return {"broker": "down"}
        finally:
            self._pings.pop(nonce, None)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
