"""`mensaje_privado`, `sync`, `read`, `typing`, `presence`, `announcement` from outside."""

from __future__ import annotations

import asyncio
from datetime import datetime

import pytest
from sqlalchemy import func, select

from models.message import ADMINS, Message, Posted
from tests.conftest import Client, Stack, StackFactory


async def team(stack: Stack) -> tuple[Client, Client, Client]:
    """A user `ana`, and two admins."""
    ana = await stack.connect(await stack.register("ana", "Ana"))
    boss = await stack.connect(await stack.register("boss", "Boss", admin=True))
    chief = await stack.connect(await stack.register("chief", "Chief", admin=True))
    return ana, boss, chief


async def stored_count(stack: Stack) -> int:
    async with stack.services.sessions() as db:
        return int((await db.execute(select(func.count()).select_from(Message))).scalar_one())


async def test_user_message_reaches_admins_and_senders_other_sockets(stack: Stack) -> None:
    ana, boss, chief = await team(stack)
    ana2 = await stack.connect(await stack.login("ana"))
    ack = await ana.call("mensaje_privado", {"text": "help <b>me</b>", "client_msg_id": "c1"})
    assert ack["ok"] is True
    message = ack["message"]
    assert message["from"] == "ana" and message["to"] == "admins"
    assert message["text"] == "help <b>me</b>" and message["client_msg_id"] == "c1"
    assert isinstance(message["id"], int)
    datetime.fromisoformat(message["created_at"].replace("Z", "+00:00"))
    for client in (boss, chief, ana2):
        assert (await client.wait_for("mensaje_privado"))[0] == message
    # never the sending socket: a later reply to it arrives, and nothing before it
    marker = (await boss.call("mensaje_privado", {"to": "ana", "text": "marker"}))["message"]
    assert await ana.wait_for("mensaje_privado") == [marker]


async def test_admin_reply_reaches_user_and_other_admins_not_sender(stack: Stack) -> None:
    ana, boss, chief = await team(stack)
    bob = await stack.connect(await stack.register("bob"))
    ack = await boss.call("mensaje_privado", {"to": "ANA", "text": "hello"})
    assert ack["ok"] is True and ack["message"]["to"] == "ana" and ack["message"]["from"] == "boss"
    assert (await ana.wait_for("mensaje_privado"))[0] == ack["message"]
    assert (await chief.wait_for("mensaje_privado"))[0] == ack["message"]
    # neither the sending socket nor another user: later messages to them arrive, alone
    to_boss = (await ana.call("mensaje_privado", {"text": "marker"}))["message"]
    to_bob = (await chief.call("mensaje_privado", {"to": "bob", "text": "marker"}))["message"]
    assert await boss.wait_for("mensaje_privado", 2) == [to_boss, to_bob]  # admins see replies
    assert await bob.wait_for("mensaje_privado") == [to_bob]


@pytest.mark.parametrize(
    ("who", "payload", "code"),
    [
        ("ana", {"to": "bob", "text": "x"}, "forbidden"),
        ("boss", {"to": "admins", "text": "x"}, "forbidden"),
        ("boss", {"text": "x"}, "invalid"),
        ("boss", {"to": "nobody", "text": "x"}, "not_found"),
        ("ana", {"text": ""}, "invalid"),
        ("ana", {"text": 5}, "invalid"),
        ("ana", {"text": "a\x00b"}, "invalid"),
        ("ana", {"text": "\ud800"}, "invalid"),
        ("ana", {"text": "x" * 4001}, "invalid"),
        ("ana", {"text": "x", "client_msg_id": "c" * 65}, "invalid"),
        ("ana", {"text": "x", "client_msg_id": 7}, "invalid"),
        ("ana", {"to": "x'; DROP TABLE usuarios; --", "text": "x"}, "invalid"),
        ("ana", ["not", "an", "object"], "invalid"),
        ("ana", "text", "invalid"),
        ("ana", None, "invalid"),
        # ({"text": b"binary"} is a binary packet, which closes the connection: see
        # tests/hostile/test_transport_hardening.py)
    ],
)
async def test_bad_messages_get_an_error_ack_and_store_nothing(
    stack: Stack, who: str, payload: object, code: str
) -> None:
    ana, boss, _ = await team(stack)
    sender = {"ana": ana, "boss": boss}[who]
    ack = await sender.call("mensaje_privado", payload)
    assert ack["ok"] is False and ack["error"] == code and isinstance(ack["message"], str)
    assert await stored_count(stack) == 0
    assert (await ana.call("mensaje_privado", {"text": "still serving"}))["ok"] is True


