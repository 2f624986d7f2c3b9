"""Redis clients (for the shared state, and for the Socket.IO manager's fan-out) from one URL
(`redis://`, `rediss://`, `redis+sentinel://`), with pools sized and bounded."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

from redis import asyncio as aioredis
from socketio.redis_manager import parse_redis_sentinel_url

# redis-py's own pool refuses a 101st connection (and python-socketio's Redis manager then
# drops its client, and may drop the emit): a blocking pool makes callers wait for a
# connection instead (bounded by POOL_WAIT_SECONDS).
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
