"""Redis clients for the shared state and for python-socketio's manager, from one URL
(`redis://`, `rediss://`, `redis+sentinel://`), with pools sized and bounded."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator
from typing import Any, ClassVar
from urllib.parse import urlparse

import socketio
from redis import asyncio as aioredis
from socketio.redis_manager import parse_redis_sentinel_url

log = logging.getLogger(__name__)

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


class RedisManager(socketio.AsyncRedisManager):  # type: ignore[misc]
    """AsyncRedisManager with a bounded blocking pool and a listener that resubscribes within
    about a second after Redis comes back (the stock one backs off up to 60 s)."""

    redis: aioredis.Redis | None
    _closing: ClassVar[set[asyncio.Task[None]]] = set()

    async def close(self) -> None:
        """Stop listening and close the connections (python-socketio has no such call)."""
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
                    self._redis_connect()
                    await self.pubsub.subscribe(self.channel)
                    subscribed = True
                    self._get_logger().info("subscribed to %s", self.channel)
                async for message in self.pubsub.listen():
                    yield message
            except Exception as exc:
                self._get_logger().warning(
                    "Socket.IO channel lost (%s); resubscribing", type(exc).__name__
                )
                subscribed = False
                await asyncio.sleep(0.5 + secrets.randbelow(500) / 1000)