async def test_longest_text_and_any_unicode_are_stored_exactly(stack: Stack) -> None:
    ana, boss, _ = await team(stack)
    text = "é😀" + "x" * 3998
    ack = await ana.call("mensaje_privado", {"text": text})
    assert ack["ok"] is True and ack["message"]["text"] == text
    synced = await boss.call("sync", {"after": 0})
    assert synced["messages"][0]["text"] == text
    assert synced["messages"][0]["created_at"] == ack["message"]["created_at"]


async def test_same_client_msg_id_is_stored_and_delivered_once(stack: Stack) -> None:
    ana, boss, _ = await team(stack)
    first = await ana.call("mensaje_privado", {"text": "one", "client_msg_id": "k"})
    again = await ana.call("mensaje_privado", {"text": "other text", "client_msg_id": "k"})
    assert again == first
    other_case = await ana.call("mensaje_privado", {"text": "two", "client_msg_id": "K"})
    assert other_case["message"]["id"] != first["message"]["id"]
    await boss.wait_for("mensaje_privado", 2)
    await asyncio.sleep(0.1)
    assert len(boss.got("mensaje_privado")) == 2
    assert await stored_count(stack) == 2


async def test_same_client_msg_id_at_the_same_moment_is_stored_once(stack: Stack) -> None:
    await stack.register("ana")
    sockets = [await stack.connect(await stack.login("ana")) for _ in range(4)]
    acks = await asyncio.gather(
        *(
            s.call("mensaje_privado", {"text": f"t{i}", "client_msg_id": "race"})
            for i, s in enumerate(sockets)
        )
    )
    assert all(a["ok"] for a in acks)
    assert len({a["message"]["id"] for a in acks}) == 1
    assert await stored_count(stack) == 1


async def test_messages_of_one_socket_are_stored_in_send_order(stack: Stack) -> None:
    ana, boss, _ = await team(stack)
    sent = [f"m{i}" for i in range(30)]
    acks = await asyncio.gather(*(ana.call("mensaje_privado", {"text": t}) for t in sent))
    assert [a["message"]["text"] for a in sorted(acks, key=lambda a: a["message"]["id"])] == sent
    live = await boss.wait_for("mensaje_privado", 30)
    assert [m["text"] for m in live] == sent


async def test_sync_returns_what_the_caller_may_read_in_pages(stack: Stack) -> None:
    ana, boss, _ = await team(stack)
    bob = await stack.connect(await stack.register("bob"))
    for i in range(3):
        await ana.call("mensaje_privado", {"text": f"a{i}"})
        await bob.call("mensaje_privado", {"text": f"b{i}"})
    await boss.call("mensaje_privado", {"to": "ana", "text": "reply"})
    mine = await ana.call("sync", {"after": 0})
    assert mine["ok"] is True and mine["more"] is False
    assert [m["text"] for m in mine["messages"]] == ["a0", "a1", "a2", "reply"]
    everything = await boss.call("sync", {"after": 0})
    ids = [m["id"] for m in everything["messages"]]
    assert len(ids) == 7 and ids == sorted(ids)
    later = await boss.call("sync", {"after": ids[3]})
    assert [m["id"] for m in later["messages"]] == ids[4:]
    assert (await ana.call("sync", {"after": -1}))["error"] == "invalid"
    assert (await ana.call("sync", {"after": "0"}))["error"] == "invalid"


