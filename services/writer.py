"""Group commit: messages that arrive while a transaction is being written go into the next
one, so that one commit (one fsync, one round of the commit lock) serves many messages. Each
caller still returns only after the commit that holds its message: durability is unchanged.

Batches are written on a connection the writer keeps between them while messages keep coming
(no pool checkout, reset and checkin for each: −45% of the CPU of a commit, measured on
MariaDB); one idle for `HOLD_SECONDS` goes back to the pool before the next batch, and one
that failed is closed."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from typing import Literal, cast

from sqlalchemy import Table, insert, select, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from models.attachment import Attachment
from models.message import CommitLock, Message, Posted
from services import driver_writes
from services.activity import Activity
from services.driver_writes import DriverWrites
from services.errors import AppError, Code

log = logging.getLogger(__name__)

MAX_BATCH = 200
# A kept connection unused for longer goes back to the pool (its recycling, the server's idle
# timeout) rather than being written on.
HOLD_SECONDS = 10.0
Batch = list[tuple[Posted, asyncio.Future[None]]]
ATTACHMENTS = cast(Table, Attachment.__table__)
MESSAGES = cast(Table, Message.__table__)
_LOCK = cast(Table, CommitLock.__table__)
# Taken first by every batch (but on SQLite): see `GroupWriter._insert`.
LOCK_STATEMENT = update(_LOCK).where(_LOCK.c.id == 1).values(counter=_LOCK.c.counter + 1)


class Unclaimed(Exception):
    """A message's uploads were no longer all its sender's and free when its batch claimed
    them (another message took one first, or the sweep deleted it): the batch is rolled back
    and written again without that message, which fails alone."""

    def __init__(self, message: Posted) -> None:
        super().__init__("attachments already claimed")
        self.message = message


class GroupWriter:
    def __init__(self, engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.engine, self.sessions = engine, sessions
        # SQLite lets one writer at a time hand out ids and commit: its commits are in id order
        # without the commit-order lock, one round trip shorter.
        self.ordered = engine.dialect.name != "sqlite"
        self._queue: Batch = []
        self._writing: asyncio.Task[None] | None = None
        self._conn: AsyncConnection | None = None
        self._conn_used = 0.0
        self._driver_writes: DriverWrites | Literal[False] | None = None  # False: not usable

    async def close(self) -> None:
        """Give the kept connection back (at shutdown, after the last batch)."""
        if self._writing is not None:
            await asyncio.wait([self._writing], timeout=10)
        conn, self._conn = self._conn, None
        if conn is not None:
            await _close_quietly(conn)

    def submit(self, message: Posted) -> asyncio.Future[None]:
        """Queue `message` for insertion; the future is done once it is committed (its id and
        created_at set), or has what storing it raised (IntegrityError for a repeated
        client_msg_id). Messages are given ids in the order they were submitted.

        A caller that stops waiting (its future cancelled) cancels nothing else: the batch
        leaves a cancelled future alone (`_settle`) and still writes its message."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((message, done))
        if self._writing is None or self._writing.done():
            self._writing = asyncio.ensure_future(self._drain())
        return done

    async def _drain(self) -> None:
        while self._queue:
            await self._commit(self._next_batch())

    def _next_batch(self) -> Batch:
        """Up to MAX_BATCH queued messages; a second message with the same sender and
        client_msg_id waits for the next batch, where it fails alone as a repeat."""
        batch: Batch = []
        later: Batch = []
        keys: set[tuple[str, str]] = set()
        for item in self._queue:
            message = item[0]
            key = (message.sender, message.client_msg_id or "")
            if len(batch) >= MAX_BATCH or (message.client_msg_id is not None and key in keys):
                later.append(item)
            else:
                batch.append(item)
                keys.add(key)
        self._queue = later
        return batch

    async def _commit(self, batch: Batch) -> None:
        try:
            await self._write([m for m, _ in batch])
        except Unclaimed as exc:
            rest = []
            for message, done in batch:
                if message is exc.message:
                    _settle(done, _claimed_before())
                else:
                    rest.append((message, done))
            if rest:
                await self._commit(rest)
        except IntegrityError as exc:
            # Some client_msg_id was stored before: those messages fail (the caller answers
            # with the stored one), the others are written again together.
            stored = await self._stored_keys([m for m, _ in batch])
            rest = []
            for message, done in batch:
                if (message.sender, message.client_msg_id) in stored:
                    _settle(done, exc)
                else:
                    rest.append((message, done))
            if len(rest) == len(batch):  # nothing explains it: one at a time, to be safe
                for item in rest:
                    await self._commit_alone(item)
            elif rest:
                await self._commit(rest)
        except Exception as exc:
            for _, done in batch:
                _settle(done, exc)
        else:
            for _, done in batch:
                _settle(done, None)

    async def _commit_alone(self, item: tuple[Posted, asyncio.Future[None]]) -> None:
        message, done = item
        try:
            await self._write([message])
        except Unclaimed:
            _settle(done, _claimed_before())
        except Exception as exc:
            _settle(done, exc)
        else:
            _settle(done, None)

    async def _stored_keys(self, messages: list[Posted]) -> set[tuple[str, str | None]]:
        pairs = [(m.sender, m.client_msg_id) for m in messages if m.client_msg_id is not None]
        if not pairs:
            return set()
        async with self.sessions() as db:
            rows = await db.execute(
                select(Message.sender, Message.client_msg_id).where(
                    tuple_(Message.sender, Message.client_msg_id).in_(pairs)
                )
            )
            return {(sender, cid) for sender, cid in rows.all()}

    async def _connection(self) -> AsyncConnection:
        conn, self._conn = self._conn, None
        if conn is not None and time.monotonic() - self._conn_used > HOLD_SECONDS:
            await _close_quietly(conn)
            conn = None
        return conn if conn is not None else await self.engine.connect()

    async def _write(self, messages: list[Posted]) -> None:
        conn = await self._connection()
        try:
            await self._insert(conn, messages)
        except (IntegrityError, Unclaimed):  # a refusal: the connection is fine once rolled back
            try:
                await self._roll_back(conn)
            except Exception:
                await _discard(conn)
                raise
            self._keep(conn)
            raise
        except BaseException:
            await _discard(conn)
            raise
        self._keep(conn)

    def _keep(self, conn: AsyncConnection) -> None:
        self._conn, self._conn_used = conn, time.monotonic()

    async def _insert(self, conn: AsyncConnection, messages: list[Posted]) -> None:
        """Write `messages` and what they do to their conversations in one transaction, and
        commit it. On MariaDB the usual batch (no attachments, no conversation changing state)
        goes through the driver (`DriverWrites`): one round trip for a lone message, three for
        several; what else a batch needs goes through SQLAlchemy, in the same transaction."""
        now = datetime.now(UTC)
        for message in messages:
            message.created_at = now
        activity = Activity(messages)
        direct = self._direct(conn)
        attachments = any(m.attachments for m in messages)
        if direct is not None:
            matched, committed = await direct.write(
                conn, messages, activity, now, may_commit=not attachments
            )
            if committed:  # a lone message, whose conversation only moved its activity
                return
        else:
            if self.ordered:
                # Taking this row lock first makes writers on every process commit one after
                # the other in the order they were given ids: id order is commit order.
                await conn.execute(LOCK_STATEMENT)
            # Core, not the ORM's unit of work: one multi-row INSERT ... RETURNING id.
            stmt = insert(MESSAGES).returning(MESSAGES.c.id, sort_by_parameter_order=True)
            ids = (await conn.execute(stmt, [_row(m, now) for m in messages])).scalars()
            for message, id_ in zip(messages, ids, strict=True):
                message.id = id_
            matched = (await conn.execute(activity.statement, activity.values())).rowcount
        if attachments:  # no query for batches without any
            await _claim(conn, messages)
        changed = set(await activity.finish(conn, matched, now))
        for message in reversed(messages):  # the last message of each tells of it
            if message.conversation in changed:
                changed.discard(message.conversation)
                message.changed = True
        if conn.in_transaction():  # SQLAlchemy ran statements in it
            await conn.commit()
        elif direct is not None:
            await direct.commit(conn)

    def _direct(self, conn: AsyncConnection) -> DriverWrites | None:
        """The driver's path for this engine, made at the first batch (the dialect knows then
        whether the server returns rows from an INSERT); None where it does not apply."""
        if self._driver_writes is None:
            usable = driver_writes.usable(conn.dialect)
            self._driver_writes = (
                DriverWrites(conn.dialect, LOCK_STATEMENT if self.ordered else None)
                if usable
                else False
            )
        return self._driver_writes or None

    async def _roll_back(self, conn: AsyncConnection) -> None:
        if conn.in_transaction():
            await conn.rollback()
        elif self._driver_writes:
            await self._driver_writes.rollback(conn)


