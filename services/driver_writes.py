"""A batch's statements on MariaDB, sent by the database driver itself.

Through SQLAlchemy, a message that arrives alone cost four round trips (the commit-order lock,
the INSERT ... RETURNING, the conversation's UPDATE, then COMMIT), and SQLAlchemy's execution
machinery, with a greenlet switch, for each: measured, a third of the server's CPU for such a
message. Here they go as one multi-statement query on the connection's own aiomysql
connection (aiomysql always connects with `CLIENT.MULTI_STATEMENTS`), with no SQLAlchemy on
the way, and that query also commits when the conversation only moves its activity (the usual
case): one round trip, as the Node service's autocommit INSERT. Otherwise (the conversation
opens, reopens or gets its first reply; the message has attachments) the transaction stays
open for the rest, through SQLAlchemy. A batch of several messages takes three round trips:
lock and INSERT, the UPDATE (which needs their ids), COMMIT.

The statements are still SQLAlchemy's: built from the models, compiled once per shape for
this dialect (`Prepared`), their values passed through each column type's bind processor and
escaped by the driver, as SQLAlchemy has this driver do for every statement. Errors come out
as SQLAlchemy's exceptions (`IntegrityError` for a repeated client_msg_id, `OperationalError`
for a lost connection), as from any other query. Only used where the server returns rows from
an INSERT (MariaDB 10.5 and later); anything else takes `GroupWriter`'s Core path."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, cast

import pymysql
from cachetools import LRUCache
from sqlalchemy import ClauseElement, Table, bindparam, func, insert
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.compiler import SQLCompiler

from models.message import Message, Posted
from services.activity import Activity, quiet_update

MESSAGES = cast(Table, Message.__table__)
# Commits when the statement before it matched one row (MariaDB's anonymous block): the
# transaction is then over, which the server tells the driver in its answer.
COMMIT_IF_MATCHED = "BEGIN NOT ATOMIC IF ROW_COUNT() = 1 THEN COMMIT; END IF; END"
# The id the connection's last INSERT made (its first row's).
LAST_INSERT_ID = func.last_insert_id()
# The columns a message is inserted with, in the order of the statement's VALUES.
COLUMNS = ("sender", "recipient", "conversation", "text", "created_at", "client_msg_id", "note")


def usable(dialect: Dialect) -> bool:
    """Whether batches on this (connected) engine's dialect can be written here."""
    return dialect.name == "mysql" and dialect.driver == "aiomysql" and dialect.insert_returning


class Prepared:
    """A statement compiled once for the driver: its SQL (the driver's `%s` placeholders) and
    how to turn named values into its positional arguments. A parameter that the statement
    bound itself (a constant) keeps its value; the others are taken from `values` by name."""

    __slots__ = ("_constants", "names", "processors", "sql")

    def __init__(self, statement: ClauseElement, dialect: Dialect) -> None:
        compiled = cast(SQLCompiler, statement.compile(dialect=dialect))
        self.sql = compiled.string
        self.names = tuple(compiled.positiontup or ())
        constants = compiled.params
        self._constants = [constants.get(name) for name in self.names]
        self.processors: list[Callable[[Any], Any] | None] = [
            compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect)
            for name in self.names
        ]

    def args(self, values: Mapping[str, object]) -> list[object]:
        out = []
        for name, constant, processor in zip(
            self.names, self._constants, self.processors, strict=True
        ):
            value = values.get(name, constant)
            out.append(value if processor is None else processor(value))
        return out


class RowsInsert:
    """The INSERT ... RETURNING id of any number of messages: SQLAlchemy's statement for one row,
    compiled once, its row of placeholders repeated (as the driver's own `executemany` and
    SQLAlchemy's "insertmanyvalues" do), the values in row order."""

    __slots__ = ("_head", "_processors", "_row", "_tail")

    def __init__(self, dialect: Dialect) -> None:
        c = MESSAGES.c
        one = Prepared(
            insert(MESSAGES)
            .values({col: bindparam(col, type_=c[col].type) for col in COLUMNS})
            .returning(c.id),
            dialect,
        )
        self._row = "(" + ", ".join(["%s"] * len(COLUMNS)) + ")"
        head, found, tail = one.sql.partition(" VALUES " + self._row)
        if not found or not tail.startswith(" RETURNING ") or one.names != COLUMNS:
            raise RuntimeError(f"unexpected form of the messages' INSERT: {one.sql}")
        self._head, self._tail = head + " VALUES ", tail
        self._processors = one.processors

    def sql(self, rows: int, *, returning: bool = True) -> str:
        """The statement for `rows` rows; without `returning`, the ids are not read back (one
        row's is in the INSERT's answer, its `lastrowid`)."""
        return self._head + ", ".join([self._row] * rows) + (self._tail if returning else "")

    def args(self, messages: Sequence[Posted], now: datetime) -> list[object]:
        out: list[object] = []
        for message in messages:
            for column, processor in zip(COLUMNS, self._processors, strict=True):
                value = now if column == "created_at" else getattr(message, column)
                out.append(value if processor is None else processor(value))
        return out


