"""Rate limits: a token bucket per user for messages, a sliding window for failed logins.

These are this process's, in memory. The `Protocol`s are what a shared (Redis) store
implements so that several processes do not each give the whole allowance.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from redis.exceptions import RedisError

log = logging.getLogger(__name__)

Clock = Callable[[], float]


class MessageLimit(Protocol):
    async def take(self, key: str) -> bool:
        """Take one token; False when the bucket is empty."""

    async def give_back(self, key: str) -> None:
        """Return a token taken for work that turned out not to count (a duplicate)."""


class FailureWindow(Protocol):
    async def blocked(self, *keys: str) -> bool:
        """True when any key has reached its limit of failures in the window."""

    async def fail(self, *keys: str) -> None: ...

    async def clear(self, key: str) -> None: ...


@dataclass
class _Bucket:
    tokens: float
    stamp: float


class TokenBuckets:
    """`rate` tokens a second up to `burst`; `rate == 0` means no limit."""

    def __init__(self, rate: float, burst: int, *, clock: Clock = time.monotonic) -> None:
        self.rate, self.burst, self.clock = rate, burst, clock
        self._buckets: dict[str, _Bucket] = {}
        self._next_sweep = 0.0

    async def take(self, key: str) -> bool:
        if self.rate <= 0:
            return True
        now = self.clock()
        self._sweep(now)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(float(self.burst), now)
        else:
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.stamp) * self.rate)
            bucket.stamp = now
        if bucket.tokens < 1:
            return False
        bucket.tokens -= 1
        return True

    async def give_back(self, key: str) -> None:
        bucket = self._buckets.get(key)
        if bucket is not None:
            bucket.tokens = min(self.burst, bucket.tokens + 1)

    def _sweep(self, now: float) -> None:
        """Forget buckets that have refilled, so memory follows active users only."""
        if now < self._next_sweep:
            return
        full_after = self.burst / self.rate
        self._buckets = {k: b for k, b in self._buckets.items() if now - b.stamp < full_after}
        self._next_sweep = now + max(full_after, 10.0)


class SlidingWindow:
    """At most `limit` failures per key in any `window` seconds."""

    def __init__(self, limit: int, window: float = 60.0, *, clock: Clock = time.monotonic) -> None:
        self.limit, self.window, self.clock = limit, window, clock
        self._hits: dict[str, deque[float]] = {}
        self._next_sweep = 0.0

    async def blocked(self, *keys: str) -> bool:
        now = self.clock()
        return any(len(self._recent(key, now)) >= self.limit for key in keys)

    async def fail(self, *keys: str) -> None:
        now = self.clock()
        self._sweep(now)
        for key in keys:
            hits = self._recent(key, now)
            hits.append(now)
            self._hits[key] = hits

    async def clear(self, key: str) -> None:
        self._hits.pop(key, None)

    def _recent(self, key: str, now: float) -> deque[float]:
        hits = self._hits.get(key, deque())
        while hits and hits[0] <= now - self.window:
            hits.popleft()
        return hits

    def _sweep(self, now: float) -> None:
        if now < self._next_sweep:
            return
        self._hits = {k: h for k, h in self._hits.items() if h and h[-1] > now - self.window}
        self._next_sweep = now + self.window


# Token bucket, atomic in Redis with Redis's clock (the same for every process and machine).
# KEYS[1] = bucket; ARGV = rate, burst, "take" or "give"
_BUCKET = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local data = redis.call('HMGET', KEYS[1], 't', 's')
local tokens = tonumber(data[1]) or burst
local stamp = tonumber(data[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - stamp) / 1000 * rate)
local ok = 1
if ARGV[3] == 'take' then
  if tokens >= 1 then tokens = tokens - 1 else ok = 0 end
else
  tokens = math.min(burst, tokens + 1)
end
redis.call('HSET', KEYS[1], 't', tokens, 's', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return ok
"""

# Failures in a sliding window: one sorted set per key, scored by Redis's clock in ms.
# KEYS = the keys; ARGV = window ms, limit, "check" or "fail"
_WINDOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
local blocked = 0
for _, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, 0, now - window)
  if ARGV[3] == 'fail' then
    redis.call('ZADD', key, now, t[1] .. t[2] .. ':' .. math.random())
    redis.call('PEXPIRE', key, window)
  elseif redis.call('ZCARD', key) >= limit then
    blocked = 1
  end
end
return blocked
"""


class RedisTokenBuckets:
    """`TokenBuckets` counted in Redis, so that N processes give one allowance. If Redis fails,
    this process's own buckets decide until it is back."""

    def __init__(self, redis: Any, prefix: str, rate: float, burst: int) -> None:
        self.prefix, self.rate, self.burst = prefix, rate, burst
        self._script = redis.register_script(_BUCKET)
        self.fallback = TokenBuckets(rate, burst)

    async def _run(self, key: str, op: str) -> bool:
        try:
            keys = [f"{self.prefix}:bucket:{key}"]
            return int(await self._script(keys=keys, args=[self.rate, self.burst, op])) == 1
        except (RedisError, OSError) as exc:
            log.warning(
                "rate limit store unavailable (%s); limiting per process", type(exc).__name__
            )
            return await (self.fallback.take(key) if op == "take" else self._give_local(key))

    async def _give_local(self, key: str) -> bool:
        await self.fallback.give_back(key)
        return True

    async def take(self, key: str) -> bool:
        if self.rate <= 0:
            return True
        return await self._run(key, "take")

    async def give_back(self, key: str) -> None:
        if self.rate > 0:
            await self._run(key, "give")


class RedisSlidingWindow:
    """`SlidingWindow` in Redis; this process's own window while Redis fails."""

    def __init__(self, redis: Any, prefix: str, limit: int, window: float = 60.0) -> None:
        self.redis, self.prefix, self.limit, self.window = redis, prefix, limit, window
        self._script = redis.register_script(_WINDOW)
        self.fallback = SlidingWindow(limit, window)

    def _keys(self, keys: tuple[str, ...]) -> list[str]:
        return [f"{self.prefix}:failures:{k}" for k in keys]

    async def _run(self, keys: tuple[str, ...], op: str) -> bool:
        args = [int(self.window * 1000), self.limit, op]
        return int(await self._script(keys=self._keys(keys), args=args)) == 1

    async def blocked(self, *keys: str) -> bool:
        try:
            return await self._run(keys, "check")
        except (RedisError, OSError):
            return await self.fallback.blocked(*keys)

    async def fail(self, *keys: str) -> None:
        try:
            await self._run(keys, "fail")
        except (RedisError, OSError):
            await self.fallback.fail(*keys)

    async def clear(self, key: str) -> None:
        try:
            await self.redis.delete(*self._keys((key,)))
        except (RedisError, OSError):
            await self.fallback.clear(key)
