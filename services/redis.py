"""Redis clients for the shared state and for python-socketio's manager, from one URL
(`redis://`, `rediss://`, `redis+sentinel://`), with pools sized and bounded."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, ClassVar
from urllib.parse import urlparse

import socketio
from redis import asyncio as aioredis
from socketio.redis_manager import parse_redis_sentinel_url

from services.emit import DirectEmit

log = logging.getLogger(__name__)

# A probe on the Socket.IO channel (see `RedisManager.probe`). python-socketio ignores a
# message whose method it does not know; ours never reach it.
PROBE_PREFIX = b'{"method": "probe"'

# After the listener was cut off, messages stored from this long before the last one it read
# are delivered again to this process's sockets (commit-to-publish time, clocks of workers).
GAP_MARGIN_SECONDS = 5.0
# Emits published in one pipelined round trip at most.
PUBLISH_BATCH = 200

# python-socketio takes one pooled connection per emit in flight. redis-py's own pool refuses
# a 101st connection, and the manager then drops its client and may drop the emit: a blocking
# pool makes emits wait for a connection instead (bounded by POOL_WAIT_SECONDS).
POOL_SIZE = 64
POOL_WAIT_SECONDS = 5.0
OPTIONS: dict[str, Any] = {
    "health_check_interval": 10,  # an idle pub/sub connection is checked, never timed out
    "socket_keepalive": True,
    "socket_connect_timeout": 3,
}


def connect_redis(url: str) -> aioredis.Redis:
    if urlparse(url).scheme.lower() == "redis+sentinel":
        sentinels, service, kwargs = parse_redis_sentinel_url(url)
        sentinel = aioredis.sentinel.Sentinel(sentinels, **{**OPTIONS, **kwargs})  # type: ignore[no-untyped-call]
        master: aioredis.Redis = sentinel.master_for(service or "mymaster")
        return master
    pool = aioredis.BlockingConnectionPool.from_url(
        url, max_connections=POOL_SIZE, timeout=POOL_WAIT_SECONDS, **OPTIONS
    )
    return aioredis.Redis.from_pool(pool)  # owns the pool: aclose() closes its connections


class RedisManager(socketio.AsyncRedisManager, DirectEmit):  # type: ignore[misc]
    """AsyncRedisManager with a bounded blocking pool, a listener that resubscribes within
    about a second after Redis comes back (the stock one backs off up to 60 s), and probes
    that tell how far behind its listener is (`services.relay`)."""

    redis: aioredis.Redis | None
    connected: bool
    _closing: ClassVar[set[asyncio.Task[None]]] = set()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._probe_seq = 0
        self._probes: dict[int, float] = {}  # probes published, not yet read back: seq -> when
        self._roundtrip: float | None = None  # the last probe's; None while not subscribed
        # Called after the listener resubscribed, with the wall-clock time from which what was
        # published may never have reached it (`Fanout.relay_gap`).
        self.on_gap: Callable[[float], Awaitable[None]] | None = None
        self._last_read = time.time()  # when the listener last read a message
        self._gap_since: float | None = None
        self._gap_tasks: set[asyncio.Task[None]] = set()
        self._outbox: list[tuple[str, asyncio.Future[None]]] = []
        self._publisher: asyncio.Task[None] | None = None

    async def _publish(self, data: Any) -> None:
        """Publish on the Socket.IO channel and return once Redis has it: the emits of many
        callers at once share one pipelined round trip instead of one each."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._outbox.append((self.json.dumps(data), done))
        if self._publisher is None or self._publisher.done():
            self._publisher = asyncio.ensure_future(self._publish_all())
        await done  # a cancelled caller cancels only its own future, which is then skipped

    async def _publish_all(self) -> None:
        while self._outbox:
            batch, self._outbox = self._outbox[:PUBLISH_BATCH], self._outbox[PUBLISH_BATCH:]
            try:
                await self._publish_batch([message for message, _ in batch])
            finally:  # like python-socketio's, a failed publish is logged, not raised
                for _, done in batch:
                    if not done.done():
                        done.set_result(None)

    async def _publish_batch(self, messages: list[str]) -> None:
        for attempt in (1, 2):
            try:
                if not self.connected or self.redis is None:
                    self._redis_connect()
                redis = self.redis
                if redis is None:
                    raise ConnectionError("no Redis client")
                async with redis.pipeline(transaction=False) as pipe:
                    for message in messages:
                        pipe.publish(self.channel, message)
                    await pipe.execute()
                return
            except Exception as exc:
                self._get_logger().error(
                    "Cannot publish to redis (%s)%s",
                    type(exc).__name__,
                    "; retrying" if attempt == 1 else ": giving up",
                )
                self.connected = False

    async def probe(self) -> None:
        """Publish a probe that this process's listener times when it reads it back."""
        if self.redis is None or self._roundtrip is None:
            raise ConnectionError("the Socket.IO channel is not subscribed")
        self._probe_seq += 1
        seq = self._probe_seq
        self._probes[seq] = time.monotonic()
        message = json.dumps({"method": "probe", "host_id": self.host_id, "seq": seq})
        try:
            await self.redis.publish(self.channel, message)
        except BaseException:
            self._probes.pop(seq, None)
            raise

    def lag(self) -> float | None:
        """Seconds behind: the oldest unanswered probe's age, else the last round trip."""
        if self._roundtrip is None:
            return None
        if self._probes:
            return max(self._roundtrip, time.monotonic() - min(self._probes.values()))
        return self._roundtrip

    def _probe_read(self, data: bytes) -> None:
        with contextlib.suppress(ValueError, TypeError, KeyError):
            probe = json.loads(data)
            if probe["host_id"] != self.host_id:
                return
            seq = int(probe["seq"])
            sent = self._probes.pop(seq, None)
            if sent is not None:
                self._roundtrip = time.monotonic() - sent
            for earlier in [s for s in self._probes if s < seq]:  # lost with a reconnect
                del self._probes[earlier]

    async def _listen(self) -> AsyncIterator[Any]:
        channel = self.channel.encode()
        # What this process published comes back to it too, and python-socketio decodes it
        # only to drop it (its own sockets had it at once): all but callbacks, whose host_id
        # is not the last key, are dropped here before decoding (the codec writes compact
        # JSON, orjson's or the standard library's).
        own = f'"host_id":"{self.host_id}"}}'.encode()
        async for message in self._redis_listen_with_retries():
            if message["channel"] != channel or message["type"] != "message":
                continue
            data = message["data"]
            self._last_read = time.time()
            if data.startswith(PROBE_PREFIX):
                self._probe_read(data)
                continue
            if data.endswith(own):
                continue
            yield data

    def _gap_closed(self, since: float) -> None:
        if self.on_gap is None:
            return
        task = asyncio.ensure_future(self.on_gap(since))
        self._gap_tasks.add(task)
        task.add_done_callback(self._gap_tasks.discard)

    async def close(self) -> None:
        """Stop listening and close the connections (python-socketio has no such call)."""
        self._roundtrip = None  # no more probes
        for task in [*self._gap_tasks, self._publisher]:
            if task is not None:
                task.cancel()
        for _, done in self._outbox:
            if not done.done():
                done.set_result(None)
        self._outbox.clear()
        thread = getattr(self, "thread", None)
        if thread is not None:
            thread.cancel()
            with contextlib.suppress(BaseException):
                await thread
        if self.redis is not None:
            await self.redis.aclose()
            self.redis = None

    def _redis_connect(self) -> None:
        if self.redis is not None:  # a reconnect: release the old client's connections
            task = asyncio.ensure_future(self.redis.aclose())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)
        redis = connect_redis(self.redis_url)
        self.redis = redis
        self.pubsub = redis.pubsub(ignore_subscribe_messages=True)
        self.connected = True

    async def _redis_listen_with_retries(self) -> AsyncIterator[Any]:
        subscribed = False
        while True:
            try:
                if not subscribed:
                    self._roundtrip = None
                    self._probes.clear()  # published before: lost, or in the old connection
                    self._redis_connect()
                    await self.pubsub.subscribe(self.channel)
                    subscribed = True
                    self._roundtrip = 0.0
                    self._get_logger().info("subscribed to %s", self.channel)
                    if self._gap_since is not None:
                        self._gap_closed(self._gap_since)
                        self._gap_since = None
                async for message in self.pubsub.listen():
                    yield message
            except Exception as exc:
                self._get_logger().warning(
                    "Socket.IO channel lost (%s); resubscribing", type(exc).__name__
                )
                if self._gap_since is None:  # what was published after this may be lost
                    self._gap_since = self._last_read - (self.lag() or 0.0) - GAP_MARGIN_SECONDS
                self._roundtrip = None
                subscribed = False
                await asyncio.sleep(0.5 + secrets.randbelow(500) / 1000)