class DriverWrites:
    """`GroupWriter`'s statements for one batch, on the driver's connection (`write`), and the
    commit or rollback of a transaction that ran only them."""

    def __init__(self, dialect: Dialect, lock: ClauseElement | None) -> None:
        """`lock`: the commit-order lock's UPDATE, sent first (None: no lock)."""
        self.dialect = dialect
        self._lock = None if lock is None else Prepared(lock, dialect)
        self._lock_args = [] if self._lock is None else self._lock.args({})
        self._insert = RowsInsert(dialect)
        self._driver_of: tuple[AsyncConnection, Any] | None = None
        self._updates: LRUCache[tuple[object, ...], Prepared] = LRUCache(256)  # by shape

    async def write(
        self,
        conn: AsyncConnection,
        messages: Sequence[Posted],
        activity: Activity,
        now: datetime,
        *,
        may_commit: bool,
    ) -> tuple[int, bool]:
        """Take the lock, insert `messages` (their ids are set) and run `activity`'s statement,
        in the connection's transaction (which this begins). How many conversations the
        UPDATE matched, and whether the transaction is committed.

        A message alone takes one round trip: its id comes in the INSERT's answer, its
        conversation's `last_message_id` is that id (`LAST_INSERT_ID()`), and when the UPDATE
        matched (its conversation only moves its activity) and `may_commit`, the same query
        commits (`COMMIT_IF_MATCHED`). A batch takes two round trips here (the UPDATE needs
        each conversation's last id), and is committed by the caller."""
        lone = len(messages) == 1
        # Alone, its id comes in the INSERT's own answer (no rows to read back).
        parts = [self._insert.sql(len(messages), returning=not lone)]
        args = self._insert.args(messages, now)
        if self._lock is not None:
            parts.insert(0, self._lock.sql)
            args[:0] = self._lock_args
        if lone:
            update_ = self._update((*activity.shape[:4], 0, LAST_INSERT_ID))
            parts.append(update_.sql)
            args += update_.args(activity.values(ids=False))
            if may_commit:
                parts.append(COMMIT_IF_MATCHED)
        sql = ";\n".join(parts)
        driver = await self._driver(conn)
        cursor = await driver.cursor()
        try:
            await cursor.execute(sql, args)  # the lock's result (if any) is read
            if self._lock is not None:
                await cursor.nextset()
            # An INSERT's auto-increment ids grow in the order of its rows.
            ids = [cursor.lastrowid] if lone else sorted(i for (i,) in await cursor.fetchall())
            if len(ids) != len(messages):
                raise RuntimeError(f"{len(ids)} ids returned for {len(messages)} rows")
            for message, id_ in zip(messages, ids, strict=True):
                message.id = id_
            if lone:
                await cursor.nextset()
            else:
                update_ = self._update(activity.shape)
                sql = update_.sql
                await cursor.execute(sql, update_.args(activity.values()))
            matched = int(cursor.rowcount)
            await cursor.close()  # reads what is left: the result of COMMIT_IF_MATCHED
        except pymysql.err.Error as exc:
            raise _translated(exc, sql) from exc
        committed = lone and may_commit and not driver.get_transaction_status()
        return matched, committed

    async def commit(self, conn: AsyncConnection) -> None:
        await self._end(conn, "COMMIT")

    async def rollback(self, conn: AsyncConnection) -> None:
        await self._end(conn, "ROLLBACK")

    async def _end(self, conn: AsyncConnection, how: str) -> None:
        driver = await self._driver(conn)
        try:
            await (driver.commit() if how == "COMMIT" else driver.rollback())
        except pymysql.err.Error as exc:
            raise _translated(exc, how) from exc

    async def _driver(self, conn: AsyncConnection) -> Any:
        """The aiomysql connection under `conn`, looked up once for the connection that the
        writer keeps from batch to batch (the lookup passes through a greenlet)."""
        if self._driver_of is None or self._driver_of[0] is not conn:
            raw = await conn.get_raw_connection()
            self._driver_of = (conn, raw.driver_connection)
        return self._driver_of[1]

    def _update(self, shape: tuple[Any, ...]) -> Prepared:
        prepared = self._updates.get(shape)
        if prepared is None:
            prepared = self._updates[shape] = Prepared(quiet_update(*shape), self.dialect)
        return prepared


def _translated(exc: pymysql.err.Error, statement: str) -> DBAPIError:
    """The SQLAlchemy exception that the same error raises through SQLAlchemy."""
    return cast(DBAPIError, DBAPIError.instance(statement, None, exc, pymysql.err.Error))
