"""A batch's statements on MariaDB, sent by the database driver itself: one round trip for the
commit-order lock, the INSERT ... RETURNING and the conversations' UPDATE, then COMMIT.

Through SQLAlchemy, a message that arrives alone costs four round trips (those three
statements, then COMMIT), and SQLAlchemy's execution machinery, with a greenlet switch, for
each: measured, a third of the server's CPU for such a message. Here the three statements go
as one multi-statement query on the connection's own aiomysql connection (aiomysql always
connects with `CLIENT.MULTI_STATEMENTS`), then the driver commits: two round trips, and no
SQLAlchemy on the way.

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
# The columns a message is inserted with, in the order of the statement's VALUES.
# The id the connection's last INSERT made (its first row's).
LAST_INSERT_ID = func.last_insert_id()
COLUMNS = ("sender", "recipient", "conversation", "text", "created_at", "client_msg_id", "note")


def usable(dialect: Dialect) -> bool:
    """Whether batches on this (connected) engine's dialect can be written here."""
    return dialect.name == "mysql" and dialect.driver == "aiomysql" and dialect.insert_returning


class Prepared:
    """A statement compiled once for the driver: its SQL (the driver's `%s` placeholders) and
    how to turn named values into its positional arguments. A parameter that the statement
    bound itself (a constant) keeps its value; the others are taken from `values` by name."""

    __slots__ = ("_steps", "sql")

    def __init__(self, statement: ClauseElement, dialect: Dialect) -> None:
        compiled = cast(SQLCompiler, statement.compile(dialect=dialect))
        self.sql = compiled.string
        constants = compiled.params
        steps: list[tuple[str, Any, Callable[[Any], Any] | None]] = []
        for name in compiled.positiontup or ():
            bind = compiled.binds[name]
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            steps.append((name, constants.get(name), processor))
        self._steps = steps

    def args(self, values: Mapping[str, object]) -> list[object]:
        out = []
        for name, constant, processor in self._steps:
            value = values.get(name, constant)
            out.append(value if processor is None else processor(value))
        return out


class DriverWrites:
    """`GroupWriter`'s statements for one batch, on the driver's connection (`write`), and the
    commit or rollback of a transaction that ran only them."""

    def __init__(self, dialect: Dialect, lock: ClauseElement | None) -> None:
        """`lock`: the commit-order lock's UPDATE, sent first (None: no lock)."""
        self.dialect = dialect
        self._lock = None if lock is None else Prepared(lock, dialect)
        self._inserts: dict[int, Prepared] = {}  # by row count, at most `MAX_BATCH`
        self._updates: LRUCache[tuple[object, ...], Prepared] = LRUCache(256)  # by shape

    async def write(
        self, conn: AsyncConnection, messages: Sequence[Posted], activity: Activity, now: datetime
    ) -> int:
        """Take the lock, insert `messages` (their ids are set) and run `activity`'s statement,
        in the connection's transaction (which this begins). A message alone takes one round
        trip: its conversation's `last_message_id` is the id the INSERT just made
        (`LAST_INSERT_ID()`, on this connection). A batch takes two: the UPDATE needs each
        conversation's last id. How many conversations the UPDATE matched."""
        insert_ = self._insert(len(messages))
        row: dict[str, object] = {}
        for i, message in enumerate(messages):
            for column in COLUMNS:
                row[f"{column}_{i}"] = now if column == "created_at" else getattr(message, column)
        first = [insert_] if self._lock is None else [self._lock, insert_]
        args = [arg for part in first for arg in part.args(row)]
        lone = len(messages) == 1
        if lone:
            update_ = self._update((*activity.shape[:4], 0, LAST_INSERT_ID))
            first.append(update_)
            args += update_.args(activity.values(ids=False))
        sql = ";\n".join(part.sql for part in first)
        driver = await _driver(conn)
        cursor = await driver.cursor()
        try:
            await cursor.execute(sql, args)  # the lock's result (if any) is read
            if self._lock is not None:
                await cursor.nextset()
            # An INSERT's auto-increment ids grow in the order of its rows.
            ids = sorted(id_ for (id_,) in await cursor.fetchall())
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
            await cursor.close()
        except pymysql.err.Error as exc:
            raise _translated(exc, sql) from exc
        return matched

    async def commit(self, conn: AsyncConnection) -> None:
        await self._end(conn, "COMMIT")

    async def rollback(self, conn: AsyncConnection) -> None:
        await self._end(conn, "ROLLBACK")

    async def _end(self, conn: AsyncConnection, how: str) -> None:
        driver = await _driver(conn)
        try:
            await (driver.commit() if how == "COMMIT" else driver.rollback())
        except pymysql.err.Error as exc:
            raise _translated(exc, how) from exc

    def _insert(self, rows: int) -> Prepared:
        prepared = self._inserts.get(rows)
        if prepared is None:
            c = MESSAGES.c
            statement = (
                insert(MESSAGES)
                .values(
                    [
                        {col: bindparam(f"{col}_{i}", type_=c[col].type) for col in COLUMNS}
                        for i in range(rows)
                    ]
                )
                .returning(c.id)
            )
            prepared = self._inserts[rows] = Prepared(statement, self.dialect)
        return prepared

    def _update(self, shape: tuple[Any, ...]) -> Prepared:
        prepared = self._updates.get(shape)
        if prepared is None:
            prepared = self._updates[shape] = Prepared(quiet_update(*shape), self.dialect)
        return prepared


async def _driver(conn: AsyncConnection) -> Any:
    """The aiomysql connection under `conn`."""
    raw = await conn.get_raw_connection()
    return raw.driver_connection


def _translated(exc: pymysql.err.Error, statement: str) -> DBAPIError:
    """The SQLAlchemy exception that the same error raises through SQLAlchemy."""
    return cast(DBAPIError, DBAPIError.instance(statement, None, exc, pymysql.err.Error))
