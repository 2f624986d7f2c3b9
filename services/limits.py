"""Rate limits: a token bucket per user for messages, a sliding window for failed logins.

These are this process's, in memory. The `Protocol`s are what a shared (Redis) store
implements so that several processes do not each give the whole allowance.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

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
