"""The message writer's path on MariaDB, through the database driver: the round trips a message
costs, counted on the wire through a TCP proxy, and what the path stores (ids, conversations,
refusals) being what SQLAlchemy's path stores on every database."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url

from models.conversation import ConversationState
from services.driver_writes import DriverWrites
from tests.conftest import StackFactory, service_url, statements
from tests.tcp_proxy import TcpProxy


@pytest.mark.mariadb
@pytest.mark.parametrize("make_stack", ["mariadb"], indirect=True)
async def test_a_lone_message_costs_one_round_trip_on_mariadb(make_stack: StackFactory) -> None:
    """Lock, INSERT ... RETURNING, the conversation's UPDATE and COMMIT in one query, once the
    conversation only moves its activity; the driver's path is the one that runs."""
    service_url("mariadb")
    plain = await make_stack()
    url = make_url(plain.settings.database_url)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 3306)
    port = await proxy.start()
    try:
        stack = await make_stack(database_url=url.set(port=port).render_as_string(False))
        ana = await stack.connect(await stack.register("ana"))
        boss = await stack.connect(await stack.register("boss", admin=True))
        # The first message opens the conversation (more statements), the first reply answers
        # it; from then on each message only moves the conversation's activity.
        assert (await ana.call("mensaje_privado", {"text": "hello"}))["ok"]
        assert (await boss.call("mensaje_privado", {"to": "ana", "text": "hi"}))["ok"]
        for sender, data in [
            (ana, {"text": "one more"}),
            (boss, {"to": "ana", "text": "and a reply"}),
            (boss, {"to": "ana", "text": "a note", "note": True}),
        ]:
            before = proxy.sent
            ack = await sender.call("mensaje_privado", data)
            assert ack["ok"], ack
            assert proxy.sent - before == 1, data
        assert isinstance(stack.services.chat.writer._driver_writes, DriverWrites)

        async with stack.services.sessions() as db:
            state = (
                await db.execute(select(ConversationState).where(ConversationState.user == "ana"))
            ).scalar_one()
        assert state.last_message_id == ack["message"]["id"]
        assert state.awaiting_reply is False and state.status == "open"
    finally:
        await proxy.close()


async def test_concurrent_messages_keep_every_conversations_newest_id(
    make_stack: StackFactory,
) -> None:
    """Batches of several messages over several conversations (the driver's two-round-trip
    form on MariaDB, SQLAlchemy's elsewhere) leave each conversation's `last_message_id` at its
    newest message, and a repeated client_msg_id answers with the stored message."""
    stack = await make_stack()
    names = [f"user{i}" for i in range(6)]
    clients = [await stack.connect(await stack.register(name)) for name in names]
    boss = await stack.connect(await stack.register("boss", admin=True))
    for client in clients:  # open each conversation
        assert (await client.call("mensaje_privado", {"text": "first"}))["ok"]
    with statements(stack) as seen:
        for _ in range(3):
            acks = await asyncio.gather(
                *(
                    call
                    for i, client in enumerate(clients)
                    for call in (
                        client.call("mensaje_privado", {"text": "more", "client_msg_id": f"c{i}"}),
                        boss.call("mensaje_privado", {"to": names[i], "text": "re"}),
                    )
                )
            )
            assert all(ack["ok"] for ack in acks), acks
    # Some commits held several messages: fewer INSERTs than the 36 messages.
    assert sum("INSERT INTO messages" in s for s in seen) < 6 * 2 * 3
    async with stack.services.sessions() as db:
        rows = (await db.execute(select(ConversationState))).scalars().all()
    newest: dict[str, int] = {}
    synced = (await boss.call("sync", {"after": 0}))["messages"]
    for message in synced:
        user = message["from"] if message["to"] == "admins" else message["to"]
        newest[user] = max(newest.get(user, 0), message["id"])
    assert {row.user: row.last_message_id for row in rows} == newest
    # One "more" per user was stored: the two resends answered with it.
    assert sum(m["text"] == "more" for m in synced) == len(names)
