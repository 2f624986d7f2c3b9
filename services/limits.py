"""Rate limits: a token bucket per user for messages, sliding windows for failed logins and
registrations.

These are this process's, in memory. The `Protocol`s are what a shared (Redis) store
implements so that several processes do not each give the whole allowance.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
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


class Reservation:
    """One attempt counted in advance against every key it names, until it is released."""

    __slots__ = ("id", "keys", "local", "stamp")

    def __init__(self, keys: tuple[str, ...], stamp: float, *, local: bool = True) -> None:
        self.id, self.keys, self.stamp, self.local = secrets.token_hex(8), keys, stamp, local


class AttemptWindow(Protocol):
    """At most `limit` attempts per key in any `window` seconds (failed logins, registrations).

    An attempt is counted before its work is done, so that N attempts at once cannot all pass
    one check and then all be counted: `reserve` counts it against every key in one atomic
    step, or refuses it (None) when any key is at its limit; `release` takes it back when the
    attempt turned out not to count (a successful login, a refused registration)."""

    async def reserve(self, *keys: str) -> Reservation | None: ...

    async def release(self, held: Reservation) -> None: ...

    async def clear(self, key: str) -> None:
        """Forget every attempt counted against `key`."""


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
    """`AttemptWindow` in this process's memory; `limit <= 0` means no limit."""

    def __init__(self, limit: int, window: float = 60.0, *, clock: Clock = time.monotonic) -> None:
        self.limit, self.window, self.clock = limit, window, clock
        self._hits: dict[str, deque[Reservation]] = {}
        self._next_sweep = 0.0

    async def reserve(self, *keys: str) -> Reservation | None:
        return self.reserve_now(keys)

    def reserve_now(self, keys: tuple[str, ...]) -> Reservation | None:
        """`reserve` without a suspension point: nothing else runs between check and count."""
        now = self.clock()
        if self.limit <= 0:
            return Reservation((), now)
        if any(len(self._recent(key, now)) >= self.limit for key in keys):
            return None
        self._sweep(now)
        held = Reservation(keys, now)
        for key in keys:
            self._hits.setdefault(key, deque()).append(held)
        return held

    async def release(self, held: Reservation) -> None:
        for key in held.keys:
            hits = self._hits.get(key)
            if hits is not None and held in hits:
                hits.remove(held)

    async def clear(self, key: str) -> None:
        self._hits.pop(key, None)

    def _recent(self, key: str, now: float) -> deque[Reservation]:
        hits = self._hits.get(key, deque())
        while hits and hits[0].stamp <= now - self.window:
            hits.popleft()
        return hits

    def _sweep(self, now: float) -> None:
        if now < self._next_sweep:
            return
        self._hits = {k: h for k, h in self._hits.items() if h and h[-1].stamp > now - self.window}
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

# Attempts in a sliding window: one sorted set per key, scored by Redis's clock in ms, whose
# members are reservations. Checked and counted for every key in one step, or not at all.
# KEYS = the keys; ARGV = window ms, limit, the reservation's id
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
for _, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, 0, now - window)
  if redis.call('ZCARD', key) >= limit then
    return 0
  end
end
for _, key in ipairs(KEYS) do
  redis.call('ZADD', key, now, ARGV[3])
  redis.call('PEXPIRE', key, window)
end
return 1
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
    """`SlidingWindow` in Redis, so that N processes give one allowance; this process's own
    window while Redis fails. `kind` names the keys (`<prefix>:<kind>:<key>`)."""

    def __init__(
        self, redis: Any, prefix: str, limit: int, window: float = 60.0, *, kind: str = "failures"
    ) -> None:
        self.redis, self.limit, self.window = redis, limit, window
        self.prefix = f"{prefix}:{kind}"
        self._script = redis.register_script(_RESERVE)
        self.fallback = SlidingWindow(limit, window)

    def _keys(self, keys: tuple[str, ...]) -> list[str]:
        return [f"{self.prefix}:{k}" for k in keys]

    async def reserve(self, *keys: str) -> Reservation | None:
        if self.limit <= 0:
            return Reservation((), 0.0)
        held = Reservation(keys, 0.0, local=False)
        args = [int(self.window * 1000), self.limit, held.id]
        try:
            ok = int(await self._script(keys=self._keys(keys), args=args)) == 1
        except (RedisError, OSError) as exc:
            log.warning("limit store unavailable (%s); limiting per process", type(exc).__name__)
            return self.fallback.reserve_now(keys)
        return held if ok else None

    async def release(self, held: Reservation) -> None:
        if held.local:
            await self.fallback.release(held)
            return
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for key in self._keys(held.keys):
                    pipe.zrem(key, held.id)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            # The reservation stays counted until it leaves the window.
            log.warning("limit store unavailable (%s); reservation kept", type(exc).__name__)

    async def clear(self, key: str) -> None:
        await self.fallback.clear(key)
        # When Redis fails, what it counted leaves the window by itself.
        with contextlib.suppress(RedisError, OSError):
            await self.redis.delete(*self._keys((key,)))