async def test_sync_pages_by_500(make_stack: StackFactory) -> None:
    stack = await make_stack(msg_rate=0.0)
    ana = await stack.connect(await stack.register("ana"))
    for i in range(501):
        assert (await ana.call("mensaje_privado", {"text": str(i)}))["ok"]
    page = await ana.call("sync", {"after": 0})
    assert len(page["messages"]) == 500 and page["more"] is True
    rest = await ana.call("sync", {"after": page["messages"][-1]["id"]})
    assert [m["text"] for m in rest["messages"]] == ["500"] and rest["more"] is False


async def test_read_marks_and_unread_counts(stack: Stack) -> None:
    ana, boss, _ = await team(stack)
    ids = [(await ana.call("mensaje_privado", {"text": str(i)}))["message"]["id"] for i in range(3)]
    assert stack.http is not None
    headers = {"Authorization": f"Bearer {await stack.login('boss')}"}
    convs = (await stack.http.get("/api/conversations", headers=headers)).json()["conversations"]
    assert convs[0]["unread"] == 3
    assert (await boss.call("read", {"with": "Ana", "up_to": ids[1]})) == {"ok": True}
    chief = {"Authorization": f"Bearer {await stack.login('chief')}"}
    convs = (await stack.http.get("/api/conversations", headers=chief)).json()["conversations"]
    assert convs[0]["unread"] == 1  # read state is shared by the team
    assert (await boss.call("read", {"with": "ana", "up_to": ids[0]})) == {"ok": True}  # never back
    convs = (await stack.http.get("/api/conversations", headers=headers)).json()["conversations"]
    assert convs[0]["unread"] == 1
    assert (await boss.call("read", {"with": "ghost", "up_to": 1}))["error"] == "not_found"
    assert (await boss.call("read", {"up_to": 1}))["error"] == "invalid"
    assert (await ana.call("read", {"up_to": ids[2]})) == {"ok": True}
    assert (await ana.call("read", {"with": "bob", "up_to": 1}))["error"] == "forbidden"


async def test_typing_is_relayed_to_the_other_side_only(stack: Stack) -> None:
    ana, boss, chief = await team(stack)
    ana2 = await stack.connect(await stack.login("ana"))
    assert (await ana.call("typing", {"typing": True})) == {"ok": True}
    from_ana = {"from": "ana", "from_name": "Ana", "to": "admins", "typing": True}
    assert (await boss.wait_for("typing"))[0] == from_ana
    await chief.wait_for("typing")
    await boss.call("typing", {"to": "ana", "typing": False})
    from_boss = {"from": "boss", "from_name": "Boss", "to": "ana", "typing": False}
    assert (await ana.wait_for("typing"))[0] == from_boss
    assert await ana2.wait_for("typing") == [from_boss]
    # nothing else came: a later message reaches them after anything sent before it
    await ana.call("mensaje_privado", {"text": "marker"})
    await boss.wait_for("mensaje_privado")
    assert boss.got("typing") == [from_ana]
    assert (await ana.call("typing", {"typing": "yes"}))["error"] == "invalid"
    assert (await ana.call("typing", {"to": "bob", "typing": True}))["error"] == "forbidden"


async def test_presence_on_first_and_last_socket(stack: Stack) -> None:
    boss = await stack.connect(await stack.register("boss", admin=True))
    token = await stack.register("ana")

    def of_ana() -> list[object]:
        return [p for p in boss.got("presence") if p["user"] == "ana"]

    first = await stack.connect(token)
    await boss.wait_for("presence", 2)
    assert of_ana() == [{"user": "ana", "online": True}]
    second = await stack.connect(token)
    await first.sio.disconnect()
    await asyncio.sleep(0.2)
    assert of_ana() == [{"user": "ana", "online": True}]
    await second.sio.disconnect()
    await boss.wait_for("presence", 3)
    assert of_ana() == [{"user": "ana", "online": True}, {"user": "ana", "online": False}]


