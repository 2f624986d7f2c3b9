"""Several servers on one Redis behave as one server: delivery, presence, announcements,
typing, forced disconnects and limits cross processes."""

from __future__ import annotations

import asyncio
import time

import pytest

from services import relay
from tests.conftest import PASSWORD, Stack, StackFactory, service_url

pytestmark = pytest.mark.redis


@pytest.fixture
def redis_url() -> str:
    return service_url("redis")


async def pair(make_stack: StackFactory, redis_url: str, **settings: object) -> tuple[Stack, Stack]:
    return await make_stack(redis_url=redis_url, **settings), await make_stack(
        redis_url=redis_url, **settings
    )


async def test_messages_cross_processes_both_ways(make_stack: StackFactory, redis_url: str) -> None:
    a, b = await pair(make_stack, redis_url)
    ana = await a.connect(await a.register("ana"))
    boss_b = await b.connect(await b.register("boss", admin=True))
    chief_a = await a.connect(await a.register("chief", admin=True))
    ana_b = await b.connect(await b.login("ana"))

    sent = await ana.call("mensaje_privado", {"text": "from A"})
    assert sent["ok"]
    assert (await boss_b.wait_for("mensaje_privado"))[0] == sent["message"]
    assert (await ana_b.wait_for("mensaje_privado"))[0] == sent["message"]
    reply = await boss_b.call("mensaje_privado", {"to": "ana", "text": "from B"})
    assert (await ana.wait_for("mensaje_privado"))[0] == reply["message"]
    assert (await chief_a.wait_for("mensaje_privado", 2))[1] == reply["message"]
    # not its own reply: a later message from the other process arrives after it would have
    marker = (await chief_a.call("mensaje_privado", {"to": "ana", "text": "marker"}))["message"]
    assert await boss_b.wait_for("mensaje_privado", 2) == [sent["message"], marker]


async def test_presence_is_first_and_last_socket_anywhere(
    make_stack: StackFactory, redis_url: str
) -> None:
    a, b = await pair(make_stack, redis_url)
    boss = await a.connect(await a.register("boss", admin=True))
    token = await a.register("ana")

    def of_ana() -> list[object]:
        return [p for p in boss.got("presence") if p["user"] == "ana"]

    on_b = await b.connect(token)
    await boss.wait_for("presence", 2)
    on_a = await a.connect(token)
    await on_b.sio.disconnect()
    await asyncio.sleep(0.3)
    assert of_ana() == [{"user": "ana", "online": True}]
    assert a.http is not None
    headers = {"Authorization": f"Bearer {await a.login('boss')}"}
    await on_a.call("mensaje_privado", {"text": "hi"})
    assert a.http is not None
    conversations = (await a.http.get("/api/conversations", headers=headers)).json()
    assert conversations["conversations"][0]["online"] is True
    await on_a.sio.disconnect()
    await boss.wait_for("presence", 3)
    assert of_ana() == [{"user": "ana", "online": True}, {"user": "ana", "online": False}]
    conversations = (await a.http.get("/api/conversations", headers=headers)).json()
    assert conversations["conversations"][0]["online"] is False