def _row(message: Posted, now: datetime) -> dict[str, object]:
    return {
        "sender": message.sender,
        "recipient": message.recipient,
        "conversation": message.conversation,
        "text": message.text,
        "created_at": now,
        "client_msg_id": message.client_msg_id,
        "note": message.note,
    }


async def _claim(conn: AsyncConnection, messages: list[Posted]) -> None:
    """Give each message its uploads, which must still be its sender's and unclaimed (raises
    `Unclaimed` for the first message whose are not)."""
    a = ATTACHMENTS.c
    for message in messages:
        if not message.attachments:
            continue
        ids = [attachment.id for attachment in message.attachments]
        claimed = await conn.execute(
            update(ATTACHMENTS)
            .where(a.id.in_(ids), a.uploader == message.sender, a.message_id.is_(None))
            .values(message_id=message.id)
        )
        if claimed.rowcount != len(ids):
            raise Unclaimed(message)
        for attachment in message.attachments:
            attachment.message_id = message.id


def _claimed_before() -> AppError:
    return AppError(Code.INVALID, "An attachment is already in a message, or no longer exists.")


async def _discard(conn: AsyncConnection) -> None:
    """A connection that failed in a batch: dropped, not given back to the pool (never raises).
    Its state is unknown (a statement cut halfway, a lost server)."""
    try:
        await conn.invalidate()
    except Exception as exc:
        log.warning("writer's connection not invalidated cleanly (%s)", type(exc).__name__)
    await _close_quietly(conn)


async def _close_quietly(conn: AsyncConnection) -> None:
    """Back to the pool (which rolls back, or drops a broken connection); never raises."""
    try:
        await conn.close()
    except Exception as exc:
        log.warning("writer's connection not closed cleanly (%s)", type(exc).__name__)


def _settle(done: asyncio.Future[None], error: BaseException | None) -> None:
    if done.done():
        return
    if error is None:
        done.set_result(None)
    else:
        done.set_exception(error)