async def test_announcement_reaches_everyone_and_users_cannot_announce(stack: Stack) -> None:
    ana, boss, chief = await team(stack)
    ack = await boss.call("announcement", {"text": "maintenance at 5"})
    assert ack["ok"] is True
    announcement = ack["announcement"]
    assert announcement["from"] == "boss" and announcement["text"] == "maintenance at 5"
    for client in (ana, boss, chief):
        assert (await client.wait_for("announcement"))[0] == announcement
    denied = await ana.call("announcement", {"text": "me too"})
    assert denied["ok"] is False and denied["error"] == "forbidden"
    assert (await boss.call("announcement", {"text": ""}))["error"] == "invalid"
    assert (await boss.call("sync", {"after": 0}))["messages"] == []


async def test_rate_limit_applies_per_user_and_duplicates_are_free(
    make_stack: StackFactory,
) -> None:
    stack = await make_stack(msg_rate=1.0, msg_burst=3)
    ana = await stack.connect(await stack.register("ana"))
    results = [
        await ana.call("mensaje_privado", {"text": str(i), "client_msg_id": f"c{i}"})
        for i in range(3)
    ]
    assert all(r["ok"] for r in results)
    assert (await ana.call("mensaje_privado", {"text": "again", "client_msg_id": "c0"}))[
        "ok"
    ] is True
    limited = await ana.call("mensaje_privado", {"text": "too many"})
    assert limited["ok"] is False and limited["error"] == "rate_limited"
    other = await stack.connect(await stack.login("ana"))  # per user, not per socket
    assert (await other.call("mensaje_privado", {"text": "x"}))["error"] == "rate_limited"
    await asyncio.sleep(1.1)
    assert (await ana.call("mensaje_privado", {"text": "later"}))["ok"] is True
    assert await stored_count(stack) == 4


async def test_oversized_packet_closes_the_connection_and_stores_nothing(
    make_stack: StackFactory,
) -> None:
    stack = await make_stack(max_packet_chars=2048, msg_max_chars=100_000)
    ana = await stack.connect(await stack.register("ana"))
    ana.sio.start_background_task(ana.sio.emit, "mensaje_privado", {"text": "x" * 5000})
    await asyncio.wait_for(ana.disconnected.wait(), 5)
    assert await stored_count(stack) == 0
    again = await stack.connect(await stack.login("ana"))
    assert (await again.call("mensaje_privado", {"text": "small"}))["ok"] is True


async def test_event_with_extra_arguments_or_unknown_event_does_not_break_the_server(
    stack: Stack,
) -> None:
    ana, _, _ = await team(stack)
    ack = await ana.sio.call("mensaje_privado", ({"text": "a"}, {"text": "b"}), timeout=5)
    assert ack["ok"] is False and ack["error"] == "invalid"
    await ana.sio.emit("no_such_event", {"x": 1})
    assert (await ana.call("mensaje_privado", {"text": "fine"}))["ok"] is True


async def test_unknown_event_is_acked_invalid(stack: Stack) -> None:
    ana, _, _ = await team(stack)
    ack = await ana.call("no_such_event", {"x": 1})
    assert ack["ok"] is False and ack["error"] == "invalid"


async def test_client_cannot_fire_the_servers_connect_or_disconnect_handlers(stack: Stack) -> None:
    ana, boss, _ = await team(stack)
    await ana.sio.emit("disconnect", {"reason": "fake"})
    await ana.sio.emit("connect", {"HTTP_COOKIE": "token=x"})
    assert (await ana.call("mensaje_privado", {"text": "still me"}))["ok"] is True
    await boss.wait_for("mensaje_privado")  # after any presence news those would have made
    assert [p for p in boss.got("presence") if p["user"] == "ana" and not p["online"]] == []