async def test_users_of_a_dead_process_go_offline_within_the_bound(
    make_stack: StackFactory, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from services import cluster

    monkeypatch.setattr(cluster, "HEARTBEAT_SECONDS", 0.2)
    monkeypatch.setattr(cluster, "DEAD_AFTER_SECONDS", 0.6)
    a, b = await pair(make_stack, redis_url)
    boss = await a.connect(await a.register("boss", admin=True))
    await b.connect(await b.register("ana"))
    await boss.wait_for("presence", 2)
    dead = b.services.cluster
    assert isinstance(dead, cluster.RedisCluster)
    for task in dead._tasks:  # b stops heartbeating, as a killed process would
        task.cancel()
    started = time.monotonic()
    await boss.wait_for("presence", 3, timeout=5)
    assert boss.got("presence")[-1] == {"user": "ana", "online": False}
    assert time.monotonic() - started < 3


async def test_announcement_reaches_every_process(make_stack: StackFactory, redis_url: str) -> None:
    a, b = await pair(make_stack, redis_url)
    boss = await a.connect(await a.register("boss", admin=True))
    ana = await b.connect(await b.register("ana"))
    ack = await boss.call("announcement", {"text": "all hands"})
    assert (await ana.wait_for("announcement"))[0] == ack["announcement"]


async def test_typing_skips_the_senders_sockets_on_every_process(
    make_stack: StackFactory, redis_url: str
) -> None:
    a, b = await pair(make_stack, redis_url)
    token = await a.register("boss", admin=True)
    boss_a, boss_b = await a.connect(token), await b.connect(token)
    chief = await b.connect(await b.register("chief", admin=True))
    ana = await b.connect(await b.register("ana"))
    await boss_a.call("typing", {"to": "ana", "typing": True})
    expected = {"from": "boss", "from_name": "boss", "to": "ana", "typing": True}
    assert (await ana.wait_for("typing"))[0] == expected
    assert (await chief.wait_for("typing"))[0] == expected
    # published after the typing, on the same channel: boss_b gets it, and no typing before
    await boss_a.call("announcement", {"text": "marker"})
    await boss_b.wait_for("announcement")
    assert boss_b.got("typing") == []


async def test_logout_and_role_change_disconnect_sockets_on_every_process(
    make_stack: StackFactory, redis_url: str
) -> None:
    a, b = await pair(make_stack, redis_url)
    token = await a.register("ana")
    on_a, on_b = await a.connect(token), await b.connect(token)
    assert a.http is not None
    started = time.monotonic()
    r = await a.http.post(
        "/api/logout",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    assert r.status_code == 204
    await asyncio.wait_for(asyncio.gather(on_a.disconnected.wait(), on_b.disconnected.wait()), 2)
    assert time.monotonic() - started < 2
    assert await b.try_connect(auth={"token": token}) == "Token inválido"

    fresh = await b.login("ana")
    admin = await a.register("boss", admin=True)
    on_b = await b.connect(fresh)
    r = await a.http.post(
        "/api/users/ana/role", json={"rol": "admin"}, headers={"Authorization": f"Bearer {admin}"}
    )
    assert r.status_code == 200
    await asyncio.wait_for(on_b.disconnected.wait(), 2)


async def test_message_rate_limit_is_shared(make_stack: StackFactory, redis_url: str) -> None:
    a, b = await pair(make_stack, redis_url, msg_rate=0.5, msg_burst=3)
    ana_a = await a.connect(await a.register("ana"))
    ana_b = await b.connect(await b.login("ana"))
    results = [
        await ana_a.call("mensaje_privado", {"text": "1"}),
        await ana_b.call("mensaje_privado", {"text": "2"}),
        await ana_a.call("mensaje_privado", {"text": "3"}),
        await ana_b.call("mensaje_privado", {"text": "4"}),
    ]
    assert [r["ok"] for r in results] == [True, True, True, False]
    assert results[3]["error"] == "rate_limited"


async def test_login_throttling_is_shared(make_stack: StackFactory, redis_url: str) -> None:
    a, b = await pair(make_stack, redis_url, login_failures_per_minute=3)
    await a.register("ana")
    assert a.http is not None and b.http is not None
    codes = []
    for server in (a, b, a, b):
        assert server.http is not None
        r = await server.http.post("/api/login", json={"username": "ana", "password": "wrong"})
        codes.append(r.status_code)
    assert codes == [401, 401, 401, 429]
    r = await b.http.post("/api/login", json={"username": "ana", "password": PASSWORD})
    assert r.status_code == 429


async def test_healthz_proves_the_listener_round_trip(
    make_stack: StackFactory, redis_url: str
) -> None:
    a = await make_stack(redis_url=redis_url)
    assert a.http is not None
    r = await a.http.get("/healthz")
    assert r.json() == {"status": "ok", "checks": {"database": "ok", "broker": "ok"}}
    for task in a.services.cluster._tasks:  # type: ignore[attr-defined]
        task.cancel()  # the listener is gone though Redis still answers PING
    await asyncio.sleep(0.05)
    r = await a.http.get("/healthz")
    assert r.status_code == 503
    assert r.json() == {"status": "unavailable", "checks": {"database": "ok", "broker": "down"}}


async def test_redis_restart_delivery_resumes_and_sync_recovers(
    make_stack: StackFactory, own_redis
) -> None:
    a, b = await pair(make_stack, own_redis.url)
    boss = await a.connect(await a.register("boss", admin=True))
    chief_on_b = await b.connect(await b.register("chief", admin=True))
    ana = await b.connect(await b.register("ana"))
    assert (await ana.call("mensaje_privado", {"text": "before"}))["ok"]
    await boss.wait_for("mensaje_privado")
    await chief_on_b.wait_for("mensaje_privado")

    own_redis.stop()
    assert b.http is not None
    health = await b.http.get("/healthz")
    assert health.status_code == 503 and health.json()["checks"]["broker"] == "down"
    during = await ana.call("mensaje_privado", {"text": "during"})
    assert during["ok"] is True  # stored; recovered by sync below
    # Delivery on one worker goes on for its own sockets without the broker.
    assert (await chief_on_b.wait_for("mensaje_privado", 2))[1] == during["message"]
    # Logins (throttling falls back to this process) and handshakes (presence is not
    # recorded meanwhile) still work.
    late = await b.connect(await b.login("ana"))
    assert (await late.call("sync", {"after": 0}))["ok"] is True

    own_redis.start()
    started = time.monotonic()
    while True:
        sent = await ana.call("mensaje_privado", {"text": f"after {time.monotonic():.1f}"})
        assert sent["ok"]
        try:
            await boss.wait_for("mensaje_privado", 2, timeout=0.5)
            if any(m["id"] == sent["message"]["id"] for m in boss.got("mensaje_privado")):
                break
        except TimeoutError:
            pass
        assert time.monotonic() - started < 5, "cross-process delivery did not resume in 5 s"
    texts = [m["text"] for m in (await boss.call("sync", {"after": 0}))["messages"]]
    assert texts[:2] == ["before", "during"]
    # ... and live: worker A delivered again to its sockets what was stored while its
    # listener was cut off, since the boss never learns that it should call sync.
    for _ in range(50):
        if during["message"]["id"] in [m["id"] for m in boss.got("mensaje_privado")]:
            break
        await asyncio.sleep(0.1)
    assert during["message"] in boss.got("mensaje_privado")
    for _ in range(50):
        if (await b.http.get("/healthz")).status_code == 200:
            break
        await asyncio.sleep(0.1)
    assert b.http is not None
    assert (await b.http.get("/healthz")).status_code == 200
    # The new Redis knew nobody: each worker records its sockets again, so presence converges.
    headers = {"Authorization": f"Bearer {await a.login('boss')}"}
    assert a.http is not None
    conversations = (await a.http.get("/api/conversations", headers=headers)).json()
    assert conversations["conversations"][0]["online"] is True


async def test_rabbitmq_carries_the_fanout_when_broker_url_is_amqp(
    make_stack: StackFactory, redis_url: str
) -> None:
    amqp = service_url("rabbitmq")
    a, b = await pair(make_stack, redis_url, broker_url=amqp)
    boss = await a.connect(await a.register("boss", admin=True))
    ana = await b.connect(await b.register("ana"))
    sent = await ana.call("mensaje_privado", {"text": "via rabbit"})
    assert (await boss.wait_for("mensaje_privado", timeout=10))[0] == sent["message"]


async def test_more_than_a_pool_of_concurrent_emits_all_cross_processes(
    make_stack: StackFactory, redis_url: str
) -> None:
    """Well above redis-py's default pool of 100 connections in flight: none is dropped."""
    a, b = await pair(make_stack, redis_url, msg_rate=0.0, registrations_per_hour=0)
    boss = await b.connect(await b.register("boss", admin=True))
    senders = []
    for i in range(30):
        senders.append(await a.connect(await a.register(f"user{i}")))
    acks = await asyncio.gather(
        *(
            s.call("mensaje_privado", {"text": f"{i}-{k}"}, timeout=30)
            for i, s in enumerate(senders)
            for k in range(8)
        )
    )
    assert all(ack["ok"] for ack in acks)
    got = await boss.wait_for("mensaje_privado", len(acks), timeout=30)
    assert sorted(m["id"] for m in got) == sorted(ack["message"]["id"] for ack in acks)


async def test_a_lagging_listener_holds_new_messages_on_every_process(
    make_stack: StackFactory, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While one process's listener is behind, every process holds new messages and then
    refuses them with `unavailable` (not stored); when it catches up, sending resumes and
    what was acked before is delivered."""
    monkeypatch.setattr(relay, "WAIT_SECONDS", 1.0)
    a, b = await pair(make_stack, redis_url)
    ana = await a.connect(await a.register("ana"))
    boss_b = await b.connect(await b.register("boss", admin=True))
    await asyncio.sleep(0.5)  # the presence news of the connects has crossed

    manager_b = b.services.fanout.server.manager  # type: ignore[attr-defined]
    stuck = asyncio.Event()
    handle_emit = manager_b._handle_emit

    async def slow_listener(message: dict[str, object]) -> None:
        await stuck.wait()
        await handle_emit(message)

    monkeypatch.setattr(manager_b, "_handle_emit", slow_listener)
    first = await ana.call("mensaje_privado", {"text": "first"})
    assert first["ok"] is True  # stored; process B's listener is stuck on it

    started = time.monotonic()
    while True:
        held = await ana.call("mensaje_privado", {"text": "held", "client_msg_id": "held-1"})
        if not held["ok"]:
            break
        assert time.monotonic() - started < 5, "the lag of B's listener did not hold senders"
    assert held["error"] == "unavailable"
    assert not a.services.relay.is_open and not b.services.relay.is_open
    assert boss_b.got("mensaje_privado") == []

    stuck.set()
    assert (await boss_b.wait_for("mensaje_privado"))[0] == first["message"]
    started = time.monotonic()
    while not (
        again := await ana.call("mensaje_privado", {"text": "held", "client_msg_id": "held-1"})
    )["ok"]:
        assert time.monotonic() - started < 5, "sending did not resume after the lag"
    stored = (await ana.call("sync", {"after": 0}))["messages"]
    texts = [m["text"] for m in stored]
    # Every `held` tried before the refusal was acked ok and stored; the refused one was not,
    # and its retry with the same client_msg_id is stored once.
    assert texts[0] == "first" and texts.count("held") == len(texts) - 1
    assert again["message"]["id"] in [m["id"] for m in stored]
