"""`Base`, the engine, sessions and `migrate` (Alembic, the one way to make a schema)."""

from __future__ import annotations

import asyncio
import logging
import os
import stat
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, event, make_url, text
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
MIGRATIONS = ROOT / "migrations"
_LOCK_NAME = "supportchat_migrate"
_PG_LOCK_KEY = 73_201_905_011  # any fixed bigint; names this application's migration lock


class Base(DeclarativeBase):
    pass


def make_engine(url: str, **options: Any) -> AsyncEngine:
    """An async engine for a URL already mapped to its driver by `parse_database_url`."""
    if url.startswith("sqlite"):
        database = make_url(url).database
        if database and database != ":memory:" and not database.startswith("file:"):
            private_sqlite_file(Path(database))
        engine = create_async_engine(url, **options)

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=10000")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine
    if url.startswith("mysql") and "charset=" not in url:
        url += ("&" if "?" in url else "?") + "charset=utf8mb4"
    # No pre-ping: it costs a round trip per checkout. A connection found dead fails its one
    # request (answered `unavailable`), and SQLAlchemy then recycles the whole pool.
    options.setdefault("pool_recycle", 1800)
    options.setdefault("pool_size", 10)
    options.setdefault("max_overflow", 20)
    options.setdefault("pool_timeout", 10)
    return create_async_engine(url, **options)


def private_sqlite_file(path: Path) -> None:
    """Make the database file readable by its owner only, as the secret file beside it. SQLite
    gives the `-wal` and `-shm` files it creates the main file's mode, whatever the umask. An
    existing file that others may read (made before this, or by hand) is narrowed, with a warning.
    When the file cannot be made (no such directory), SQLite reports it at the first connect."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    except OSError:
        return
    else:
        os.close(fd)
        return
    narrowed: list[str] = []
    for file in (path, *(path.with_name(path.name + s) for s in ("-wal", "-shm"))):
        try:
            mode = stat.S_IMODE(file.stat().st_mode)
            if mode & 0o077:
                file.chmod(mode & 0o700)
                narrowed.append(f"{file} ({mode:o} -> {mode & 0o700:o})")
        except FileNotFoundError:
            continue
        except OSError as exc:
            log.warning("could not make %s readable by its owner only (%s)", file, exc)
    if narrowed:
        log.warning("database files were open to others, now owner only: %s", ", ".join(narrowed))


def make_sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


async def ping(engine: AsyncEngine, *, timeout: float = 3.0) -> None:
    """Raise if the database does not answer `SELECT 1` within `timeout` seconds."""
    async with asyncio.timeout(timeout), engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


async def migrate(engine: AsyncEngine) -> None:
    """Create or upgrade the schema to the newest revision, one process at a time."""
    async with engine.connect() as conn, _migration_lock(conn):
        await conn.run_sync(_upgrade)
        await conn.commit()


def _upgrade(connection: Connection) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


@asynccontextmanager
async def _migration_lock(conn: AsyncConnection) -> AsyncIterator[None]:
    """Serialise migrations of several workers starting at once (MariaDB DDL is not
    transactional, so two upgrades must never interleave)."""
    dialect = conn.dialect.name
    if dialect == "mysql":
        got = (await conn.execute(text("SELECT GET_LOCK(:n, 120)"), {"n": _LOCK_NAME})).scalar()
        if got != 1:
            raise RuntimeError("could not take the migration lock within 120 s")
    elif dialect == "postgresql":
        await conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _PG_LOCK_KEY})
    await conn.commit()
    try:
        yield
    finally:
        if dialect == "mysql":
            await conn.execute(text("SELECT RELEASE_LOCK(:n)"), {"n": _LOCK_NAME})
        elif dialect == "postgresql":
            await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_LOCK_KEY})
        await conn.commit()
