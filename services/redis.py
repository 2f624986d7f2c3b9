"""Redis clients (for the shared state, and for the Socket.IO manager's fan-out) from one URL
(`redis://`, `rediss://`, `redis+sentinel://`), with pools sized and bounded."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlparse

from redis import asyncio as aioredis

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


def sentinel_parts(url: str) -> tuple[list[tuple[str, int]], str, dict[str, Any]]:
    """`redis+sentinel://[[user]:password@]host:port[,host:port...][/db[/service]]` as
    (sentinels, service name, options): the format python-socketio's Redis manager reads."""
    parts = urlparse(url)
    sentinels = []
    for host_port in parts.netloc.rpartition("@")[2].split(","):
        host, sep, port = host_port.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError(f"expected host:port in a redis+sentinel URL, got {host_port!r}")
        sentinels.append((host.strip("[]"), int(port)))
    options: dict[str, Any] = {}
    if parts.username:
        options["username"] = unquote(parts.username)
    if parts.password:
        options["password"] = unquote(parts.password)
    path = parts.path.split("/")
    if len(path) >= 2 and path[1]:
        options["db"] = int(path[1])
    service = path[2] if len(path) >= 3 and path[2] else "mymaster"
    return sentinels, service, options


def connect_redis(url: str) -> aioredis.Redis:
    if urlparse(url).scheme.lower() == "redis+sentinel":
        sentinels, service, options = sentinel_parts(url)
        sentinel = aioredis.sentinel.Sentinel(sentinels, **{**OPTIONS, **options})  # type: ignore[no-untyped-call]
        master: aioredis.Redis = sentinel.master_for(service)
        return master
    pool = aioredis.BlockingConnectionPool.from_url(
        url, max_connections=POOL_SIZE, timeout=POOL_WAIT_SECONDS, **OPTIONS
    )
    return aioredis.Redis.from_pool(pool)  # owns the pool: aclose() closes its connections
