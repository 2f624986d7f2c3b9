"""services.limits: the message token bucket and the failed-login window, on a fake clock."""

from __future__ import annotations

from services.limits import SlidingWindow, TokenBuckets


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


async def take_all(buckets: TokenBuckets, key: str, attempts: int) -> list[bool]:
    return [await buckets.take(key) for _ in range(attempts)]


# Token buckets -----------------------------------------------------------------------------


async def test_burst_is_allowed_then_refused():
    buckets = TokenBuckets(rate=20, burst=40, clock=Clock())
    assert await take_all(buckets, "bob", 40) == [True] * 40
    assert await buckets.take("bob") is False


async def test_tokens_refill_at_the_rate():
    clock = Clock()
    buckets = TokenBuckets(rate=2, burst=3, clock=clock)
    await take_all(buckets, "bob", 3)
    clock.advance(0.25)
    assert await buckets.take("bob") is False  # half a token
    clock.advance(0.25)
    assert await buckets.take("bob") is True  # 1.0
    assert await buckets.take("bob") is False
    clock.advance(1.0)
    assert await take_all(buckets, "bob", 3) == [True, True, False]


async def test_refill_never_exceeds_the_burst():
    clock = Clock()
    buckets = TokenBuckets(rate=5, burst=4, clock=clock)
    await take_all(buckets, "bob", 4)
    clock.advance(3600)
    assert await take_all(buckets, "bob", 5) == [True] * 4 + [False]


async def test_sustained_sending_at_the_rate_is_allowed():
    clock = Clock()
    buckets = TokenBuckets(rate=4, burst=1, clock=clock)
    for _ in range(50):
        assert await buckets.take("bob") is True
        clock.advance(0.25)


async def test_rate_zero_means_unlimited():
    buckets = TokenBuckets(rate=0, burst=1, clock=Clock())
    assert await take_all(buckets, "bob", 1000) == [True] * 1000


async def test_give_back_returns_one_token():
    buckets = TokenBuckets(rate=1, burst=2, clock=Clock())
    await take_all(buckets, "bob", 2)
    await buckets.give_back("bob")
    assert await take_all(buckets, "bob", 2) == [True, False]


async def test_give_back_never_exceeds_the_burst():
    buckets = TokenBuckets(rate=1, burst=2, clock=Clock())
    await buckets.take("bob")
    for _ in range(5):
        await buckets.give_back("bob")
    assert await take_all(buckets, "bob", 3) == [True, True, False]


async def test_give_back_for_unknown_key_changes_nothing():
    buckets = TokenBuckets(rate=1, burst=2, clock=Clock())
    await buckets.give_back("ghost")
    assert await take_all(buckets, "ghost", 3) == [True, True, False]


async def test_each_user_has_its_own_bucket():
    buckets = TokenBuckets(rate=1, burst=2, clock=Clock())
    await take_all(buckets, "bob", 2)
    assert await buckets.take("bob") is False
    assert await take_all(buckets, "ana", 2) == [True, True]


async def test_idle_bucket_comes_back_full_after_being_forgotten():
    clock = Clock()
    buckets = TokenBuckets(rate=1, burst=3, clock=clock)
    await take_all(buckets, "bob", 3)
    clock.advance(60)
    await buckets.take("ana")  # sweeps bob away
    assert await take_all(buckets, "bob", 4) == [True, True, True, False]


# Sliding window ----------------------------------------------------------------------------


async def fail(window: SlidingWindow, *keys: str) -> None:
    """An attempt counted and kept: a failed login."""
    assert await window.reserve(*keys) is not None


async def blocked(window: SlidingWindow, *keys: str) -> bool:
    """Whether `reserve` refuses an attempt now (one it grants is given back at once)."""
    held = await window.reserve(*keys)
    if held is not None:
        await window.release(held)
    return held is None


async def fail_times(window: SlidingWindow, times: int, *keys: str) -> None:
    for _ in range(times):
        await fail(window, *keys)


async def test_blocked_once_the_limit_is_reached():
    window = SlidingWindow(limit=3, clock=Clock())
    await fail_times(window, 2, "user:bob")
    assert await blocked(window, "user:bob") is False
    await fail(window, "user:bob")
    assert await blocked(window, "user:bob") is True


async def test_unknown_key_is_not_blocked():
    assert await blocked(SlidingWindow(limit=1, clock=Clock()), "user:nobody") is False


async def test_blocked_when_either_key_is_at_its_limit():
    window = SlidingWindow(limit=2, clock=Clock())
    await fail_times(window, 2, "addr:1.2.3.4")
    assert await blocked(window, "user:bob", "addr:1.2.3.4") is True
    assert await blocked(window, "user:bob", "addr:5.6.7.8") is False


async def test_one_failure_counts_against_every_key_given():
    window = SlidingWindow(limit=2, clock=Clock())
    await fail_times(window, 2, "user:bob", "addr:1.2.3.4")
    assert await blocked(window, "user:bob") is True
    assert await blocked(window, "addr:1.2.3.4") is True


