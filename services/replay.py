"""What was stored since a time, read back a page at a time: what a worker delivers again to
its own sockets after its broker listener was cut off (`Fanout.relay_gap`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from models.message import Message, with_sender_name
from services.wire import SYNC_LIMIT


async def stored_since(
    sessions: async_sessionmaker[AsyncSession], since: datetime
) -> AsyncIterator[list[Message]]:
    """Every message stored at or after `since`, oldest first, a page of SYNC_LIMIT at a time,
    up to the newest one stored when it starts. The first is found walking back from the
    newest id on the primary key (ids and times only, never a scan of the table); then pages
    are read forward by id. It holds one page at a time, however long ago `since` is."""
    first: int | None = None
    newest: int | None = None
    before: int | None = None
    while True:
        back = select(Message.id, Message.created_at).order_by(Message.id.desc())
        if before is not None:
            back = back.where(Message.id < before)
        async with sessions() as db:
            rows = (await db.execute(back.limit(SYNC_LIMIT))).all()
        if newest is None and rows:
            newest = rows[0].id
        first = next((r.id for r in reversed(rows) if r.created_at >= since), first)
        if len(rows) < SYNC_LIMIT or rows[-1].created_at < since:
            break
        before = rows[-1].id
    if first is None or newest is None:
        return
    after = first - 1
    while after < newest:
        forward = with_sender_name(select(Message)).where(Message.id > after, Message.id <= newest)
        async with sessions() as db:
            page = list(
                (await db.execute(forward.order_by(Message.id).limit(SYNC_LIMIT))).scalars()
            )
        if not page:
            return
        yield page
        after = page[-1].id
