"""Logins and registrations under attack: simultaneous guesses, look-alike user names, a
trailing newline in a name, registration floods and password hashes that saturate the CPU."""

from __future__ import annotations

import asyncio
import json
import secrets
import threading
import time
from typing import Any

import argon2
import httpx
import jwt
import pytest
from redis import asyncio as aioredis

from config.nginx import Upstream, parse_listen
from services.auth import Passwords
from services.errors import AppError, Code
from services.limits import RedisSlidingWindow
from services.redis import connect_redis
from tests.conftest import FAST_HASHER, PASSWORD, Stack, StackFactory, free_port, service_url
from tests.integration.test_pages import Page, browser, post_register

WRONG = "not the password at all"
SQLITE = pytest.mark.parametrize("make_stack", ["sqlite"], indirect=True)
STORES = pytest.mark.parametrize(
    "store", ["memory", pytest.param("redis", marks=pytest.mark.redis)]
)


def store_settings(store: str) -> dict[str, Any]:
    return {"redis_url": service_url("redis")} if store == "redis" else {}


def http_of(stack: Stack) -> httpx.AsyncClient:
    assert stack.http is not None
    return stack.http


async def login(
    stack: Stack, username: str, password: str = PASSWORD, *, address: str | None = None
) -> httpx.Response:
    """POST /api/login, from `address` when given (the test client is a trusted proxy)."""
    headers = {"X-Forwarded-For": address} if address else {}
    r = await http_of(stack).post(
        "/api/login", json={"username": username, "password": password}, headers=headers
    )
    http_of(stack).cookies.clear()
    return r


async def register(stack: Stack, username: str, *, address: str | None = None) -> httpx.Response:
    headers = {"X-Forwarded-For": address} if address else {}
    body = {"username": username, "name": username.title(), "password": PASSWORD}
    return await http_of(stack).post("/api/register", json=body, headers=headers)


def addresses(prefix: str) -> list[str]:
    """Client addresses of their own, so that only the user name's count is at stake."""
    return [f"{prefix}.{i}" for i in range(1, 255)]


# -- simultaneous guesses ---------------------------------------------------------------------


@SQLITE
@STORES
async def test_simultaneous_guesses_check_at_most_the_limit_of_passwords(
    make_stack: StackFactory, store: str
) -> None:
    stack = await make_stack(**store_settings(store))
    limit = stack.settings.login_failures_per_minute
    await stack.register("bob")
    passwords = stack.services.auth.passwords
    real, checked = passwords.verify, []

    def counting(stored: str, password: str) -> tuple[bool, bool]:
        checked.append(password)
        time.sleep(0.05)  # keep the first guesses in flight while the others arrive
        return real(stored, password)

    passwords.verify = counting  # type: ignore[method-assign]
    guesses = [f"{WRONG} {i}" for i in range(59)]
    guesses.insert(30, PASSWORD)
    answers = await asyncio.gather(*(login(stack, "bob", g) for g in guesses))

    codes = [r.status_code for r in answers]
    assert set(codes) <= {200, 401, 429}, codes
    # Every guess that was not refused was checked, and no more than the limit were wrong.
    # (A right one among the first is given back at once, which frees one more place.)
    assert len(checked) == sum(code != 429 for code in codes)
    assert len([p for p in checked if p != PASSWORD]) <= limit, len(checked)
    assert len(checked) <= limit + 1
    assert codes.count(429) >= len(guesses) - limit - 1
    assert all(r.json()["error"] == "rate_limited" for r in answers if r.status_code == 429)


@SQLITE
@STORES
async def test_a_successful_login_counts_neither_against_its_user_nor_its_address(
    make_stack: StackFactory, store: str
) -> None:
    stack = await make_stack(login_failures_per_minute=3, **store_settings(store))
    await stack.register("bob")
    for _ in range(2):
        assert (await login(stack, "bob", WRONG)).status_code == 401
    for _ in range(5):  # each success clears bob's count and gives its place back
        assert (await login(stack, "bob")).status_code == 200
    assert (await login(stack, "bob", WRONG)).status_code == 401
    # the address has now failed 3 times: only the user name's count was cleared
    r = await login(stack, "bob")
    assert r.status_code == 429 and r.json()["error"] == "rate_limited"


