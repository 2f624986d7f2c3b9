"""Id order is commit order: a reader that syncs from the last id it saw never skips a
message that commits late, even with many concurrent writers on several servers. SQLite
serialises writers and cannot show the bug; MariaDB and PostgreSQL can."""

from __future__ import annotations

import asyncio

from sqlalchemy import select

from models.message import Message
from tests.conftest import StackFactory

SENDERS_PER_SERVER = 6
MESSAGES_EACH = 25


async def test_sync_never_skips_a_message_that_commits_late(make_stack: StackFactory) -> None:
    servers = [await make_stack(msg_rate=0.0) for _ in range(2)]
    admin_token = await servers[0].register("boss", admin=True)
    watcher = await servers[1].connect(admin_token)
    senders = []
    for s, stack in enumerate(servers):
        for i in range(SENDERS_PER_SERVER):
            name = f"u{s}x{i}"
            await stack.register(name)
            senders.append(await stack.connect(await stack.login(name)))

    done = asyncio.Event()
    seen: list[int] = []

    async def watch() -> None:
        last = 0
        while True:
            finished = done.is_set()
            page = await watcher.call("sync", {"after": last})
            seen.extend(m["id"] for m in page["messages"])
            if page["messages"]:
                last = page["messages"][-1]["id"]
            if finished and not page["more"]:
                return
            await asyncio.sleep(0)

    async def send(client, n: int) -> None:
        for k in range(MESSAGES_EACH):
            ack = await client.call("mensaje_privado", {"text": f"{n}-{k}"})
            assert ack["ok"], ack

    watching = asyncio.ensure_future(watch())
    await asyncio.gather(*(send(c, n) for n, c in enumerate(senders)))
    done.set()
    await watching

    async with servers[0].services.sessions() as db:
        stored = list((await db.execute(select(Message.id).order_by(Message.id))).scalars())
    assert len(stored) == len(senders) * MESSAGES_EACH
    assert seen == stored  # every id seen once, in order, none skipped


async def test_the_commit_order_lock_is_taken_except_on_sqlite(make_stack: StackFactory) -> None:
    """SQLite has one writer at a time, which hands out ids and commits in order: no lock's
    round trip. MariaDB and PostgreSQL take it, even with one process: a second process on the
    same database, supported or not, must not commit out of order."""
    from models.message import CommitLock

    stack = await make_stack()

    async def rounds() -> int:
        async with stack.services.sessions() as db:
            return int((await db.execute(select(CommitLock.counter))).scalar_one())

    before = await rounds()  # the lock's row outlives other tests' data
    ana = await stack.connect(await stack.register("ana", "Ana"))
    for i in range(3):
        assert (await ana.call("mensaje_privado", {"text": f"m{i}"}))["ok"]
    sqlite = stack.services.engine.dialect.name == "sqlite"
    assert stack.services.chat.writer.ordered is not sqlite
    assert (await rounds() == before) is sqlite