async def test_one_socket_cannot_pile_up_unbounded_events(
    make_stack: StackFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sockets.chat

    monkeypatch.setattr(sockets.chat, "MAX_QUEUED_EVENTS", 50)  # 1,000: a slow test
    stack = await make_stack(msg_rate=0.0)
    ana = await stack.connect(await stack.register("ana"))
    acks = await asyncio.gather(
        *(ana.call("mensaje_privado", {"text": str(i)}, timeout=30) for i in range(200))
    )
    ok = [a for a in acks if a["ok"]]
    refused = [a for a in acks if not a["ok"]]
    assert refused and all(a["error"] == "rate_limited" for a in refused)
    assert await stored_count(stack) == len(ok)
    assert (await ana.call("mensaje_privado", {"text": "after the flood"}))["ok"] is True


async def test_concurrent_sends_share_commits_and_a_repeat_in_a_batch_fails_alone(
    make_stack: StackFactory,
) -> None:
    from models.message import CommitLock

    stack = await make_stack(msg_rate=0.0)
    users = []
    for i in range(20):
        users.append(await stack.connect(await stack.register(f"user{i}")))
    first = await users[0].call("mensaje_privado", {"text": "original", "client_msg_id": "same"})
    async with stack.services.sessions() as db:
        commits_before = (await db.get_one(CommitLock, 1)).counter
    acks = await asyncio.gather(
        users[0].call("mensaje_privado", {"text": "repeat", "client_msg_id": "same"}),
        *(
            u.call("mensaje_privado", {"text": f"from {i}", "client_msg_id": "same"})
            for i, u in enumerate(users[1:])
        ),
        *(u.call("mensaje_privado", {"text": f"more {i}"}) for i, u in enumerate(users)),
    )
    assert all(a["ok"] for a in acks)
    assert acks[0]["message"] == first["message"]  # the repeat: the message stored first
    others = {a["message"]["id"] for a in acks[1:]}
    assert len(others) == len(acks) - 1 and first["message"]["id"] not in others
    assert await stored_count(stack) == 1 + len(acks) - 1
    async with stack.services.sessions() as db:
        commits = (await db.get_one(CommitLock, 1)).counter - commits_before
    assert commits <= (len(acks) - 1) // 2  # messages share transactions


async def test_repeated_typing_news_is_relayed_once_a_second_at_most(stack: Stack) -> None:
    ana, boss, _ = await team(stack)
    for _ in range(20):
        assert (await ana.call("typing", {"typing": True})) == {"ok": True}
    assert (await ana.call("typing", {"typing": False})) == {"ok": True}
    await boss.wait_for("typing", 2)
    await asyncio.sleep(0.2)
    assert [t["typing"] for t in boss.got("typing")] == [True, False]


async def test_stored_since_pages_back_to_the_time_asked(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a worker delivers again after its broker listener was cut off."""
    from services import replay

    monkeypatch.setattr(replay, "SYNC_LIMIT", 2)  # pages of 2
    ana, _, _ = await team(stack)
    sent = [(await ana.call("mensaje_privado", {"text": f"m{i}"}))["message"] for i in range(5)]
    since = datetime.fromisoformat(sent[2]["created_at"])

    async def pages(since: datetime) -> list[list[str]]:
        return [
            [m.text for m in page]
            async for page in replay.stored_since(stack.services.sessions, since)
        ]

    assert await pages(since) == [["m2", "m3"], ["m4"]]
    assert await pages(since.replace(year=2000)) == [["m0", "m1"], ["m2", "m3"], ["m4"]]
    assert await pages(since.replace(year=3000)) == []
    # what is stored meanwhile is not read: live delivery has it, and the replay ends
    reading = replay.stored_since(stack.services.sessions, since)
    assert [m.text for m in await anext(reading)] == ["m2", "m3"]
    await ana.call("mensaje_privado", {"text": "m5"})
    assert [[m.text for m in page] async for page in reading] == [["m4"]]


async def test_a_cancelled_store_leaves_the_rest_of_its_batch_alone(stack: Stack) -> None:
    """A sender's socket closing while its message waits for the commit: the others' messages
    in the same transaction are committed and acked all the same."""
    writer = stack.services.chat.writer

    def draft(i: int) -> Posted:
        return Posted(
            sender="ana", recipient=ADMINS, conversation="ana", text=f"m{i}", client_msg_id=None
        )

    commits = [writer.submit(draft(i)) for i in range(3)]  # queued for one batch
    commits[1].cancel()  # what a cancelled caller's wait does to its future
    await asyncio.gather(commits[0], commits[2])
    assert await stored_count(stack) == 3  # the cancelled one was in the batch already


async def test_one_sockets_burst_is_stored_in_order_and_shares_commits(
    make_stack: StackFactory,
) -> None:
    """A socket's next message goes once the one before has its place in the commit order:
    a burst from one socket needs far fewer commits than messages, and keeps its order (ids,
    acks and live delivery); a repeat within the burst answers with the stored message."""
    from models.message import CommitLock

    stack = await make_stack(msg_rate=0.0)
    ana, boss, _ = await team(stack)
    async with stack.services.sessions() as db:
        commits_before = (await db.get_one(CommitLock, 1)).counter
    texts = [f"burst {i}" for i in range(30)]
    acks = await asyncio.gather(
        *(
            ana.call("mensaje_privado", {"text": t, "client_msg_id": f"b{i}"})
            for i, t in enumerate(texts)
        ),
        ana.call("mensaje_privado", {"text": "again", "client_msg_id": "b3"}),
    )
    assert all(a["ok"] for a in acks)
    ids = [a["message"]["id"] for a in acks[:-1]]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert [a["message"]["text"] for a in acks[:-1]] == texts
    assert acks[-1]["message"] == acks[3]["message"]  # the repeat: the message stored first
    async with stack.services.sessions() as db:
        commits = (await db.get_one(CommitLock, 1)).counter - commits_before
    assert commits <= len(texts) // 3  # one at a time would be 30 commits
    await boss.wait_for("mensaje_privado", len(texts))
    assert [m["text"] for m in boss.got("mensaje_privado")] == texts


async def test_the_writer_keeps_one_connection_while_busy_and_gives_it_back(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    from services import writer as writer_module

    ana, _, _ = await team(stack)
    writer, pool = stack.services.chat.writer, stack.services.engine.pool
    assert (await ana.call("mensaje_privado", {"text": "one"}))["ok"] is True
    kept = writer._conn
    assert kept is not None and pool.checkedout() == 1  # type: ignore[attr-defined]
    assert (await ana.call("mensaje_privado", {"text": "two"}))["ok"] is True
    assert writer._conn is kept  # the next batch is written on it
    monkeypatch.setattr(writer_module, "HOLD_SECONDS", 0.0)
    assert (await ana.call("mensaje_privado", {"text": "three"}))["ok"] is True
    assert writer._conn is not kept  # idle too long: back to the pool, and another taken
    await writer.close()
    assert writer._conn is None and pool.checkedout() == 0


async def test_every_message_and_announcement_carries_the_senders_display_name(
    stack: Stack,
) -> None:
    """Customers read display names, never the team's login names: live, in the ack, in sync,
    in a retry's answer, and in announcements."""
    ana = await stack.connect(await stack.register("ana", "Ana Pérez"))
    boss = await stack.connect(await stack.register("boss", "Support lead", admin=True))
    asked = await ana.call("mensaje_privado", {"text": "hi", "client_msg_id": "q1"})
    assert asked["message"]["from_name"] == "Ana Pérez"
    assert (await boss.wait_for("mensaje_privado"))[0]["from_name"] == "Ana Pérez"
    reply = await boss.call("mensaje_privado", {"to": "ana", "text": "hello"})
    assert reply["message"]["from_name"] == "Support lead"
    assert (await ana.wait_for("mensaje_privado"))[0]["from_name"] == "Support lead"
    again = await ana.call("mensaje_privado", {"text": "hi", "client_msg_id": "q1"})
    assert again["message"] == asked["message"]  # the stored one, read back with its name
    synced = (await ana.call("sync", {"after": 0}))["messages"]
    assert [m["from_name"] for m in synced] == ["Ana Pérez", "Support lead"]
    announced = await boss.call("announcement", {"text": "maintenance"})
    assert announced["announcement"]["from_name"] == "Support lead"
    assert (await ana.wait_for("announcement"))[0]["from_name"] == "Support lead"