# -- user names: ASCII case only --------------------------------------------------------------

LOOK_ALIKES = ["bob ", "bob  ", "bób", "BÖB", "böb", "bob\t", "bob\n", "\u0062\u0301ob"]


async def test_only_ascii_case_spellings_of_a_name_log_in(make_stack: StackFactory) -> None:
    stack = await make_stack()
    await stack.register("bob")
    await stack.register("kate")
    where = iter(addresses("10.1.0"))
    for spelling in [*LOOK_ALIKES, "\u212aate"]:  # KELVIN SIGN, lowercased "k" by Unicode
        r = await login(stack, spelling, address=next(where))
        assert r.status_code == 401, (spelling, r.text)
        assert r.json()["error"] == "bad_credentials"
    for spelling, stored in (("BOB", "bob"), ("Bob", "bob"), ("KATE", "kate")):
        r = await login(stack, spelling, address=next(where))
        assert r.status_code == 200, (spelling, r.text)
        assert r.json()["user"]["user"] == stored


async def test_failures_count_against_the_user_found_whatever_the_spelling(
    make_stack: StackFactory,
) -> None:
    stack = await make_stack()
    limit = stack.settings.login_failures_per_minute
    await stack.register("bob")
    where = iter(addresses("10.2.0"))
    for i in range(limit):
        r = await login(stack, "BOB" if i % 2 else "Bob", WRONG, address=next(where))
        assert r.status_code == 401, (i, r.text)
    r = await login(stack, "bob", address=next(where))
    assert r.status_code == 429 and r.json()["error"] == "rate_limited"
    # No look-alike spelling gets a fresh set of tries at bob's password.
    for spelling in LOOK_ALIKES:
        r = await login(stack, spelling, address=next(where))
        assert r.status_code == 401, (spelling, r.text)


async def test_an_unknown_name_counts_by_its_spelling_in_ascii_lower_case(
    make_stack: StackFactory,
) -> None:
    stack = await make_stack(login_failures_per_minute=3)
    where = iter(addresses("10.3.0"))
    for spelling in ("GHOST", "Ghost", "gHoSt"):
        assert (await login(stack, spelling, WRONG, address=next(where))).status_code == 401
    assert (await login(stack, "ghost", WRONG, address=next(where))).status_code == 429
    # "ghóst" is another name: not counted with "ghost"
    assert (await login(stack, "ghóst", WRONG, address=next(where))).status_code == 401


async def test_requests_naming_a_user_find_it_in_ascii_case_only(make_stack: StackFactory) -> None:
    stack = await make_stack()
    admin = await stack.register("boss", admin=True)
    await stack.register("bob")
    await stack.register("kate")
    http, auth = http_of(stack), {"Authorization": f"Bearer {admin}"}
    for path in ("bob%20", "bob%20%20", "b%C3%B3b", "B%C3%96B", "bob%0A", "%E2%84%AAate", "bob%00"):
        r = await http.post(f"/api/users/{path}/role", json={"rol": "user"}, headers=auth)
        assert r.status_code == 404, (path, r.text)
    r = await http.post("/api/users/BOB/role", json={"rol": "user"}, headers=auth)
    assert r.status_code == 200 and r.json()["user"]["user"] == "bob"
    r = await http.get("/api/messages", params={"with": "BoB"}, headers=auth)
    assert r.status_code == 200, r.text
    for name in ("bób", "BÖB", "\u212aate"):
        r = await http.get("/api/messages", params={"with": name}, headers=auth)
        assert r.status_code in (400, 404), (name, r.text)
    # A token (signed with the server's own secret) for a look-alike of bob speaks for nobody.
    assert stack.settings.jwt_secret is not None
    secret, now = stack.settings.jwt_secret.reveal(), int(time.time())
    for name in ("bob ", "bób", "BÖB", "\u212aate", "BOB"):
        claims = {"user": name, "name": "x", "rol": "user", "iat": now, "exp": now + 600}
        token = jwt.encode({**claims, "jti": secrets.token_hex(8)}, secret, algorithm="HS256")
        r = await http.get("/api/me", headers={"Authorization": f"Bearer {token}"})
        if name == "BOB":
            assert r.status_code == 200 and r.json()["user"] == "bob"
        else:
            assert r.status_code == 401, (name, r.text)