async def test_failures_expire_after_the_window():
    clock = Clock()
    window = SlidingWindow(limit=2, window=60, clock=clock)
    await fail_times(window, 2, "user:bob")
    clock.advance(59.5)
    assert await blocked(window, "user:bob") is True
    clock.advance(0.5)
    assert await blocked(window, "user:bob") is False


async def test_limit_applies_to_any_60_seconds_not_fixed_minutes():
    clock = Clock()
    window = SlidingWindow(limit=3, window=60, clock=clock)
    await fail(window, "user:bob")  # t=0
    clock.advance(30)
    await fail(window, "user:bob")  # t=30
    clock.advance(20)
    await fail(window, "user:bob")  # t=50
    assert await blocked(window, "user:bob") is True
    clock.advance(11)  # t=61: the first one is out of the window
    assert await blocked(window, "user:bob") is False
    await fail(window, "user:bob")  # t=61
    assert await blocked(window, "user:bob") is True
    clock.advance(28)  # t=89: 30, 50, 61 still inside
    assert await blocked(window, "user:bob") is True
    clock.advance(1)  # t=90: 30 is out
    assert await blocked(window, "user:bob") is False


async def test_clear_forgets_only_that_key():
    window = SlidingWindow(limit=1, clock=Clock())
    await fail(window, "user:bob", "addr:1.2.3.4")
    await window.clear("user:bob")
    assert await blocked(window, "user:bob") is False
    assert await blocked(window, "addr:1.2.3.4") is True


async def test_clearing_an_unknown_key_is_harmless():
    window = SlidingWindow(limit=1, clock=Clock())
    await window.clear("user:nobody")
    assert await blocked(window, "user:nobody") is False


async def test_keys_count_separately_after_a_sweep():
    clock = Clock()
    window = SlidingWindow(limit=2, window=60, clock=clock)
    await fail(window, "user:old")
    clock.advance(61)
    await fail(window, "user:bob")  # sweeps user:old away
    await fail(window, "user:old")
    assert await blocked(window, "user:old") is False
    await fail(window, "user:old")
    assert await blocked(window, "user:old") is True


# Reservations: an attempt counted before its work, given back when it did not count --------


async def test_reserve_counts_against_every_key_until_one_is_at_its_limit():
    window = SlidingWindow(limit=2, clock=Clock())
    assert await window.reserve("user:bob", "addr:1.2.3.4") is not None
    assert await window.reserve("user:ann", "addr:1.2.3.4") is not None
    assert await window.reserve("user:bob", "addr:1.2.3.4") is None  # the address is full
    assert await window.reserve("user:bob", "addr:5.6.7.8") is not None  # bob had 1
    assert await window.reserve("user:bob", "addr:9.9.9.9") is None  # bob is full now
    # refused reservations counted nothing
    assert await blocked(window, "addr:5.6.7.8") is False
    assert await blocked(window, "addr:9.9.9.9") is False


async def test_simultaneous_reservations_never_outrun_the_limit():
    import asyncio

    window = SlidingWindow(limit=10, clock=Clock())
    held = await asyncio.gather(*(window.reserve("user:bob", "addr:a") for _ in range(60)))
    assert sum(h is not None for h in held) == 10


async def test_release_gives_the_reservation_back_for_every_key():
    window = SlidingWindow(limit=1, clock=Clock())
    held = await window.reserve("user:bob", "addr:a")
    assert held is not None
    assert await window.reserve("user:bob") is None
    await window.release(held)
    assert await blocked(window, "user:bob", "addr:a") is False
    assert await window.reserve("user:bob", "addr:a") is not None


async def test_release_takes_back_only_its_own_reservation():
    window = SlidingWindow(limit=2, clock=Clock())
    first = await window.reserve("user:bob")
    assert first is not None and await window.reserve("user:bob") is not None
    await window.release(first)
    await window.release(first)  # twice: harmless
    assert await window.reserve("user:bob") is not None
    assert await window.reserve("user:bob") is None


async def test_a_kept_reservation_is_a_failure_that_leaves_the_window():
    clock = Clock()
    window = SlidingWindow(limit=1, window=60, clock=clock)
    assert await window.reserve("user:bob") is not None
    clock.advance(59.9)
    assert await window.reserve("user:bob") is None
    clock.advance(0.1)
    assert await window.reserve("user:bob") is not None


async def test_release_after_clear_or_expiry_is_harmless():
    clock = Clock()
    window = SlidingWindow(limit=1, window=60, clock=clock)
    held = await window.reserve("user:bob", "addr:a")
    assert held is not None
    await window.clear("user:bob")
    assert await window.reserve("user:bob", "addr:a") is None  # the address still counts it
    await window.release(held)
    assert await window.reserve("user:bob", "addr:a") is not None
    clock.advance(120)
    await window.reserve("user:other")  # sweeps
    await window.release(held)


async def test_limit_zero_reserves_without_limit():
    window = SlidingWindow(limit=0, window=3600, clock=Clock())
    for _ in range(100):
        held = await window.reserve("addr:a")
        assert held is not None
    assert held is not None
    await window.release(held)
    assert await blocked(window, "addr:a") is False
