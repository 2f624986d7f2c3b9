"""Team workflow from outside: conversation status and its reopening by users, PATCH and its
refusals, filters and keyset paging, private notes on every path, availability and the admins
list, snoozes waking once whatever the number of processes, and the `conversation` event."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from models.conversation import ConversationEvent
from tests.conftest import PASSWORD, Stack, StackFactory, service_url


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def api(
    stack: Stack, method: str, path: str, token: str, body: Any = None, **kw: Any
) -> httpx.Response:
    assert stack.http is not None
    if body is not None:
        kw["json"] = body
    return await stack.http.request(method, path, headers=bearer(token), **kw)


async def listed(stack: Stack, token: str, **params: str) -> dict[str, Any]:
    r = await api(stack, "GET", "/api/conversations", token, params=params)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def patch(stack: Stack, token: str, user: str, body: Any) -> httpx.Response:
    return await api(stack, "PATCH", f"/api/conversations/{user}", token, body)


def in_future(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


async def events_of(stack: Stack, conversation: str) -> list[tuple[str, str | None]]:
    async with stack.services.sessions() as db:
        rows = await db.execute(
            select(ConversationEvent.kind, ConversationEvent.admin)
            .where(ConversationEvent.conversation == conversation)
            .order_by(ConversationEvent.id)
        )
        return [(kind, admin) for kind, admin in rows.all()]


# -- status ---------------------------------------------------------------------------------


async def test_a_first_message_opens_and_a_user_message_reopens_keeping_the_assignee(
    stack: Stack,
) -> None:
    boss_token = await stack.register("boss", "Boss", admin=True)
    boss = await stack.connect(boss_token)
    ana = await stack.connect(await stack.register("ana", "Ana A"))
    await ana.call("mensaje_privado", {"text": "hello"})
    [event] = await boss.wait_for("conversation")
    assert (event["user"], event["status"], event["assignee"]) == ("ana", "open", None)
    assert event["labels"] == [] and event["snoozed_until"] is None
    assert (event["visitor"], event["email"], event["verified"]) == (False, None, False)

    r = await patch(stack, boss_token, "ANA", {"status": "resolved", "assignee": "BOSS"})
    assert r.status_code == 200, r.text
    assert (r.json()["conversation"]["status"], r.json()["conversation"]["assignee"]) == (
        "resolved",
        "boss",
    )
    changes = await boss.wait_for("conversation", 2)
    assert changes[1]["status"] == "resolved"

    await ana.call("mensaje_privado", {"text": "it broke again"})
    changes = await boss.wait_for("conversation", 3)
    assert (changes[2]["status"], changes[2]["assignee"]) == ("open", "boss")
    # a message in an open conversation changes nothing but its activity: no event
    await ana.call("mensaje_privado", {"text": "still there?"})
    await asyncio.sleep(0.3)
    assert len(boss.got("conversation")) == 3
    assert await events_of(stack, "ana") == [
        ("opened", None),
        ("resolved", "boss"),
        ("opened", None),
    ]


@pytest.mark.parametrize("status", ["pending", "snoozed"])
async def test_a_user_message_sets_pending_or_snoozed_back_to_open(
    stack: Stack, status: str
) -> None:
    boss_token = await stack.register("boss", "Boss", admin=True)
    ana = await stack.connect(await stack.register("ana", "Ana A"))
    await ana.call("mensaje_privado", {"text": "hello"})
    body: dict[str, Any] = {"status": status}
    if status == "snoozed":
        body["snoozed_until"] = in_future(3600)
    assert (await patch(stack, boss_token, "ana", body)).status_code == 200
    await ana.call("mensaje_privado", {"text": "back"})
    [c] = (await listed(stack, boss_token))["conversations"]
    assert (c["status"], c["snoozed_until"]) == ("open", None)
    # reopening from pending or snoozed is no new opening
    assert [k for k, _ in await events_of(stack, "ana")] == ["opened"]


async def test_first_reply_is_the_first_admin_message_that_is_not_a_note(stack: Stack) -> None:
    boss = await stack.connect(await stack.register("boss", "Boss", admin=True))
    ana = await stack.connect(await stack.register("ana", "Ana A"))
    await ana.call("mensaje_privado", {"text": "hello"})
    assert (await boss.call("mensaje_privado", {"to": "ana", "text": "n", "note": True}))["ok"]
    assert [k for k, _ in await events_of(stack, "ana")] == ["opened"]
    assert (await boss.call("mensaje_privado", {"to": "ana", "text": "hi"}))["ok"]
    assert (await boss.call("mensaje_privado", {"to": "ana", "text": "again"}))["ok"]
    assert await events_of(stack, "ana") == [("opened", None), ("first_reply", "boss")]


async def test_an_admin_writing_first_does_not_open_until_the_user_writes(stack: Stack) -> None:
    boss = await stack.connect(await stack.register("boss", "Boss", admin=True))
    ana = await stack.connect(await stack.register("ana", "Ana A"))
    assert (await boss.call("mensaje_privado", {"to": "ana", "text": "can we help?"}))["ok"]
    assert await events_of(stack, "ana") == []
    await ana.call("mensaje_privado", {"text": "yes"})
    assert await events_of(stack, "ana") == [("opened", None)]


# -- PATCH ----------------------------------------------------------------------------------


async def test_patch_refusals(stack: Stack) -> None:
    boss_token = await stack.register("boss", "Boss", admin=True)
    user_token = await stack.register("ana", "Ana A")
    await stack.register("bob", "Bob B")  # no message: no conversation
    ana = await stack.connect(user_token)
    await ana.call("mensaje_privado", {"text": "hello"})
    bad = [
        {},
        {"status": "closed"},
        {"status": "snoozed"},
        {"status": "snoozed", "snoozed_until": None},
        {"status": "snoozed", "snoozed_until": "2020-01-01T00:00:00Z"},
        {"status": "snoozed", "snoozed_until": "2099-01-01T00:00:00"},  # no time zone
        {"status": "snoozed", "snoozed_until": "tomorrow"},
        {"status": "open", "snoozed_until": in_future(60)},
        {"assignee": "ana"},  # not an admin
        {"assignee": "nobody"},
        {"assignee": 7},
        {"labels": "vip"},
        {"labels": ["VIP"]},
        {"labels": ["a" * 33]},
        {"labels": [""]},
        {"labels": [f"l{i}" for i in range(11)]},
        [],
    ]
    for body in bad:
        r = await patch(stack, boss_token, "ana", body)
        assert r.status_code == 400, (body, r.text)
        assert r.json()["error"] == "invalid"
    assert (await patch(stack, boss_token, "bob", {"status": "open"})).status_code == 404
    assert (await patch(stack, boss_token, "nobody", {"status": "open"})).status_code == 404
    r = await patch(stack, user_token, "ana", {"status": "resolved"})
    assert (r.status_code, r.json()["error"]) == (403, "forbidden")
    assert stack.http is not None
    r = await stack.http.patch("/api/conversations/ana", json={"status": "open"})
    assert r.status_code == 401
    r = await stack.http.patch(
        "/api/conversations/ana", content=b"status=open", headers=bearer(boss_token)
    )
    assert r.status_code == 415


async def test_patch_labels_snooze_and_unassign(stack: Stack) -> None:
    boss_token = await stack.register("boss", "Boss", admin=True)
    ana = await stack.connect(await stack.register("ana", "Ana A"))
    await ana.call("mensaje_privado", {"text": "hello"})
    r = await patch(stack, boss_token, "ana", {"labels": ["vip", "billing", "vip"]})
    assert r.json()["conversation"]["labels"] == ["billing", "vip"]
    until = in_future(3600)
    c = (await patch(stack, boss_token, "ana", {"snoozed_until": until})).json()["conversation"]
    assert c["status"] == "snoozed"
    assert datetime.fromisoformat(c["snoozed_until"]) == datetime.fromisoformat(until)
    c = (await patch(stack, boss_token, "ana", {"status": "pending"})).json()["conversation"]
    assert (c["status"], c["snoozed_until"]) == ("pending", None)
    c = (await patch(stack, boss_token, "ana", {"assignee": "boss"})).json()["conversation"]
    assert c["assignee"] == "boss"
    c = (await patch(stack, boss_token, "ana", {"assignee": None, "labels": []})).json()
    assert (c["conversation"]["assignee"], c["conversation"]["labels"]) == (None, [])


# -- the list -------------------------------------------------------------------------------


async def test_filters_and_keyset_paging(stack: Stack) -> None:
    boss_token = await stack.register("boss", "Boss", admin=True)
    await stack.register("mia", "Mia", admin=True)
    names = [f"user{i:02d}" for i in range(7)]
    for name in names:
        client = await stack.connect(await stack.register(name))
        await client.call("mensaje_privado", {"text": f"from {name}"})
    # newest activity first: user06 ... user00
    pages, cursor = [], None
    while True:
        params = {"limit": "3"} if cursor is None else {"limit": "3", "before": cursor}
        page = await listed(stack, boss_token, **params)
        pages.append([c["user"] for c in page["conversations"]])
        cursor = page["next"]
        if cursor is None:
            break
        assert isinstance(cursor, str)
    assert pages == [names[6:3:-1], names[3:0:-1], names[0:1]]

    await patch(stack, boss_token, "user01", {"status": "resolved", "assignee": "boss"})
    await patch(stack, boss_token, "user02", {"assignee": "mia", "labels": ["vip"]})
    await patch(stack, boss_token, "user03", {"status": "pending", "labels": ["vip", "bug"]})

    def users(page: dict[str, Any]) -> list[str]:
        return [c["user"] for c in page["conversations"]]

    assert users(await listed(stack, boss_token, status="resolved")) == ["user01"]
    assert users(await listed(stack, boss_token, status="pending,resolved")) == [
        "user03",
        "user01",
    ]
    assert users(await listed(stack, boss_token, assignee="me")) == ["user01"]
    assert users(await listed(stack, boss_token, assignee="MIA")) == ["user02"]
    assert users(await listed(stack, boss_token, assignee="nobody")) == []
    assert "user01" not in users(await listed(stack, boss_token, assignee="none"))
    assert users(await listed(stack, boss_token, label="vip")) == ["user03", "user02"]
    assert users(await listed(stack, boss_token, label="vip", status="open")) == ["user02"]
    # a new message moves a conversation to the top
    user00 = await stack.connect(await stack.login("user00"))
    await user00.call("mensaje_privado", {"text": "me again"})
    assert users(await listed(stack, boss_token, limit="1")) == ["user00"]

    for params in (
        {"status": "closed"},
        {"status": "open,"},
        {"label": "VIP"},
        {"limit": "0"},
        {"before": "abc"},
        {"before": "-1"},
        {"assignee": "a b"},
    ):
        r = await api(stack, "GET", "/api/conversations", boss_token, params=params)
        assert (r.status_code, r.json()["error"]) == (400, "invalid"), params


# -- notes ----------------------------------------------------------------------------------


async def test_a_private_note_reaches_admins_only_by_every_path(stack: Stack) -> None:
    boss_token = await stack.register("boss", "Boss", admin=True)
    boss = await stack.connect(boss_token)
    mia = await stack.connect(await stack.register("mia", "Mia", admin=True))
    ana_token = await stack.register("ana", "Ana A")
    ana = await stack.connect(ana_token)
    ana2 = await stack.connect(ana_token)
    hello = await ana.call("mensaje_privado", {"text": "hello"})
    ack = await boss.call(
        "mensaje_privado",
        {"to": "ana", "text": "VIP, be nice", "note": True, "client_msg_id": "n1"},
    )
    assert ack["ok"] and ack["message"]["note"] is True and ack["message"]["to"] == "ana"
    note_id = ack["message"]["id"]
    [seen] = [m for m in await mia.wait_for("mensaje_privado", 2) if m["id"] == note_id]
    assert seen["note"] is True
    reply = await boss.call("mensaje_privado", {"to": "ana", "text": "hi"})
    await ana.wait_for("mensaje_privado", 1)
    await ana2.wait_for("mensaje_privado", 2)  # its own message, then the reply
    await asyncio.sleep(0.3)
    for client in (ana, ana2):
        assert note_id not in [m["id"] for m in client.got("mensaje_privado")]
        synced = await client.call("sync", {"after": 0})
        assert [m["text"] for m in synced["messages"]] == ["hello", "hi"]
    assert [m["id"] for m in (await boss.call("sync", {"after": 0}))["messages"]] == [
        hello["message"]["id"],
        note_id,
        reply["message"]["id"],
    ]
    r = await api(stack, "GET", "/api/messages", ana_token)
    assert [m["text"] for m in r.json()["messages"]] == ["hello", "hi"]
    assert all(m["note"] is False for m in r.json()["messages"])
    r = await api(stack, "GET", "/api/messages", boss_token, params={"with": "ana"})
    assert [m["note"] for m in r.json()["messages"]] == [False, True, False]
    # the note is the conversation's activity for the team
    await boss.call("mensaje_privado", {"to": "ana", "text": "later note", "note": True})
    [c] = (await listed(stack, boss_token))["conversations"]
    assert c["last_message"]["text"] == "later note" and c["unread"] == 1


async def test_note_refusals(stack: Stack) -> None:
    boss = await stack.connect(await stack.register("boss", "Boss", admin=True))
    ana = await stack.connect(await stack.register("ana", "Ana A"))
    ack = await ana.call("mensaje_privado", {"text": "x", "note": True})
    assert (ack["ok"], ack["error"]) == (False, "forbidden")
    ack = await boss.call("mensaje_privado", {"to": "ana", "text": "x", "note": "yes"})
    assert (ack["ok"], ack["error"]) == (False, "invalid")
    ack = await boss.call("mensaje_privado", {"text": "x", "note": True})
    assert (ack["ok"], ack["error"]) == (False, "invalid")


# -- admins ---------------------------------------------------------------------------------


async def test_availability_and_the_admins_list(stack: Stack) -> None:
    boss_token = await stack.register("boss", "Boss", admin=True)
    mia_token = await stack.register("mia", "Mia", admin=True)
    user_token = await stack.register("ana", "Ana A")
    ana = await stack.connect(user_token)
    await ana.call("mensaje_privado", {"text": "hello"})
    await stack.connect(boss_token)
    await patch(stack, boss_token, "ana", {"assignee": "mia"})
    r = await api(stack, "GET", "/api/admins", boss_token)
    assert r.json() == {
        "admins": [
            {"user": "boss", "name": "Boss", "online": True, "available": True, "open_assigned": 0},
            {"user": "mia", "name": "Mia", "online": False, "available": True, "open_assigned": 1},
        ]
    }
    for _ in range(2):  # the second time updates the row the first made
        r = await api(stack, "PUT", "/api/me/availability", mia_token, {"available": False})
        assert r.json() == {"available": False}
    r = await api(stack, "GET", "/api/admins", boss_token)
    assert [a["available"] for a in r.json()["admins"]] == [True, False]
    await patch(stack, boss_token, "ana", {"status": "resolved"})
    r = await api(stack, "GET", "/api/admins", boss_token)
    assert [a["open_assigned"] for a in r.json()["admins"]] == [0, 0]

    for body in ({}, {"available": "no"}, {"available": 1}):
        r = await api(stack, "PUT", "/api/me/availability", mia_token, body)
        assert r.status_code == 400, body
    r = await api(stack, "PUT", "/api/me/availability", user_token, {"available": True})
    assert r.status_code == 403
    assert (await api(stack, "GET", "/api/admins", user_token)).status_code == 403


# -- timers across processes ----------------------------------------------------------------


@pytest.mark.redis
async def test_a_snooze_wakes_once_whatever_the_number_of_processes(
    make_stack: StackFactory,
) -> None:
    redis_url = service_url("redis")
    workers = [await make_stack(redis_url=redis_url) for _ in range(3)]
    a = workers[0]
    boss_token = await a.register("boss", "Boss", admin=True)
    watchers = [await w.connect(boss_token) for w in workers]
    ana = await a.connect(await a.register("ana", "Ana A"))
    await ana.call("mensaje_privado", {"text": "hello"})
    r = await patch(a, boss_token, "ana", {"snoozed_until": in_future(1)})
    assert r.json()["conversation"]["status"] == "snoozed"
    for watcher in watchers:
        await watcher.wait_for("conversation", 2)
    await asyncio.sleep(1.2)
    woke = await asyncio.gather(*(w.services.team.wake_snoozed() for w in workers))
    assert sorted(len(w) for w in woke) == [0, 0, 1]
    for watcher in watchers:
        changes = await watcher.wait_for("conversation", 3)
        assert changes[2]["status"] == "open" and changes[2]["snoozed_until"] is None
    await asyncio.sleep(0.3)
    assert [len(w.got("conversation")) for w in watchers] == [3, 3, 3]


# -- auto-assignment ------------------------------------------------------------------------


async def test_auto_assignment_prefers_the_least_loaded_and_takes_turns(
    make_stack: StackFactory,
) -> None:
    stack = await make_stack(auto_assign="round_robin")
    tokens = {a: await stack.register(a, a.title(), admin=True) for a in ("amy", "ben", "cat")}
    await stack.connect(tokens["amy"])
    await stack.connect(tokens["ben"])  # cat stays offline: never chosen
    r = await api(stack, "PUT", "/api/me/availability", tokens["ben"], {"available": False})
    assert r.status_code == 200
    for i in range(3):
        user = await stack.connect(await stack.register(f"user{i}"))
        await user.call("mensaje_privado", {"text": "help"})
    await wait_for_load(stack, tokens["amy"], {"amy": 3, "ben": 0, "cat": 0})
    await api(stack, "PUT", "/api/me/availability", tokens["ben"], {"available": True})
    for i in range(3, 7):
        user = await stack.connect(await stack.register(f"user{i}"))
        await user.call("mensaje_privado", {"text": "help"})
        await asyncio.sleep(0.1)
    # ben had none: he gets the next three, then they take turns
    await wait_for_load(stack, tokens["amy"], {"amy": 4, "ben": 3, "cat": 0})


async def wait_for_load(
    stack: Stack, token: str, want: dict[str, int], timeout: float = 10
) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        r = await api(stack, "GET", "/api/admins", token)
        load = {a["user"]: a["open_assigned"] for a in r.json()["admins"]}
        if load == want:
            return
        assert asyncio.get_running_loop().time() < deadline, load
        await asyncio.sleep(0.1)


@pytest.mark.redis
async def test_auto_assignment_across_three_workers_never_passes_capacity_nor_assigns_twice(
    make_stack: StackFactory,
) -> None:
    """200 conversations started at once through 3 workers, 4 admins with capacity 20
    connecting and disconnecting meanwhile."""
    from models.user import Identity
    from services.inputs import Draft

    redis_url = service_url("redis")
    workers = [
        await make_stack(redis_url=redis_url, auto_assign="round_robin", agent_capacity=20)
        for _ in range(3)
    ]
    first = workers[0]
    admins = ["adm0", "adm1", "adm2", "adm3"]
    tokens = {a: await first.register(a, a.upper(), admin=True) for a in admins}
    watcher = await workers[1].connect(await first.register("watch", "Watch", admin=True))
    r = await api(
        first, "PUT", "/api/me/availability", await first.login("watch"), {"available": False}
    )
    assert r.status_code == 200
    sockets = {"adm0": await workers[0].connect(tokens["adm0"])}
    for i in range(200):
        await first.services.auth.add_user(f"cust{i:03d}", f"Customer {i}", PASSWORD, admin=False)

    async def send(i: int) -> int:
        worker = workers[i % 3]
        me = Identity(f"cust{i:03d}", f"Customer {i}", "user")
        placed = await worker.services.chat.place(me, Draft(None, f"help {i}", f"c{i}"))
        return (await placed.stored()).id

    async def churn() -> None:
        for step in range(12):
            name = admins[step % 4]
            client = sockets.pop(name, None)
            if client is not None and step % 3 == 0:
                await client.sio.disconnect()
            elif client is None:
                sockets[name] = await workers[step % 3].connect(tokens[name])
            else:
                sockets[name] = client
            await asyncio.sleep(0.02)

    ids, _ = await asyncio.gather(asyncio.gather(*(send(i) for i in range(200))), churn())
    for name in admins:  # everyone online in the end
        if name not in sockets:
            sockets[name] = await workers[0].connect(tokens[name])
    await asyncio.gather(*(w.services.team.assign_waiting() for w in workers))
    await wait_for_load(first, tokens["adm0"], {**{a: 20 for a in admins}, "watch": 0})

    opened = dict(zip((f"cust{i:03d}" for i in range(200)), ids, strict=True))
    by_arrival = sorted(opened, key=opened.__getitem__)
    conversations = await all_conversations(first, tokens["adm0"])
    assigned = {c["user"]: c["assignee"] for c in conversations if c["assignee"]}
    assert len(conversations) == 200
    assert all(c["status"] == "open" for c in conversations)
    assert set(assigned) == set(by_arrival[:80]), "the waiting ones are the latest arrivals"
    await asyncio.sleep(0.5)
    seen: dict[str, set[str]] = {}
    for event in watcher.got("conversation"):
        if event["assignee"]:
            seen.setdefault(event["user"], set()).add(event["assignee"])
    assert all(len(who) == 1 for who in seen.values()), "assigned twice"
    assert {u: next(iter(who)) for u, who in seen.items()} == assigned

    # capacity frees: the oldest waiting conversations go, in order, to whoever has room
    mine = sorted((u for u, a in assigned.items() if a == "adm1"), key=opened.__getitem__)
    for user in mine[:5]:
        r = await patch(workers[2], tokens["adm1"], user, {"status": "resolved"})
        assert r.status_code == 200
    await wait_for_load(first, tokens["adm0"], {**{a: 20 for a in admins}, "watch": 0})
    conversations = await all_conversations(first, tokens["adm0"])
    now_assigned = {c["user"] for c in conversations if c["assignee"] and c["status"] == "open"}
    assert now_assigned - set(assigned) == set(by_arrival[80:85])


async def all_conversations(stack: Stack, token: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    cursor = None
    while True:
        params = {"limit": "200"} if cursor is None else {"limit": "200", "before": cursor}
        page = await listed(stack, token, **params)
        found += page["conversations"]
        cursor = page["next"]
        if cursor is None:
            return found