async def test_a_login_name_no_database_can_hold_is_invalid(make_stack: StackFactory) -> None:
    stack = await make_stack()
    await stack.register("bob")
    for name in ("bob\x00", "b\x00ob", "\ud800bob"):  # answered 503 by the lookup that failed
        body = json.dumps({"username": name, "password": PASSWORD})
        headers = {"Content-Type": "application/json"}
        r = await http_of(stack).post("/api/login", content=body, headers=headers)
        assert r.status_code == 400 and r.json()["error"] == "invalid", (name, r.text)


@SQLITE
async def test_a_name_with_a_trailing_newline_is_refused_at_registration(stack: Stack) -> None:
    await stack.register("alice")
    for name in ("alice\n", "alice2\n", "\nalice", "bob\r\n"):
        r = await register(stack, name)
        assert r.status_code == 400 and r.json()["error"] == "invalid", (name, r.text)
    assert (await login(stack, "alice\n")).status_code == 401


# -- registrations per address ----------------------------------------------------------------


@SQLITE
@STORES
async def test_registrations_are_limited_per_client_address(
    make_stack: StackFactory, store: str
) -> None:
    stack = await make_stack(registrations_per_hour=3, **store_settings(store))
    assert (await register(stack, "ana1")).status_code == 201
    assert (await register(stack, "ana2")).status_code == 201
    assert (await register(stack, "ANA1")).status_code == 409  # refused: not counted
    assert (await register(stack, "ana3")).status_code == 201
    r = await register(stack, "ana4")
    assert r.status_code == 429 and r.json()["error"] == "rate_limited"
    async with browser(stack) as client:
        r = await post_register(client, username="ana5", name="Ana", password=PASSWORD)
        assert r.status_code == 429 and "token" not in client.cookies
        assert len(Page(r.text).alerts) == 1
    # Another client behind the trusted proxy has its own allowance.
    assert (await register(stack, "ben1", address="203.0.113.7")).status_code == 201
    # The command line (`adduser`) is not limited.
    for i in range(3):
        await stack.services.auth.add_user(f"op{i}", "Op", PASSWORD, admin=False)
    assert (await login(stack, "ana4")).status_code == 401


@pytest.mark.redis
@SQLITE
async def test_registrations_are_limited_across_workers(make_stack: StackFactory) -> None:
    url = service_url("redis")
    a = await make_stack(redis_url=url, registrations_per_hour=3)
    b = await make_stack(redis_url=url, registrations_per_hour=3)
    assert (await register(a, "ana1")).status_code == 201
    assert (await register(b, "ana2")).status_code == 201
    assert (await register(a, "ana3")).status_code == 201
    assert (await register(b, "ana4")).status_code == 429
    assert (await register(a, "ana5")).status_code == 429


@SQLITE
async def test_registrations_per_hour_zero_means_no_limit(make_stack: StackFactory) -> None:
    stack = await make_stack(registrations_per_hour=0)
    for i in range(25):
        assert (await register(stack, f"ana{i}")).status_code == 201


# -- the shared window in Redis ---------------------------------------------------------------


@pytest.mark.redis
async def test_redis_window_reserves_atomically_and_releases() -> None:
    redis = connect_redis(service_url("redis"))
    window = RedisSlidingWindow(redis, f"test{secrets.token_hex(4)}", 3, 60.0, kind="t")
    try:
        held = await asyncio.gather(*(window.reserve("user:bob", "addr:a") for _ in range(20)))
        kept = [h for h in held if h is not None]
        assert len(kept) == 3
        assert await window.reserve("user:bob") is None
        assert await window.reserve("addr:a") is None
        assert await window.reserve("user:ann", "addr:b") is not None
        await window.release(kept[0])  # given back for both keys
        again = await window.reserve("user:bob", "addr:a")
        assert again is not None
        assert await window.reserve("addr:a") is None
        await window.clear("user:bob")  # the user's count only
        assert await window.reserve("user:bob") is not None
        assert await window.reserve("addr:a") is None
    finally:
        await forget(redis, window)


@pytest.mark.redis
async def test_redis_window_falls_back_to_this_process_while_redis_is_down() -> None:
    redis = aioredis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.5)
    window = RedisSlidingWindow(redis, "down", 2, 60.0)
    try:
        first = await window.reserve("user:bob")
        assert first is not None and first.local
        assert await window.reserve("user:bob") is not None
        assert await window.reserve("user:bob") is None
        await window.release(first)
        assert await window.reserve("user:bob") is not None
    finally:
        await redis.aclose()


async def forget(redis: Any, window: RedisSlidingWindow) -> None:
    keys = [k async for k in redis.scan_iter(match=f"{window.prefix}:*")]
    if keys:
        await redis.delete(*keys)
    await redis.aclose()


# -- password hashes in flight ----------------------------------------------------------------


class SlowHasher(argon2.PasswordHasher):
    """A hasher that takes `seconds` (a CPU saturated by other hashes), until `go` is set."""

    def __init__(self, seconds: float) -> None:
        super().__init__(time_cost=1, memory_cost=1024, parallelism=1)
        self.seconds, self.go = seconds, threading.Event()

    def hash(self, password: str | bytes, *, salt: bytes | None = None) -> str:
        self.go.wait(self.seconds)
        return super().hash(password, salt=salt)


async def test_a_hash_waits_for_a_slot_then_is_refused_as_unavailable() -> None:
    slow = SlowHasher(5.0)
    passwords = Passwords(slow, slots=1, wait=0.3)
    first = asyncio.create_task(passwords.new_hash(PASSWORD))
    await asyncio.sleep(0.05)
    started = time.monotonic()
    with pytest.raises(AppError) as refused:
        await passwords.check(FAST_HASHER.hash(PASSWORD), PASSWORD)
    assert refused.value.code is Code.UNAVAILABLE
    assert 0.25 <= time.monotonic() - started < 2
    slow.go.set()
    assert (await first).startswith("$argon2")
    # once the slot is free, the next hash goes ahead
    assert await passwords.check(FAST_HASHER.hash(PASSWORD), PASSWORD) == (True, False)


def test_hash_slots_follow_the_cpu_count_and_are_at_least_two() -> None:
    assert Passwords(FAST_HASHER).slots >= 2


@SQLITE
async def test_a_registration_burst_cannot_hold_a_login_past_the_wait(stack: Stack) -> None:
    await stack.register("bob")
    slow = SlowHasher(5.0)
    stack.services.auth.passwords = Passwords(slow, slots=1, wait=0.3)
    busy = asyncio.create_task(register(stack, "ana", address="203.0.113.8"))
    await asyncio.sleep(0.1)
    started = time.monotonic()
    r = await login(stack, "bob")
    assert r.status_code == 503 and r.json()["error"] == "unavailable", r.text
    assert time.monotonic() - started < 2
    slow.go.set()
    assert (await busy).status_code == 201
    # the refused login was not counted as a failure: it was never checked
    assert (await login(stack, "bob")).status_code == 200


# -- nginx-config arguments: whole matches only -----------------------------------------------


@pytest.mark.parametrize(
    "raw", ["a=127.0.0.1:3001\n", "a\n=127.0.0.1:3001", "a=127.0.0.1:\uff13001", "a=h:3\u0661"]
)
def test_nginx_upstream_refuses_what_only_starts_well(raw: str) -> None:
    with pytest.raises(ValueError, match="--upstream"):
        Upstream.parse(raw)


@pytest.mark.parametrize(
    "raw", ["8080\n", "\uff18\uff10\uff18\uff10", "127.0.0.1:8080\n", "h:\u0668"]
)
def test_nginx_listen_refuses_what_only_starts_well(raw: str) -> None:
    with pytest.raises(ValueError, match="--listen"):
        parse_listen(raw)


def test_nginx_arguments_still_take_what_they_should() -> None:
    assert Upstream.parse("w1=127.0.0.1:3001") == Upstream("w1", "127.0.0.1:3001")
    assert Upstream.parse("b=[::1]:3002").address == "[::1]:3002"
    assert parse_listen("8080") == "8080" and parse_listen("0.0.0.0:80") == "0.0.0.0:80"
