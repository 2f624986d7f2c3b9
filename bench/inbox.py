"""The inbox list at scale: p50 and p99 of one page of `GET /api/conversations` (the service
call the handler makes, on a real database) with 100 and with 100,000 conversations, with and
without filters, first pages and deep pages.

    .venv/bin/python bench/inbox.py --db mariadb --sizes 100,100000
    .venv/bin/python bench/inbox.py --db postgresql

Each size gets a fresh database (`bench_inbox_<random>`, dropped at the end) migrated by the
server's own migrations, filled with one message and one conversation per user: statuses
60% open, 20% pending, 5% snoozed, 15% resolved; a quarter unassigned, the rest spread over
5 admins; one in ten labelled `vip`. Prints a table and one JSON line per size.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import secrets
import statistics
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import Table, text
from sqlalchemy.ext.asyncio import AsyncEngine

from config.settings import Secret, Settings, parse_database_url
from models.conversation import ConversationLabel, ConversationState
from models.db import make_engine, make_sessions, migrate
from models.message import Message
from models.user import Identity, User
from services import Services
from services.inputs import ConversationQuery

SERVERS = {
    "mariadb": "mysql://root@127.0.0.1:3306/test",
    "postgresql": "postgresql://postgres@127.0.0.1:5432/test",
}
ADMINS = [f"admin{i}" for i in range(5)]
CHUNK = 5_000

QUERIES: dict[str, dict[str, str | None]] = {
    "all": {},
    "open": {"status": "open"},
    "open,pending": {"status": "open,pending"},
    "mine": {"assignee": "me"},
    "unassigned": {"assignee": "none"},
    "label vip": {"label": "vip"},
    "mine, open": {"assignee": "me", "status": "open"},
}


async def fresh(kind: str) -> tuple[str, str]:
    name = f"bench_inbox_{secrets.token_hex(3)}"
    base = parse_database_url(SERVERS[kind])
    admin = make_engine(base, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        quoted = f"`{name}`" if kind == "mariadb" else f'"{name}"'
        await conn.execute(text(f"CREATE DATABASE {quoted}"))
    await admin.dispose()
    return base.rsplit("/", 1)[0] + "/" + name, name


async def drop(kind: str, name: str) -> None:
    admin = make_engine(parse_database_url(SERVERS[kind]), isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        quoted = f"`{name}`" if kind == "mariadb" else f'"{name}"'
        force = " WITH (FORCE)" if kind == "postgresql" else ""
        await conn.execute(text(f"DROP DATABASE IF EXISTS {quoted}{force}"))
    await admin.dispose()


async def fill(engine: AsyncEngine, size: int, rng: random.Random) -> None:
    users = cast(Table, User.__table__)
    messages = cast(Table, Message.__table__)
    conversations = cast(Table, ConversationState.__table__)
    labels = cast(Table, ConversationLabel.__table__)
    now = datetime.now(UTC)
    async with engine.begin() as conn:
        await conn.execute(
            users.insert(),
            [{"user": a, "name": a, "rol": "admin", "password": "x"} for a in ADMINS],
        )
    for start in range(0, size, CHUNK):
        batch = range(start, min(size, start + CHUNK))
        async with engine.begin() as conn:
            await conn.execute(
                users.insert(),
                [
                    {"user": f"u{i:06d}", "name": f"User {i}", "rol": "user", "password": "x"}
                    for i in batch
                ],
            )
            await conn.execute(
                messages.insert(),
                [
                    {
                        "id": i + 1,
                        "sender": f"u{i:06d}",
                        "recipient": "admins",
                        "conversation": f"u{i:06d}",
                        "text": "hello",
                        "created_at": now,
                        "client_msg_id": None,
                        "note": False,
                    }
                    for i in batch
                ],
            )
            rows = []
            for i in batch:
                status = rng.choices(["open", "pending", "snoozed", "resolved"], [60, 20, 5, 15])[0]
                rows.append(
                    {
                        "user": f"u{i:06d}",
                        "status": status,
                        "assignee": None if rng.random() < 0.25 else rng.choice(ADMINS),
                        "snoozed_until": now if status == "snoozed" else None,
                        "last_message_id": i + 1,
                        "opened_id": i + 1,
                        "opened_at": now,
                        "awaiting_reply": True,
                    }
                )
            await conn.execute(conversations.insert(), rows)
            vip = [{"conversation": f"u{i:06d}", "label": "vip"} for i in batch if i % 10 == 0]
            if vip:
                await conn.execute(labels.insert(), vip)
    if engine.dialect.name == "postgresql":
        async with engine.connect() as conn:
            await conn.execute(text("ANALYZE"))
            await conn.commit()
    elif engine.dialect.name == "mysql":
        async with engine.connect() as conn:
            for table in ("conversations", "conversation_labels", "messages"):
                await conn.execute(text(f"ANALYZE TABLE {table}"))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def measure(services: Services, size: int, repeats: int) -> dict[str, Any]:
    me = Identity("admin0", "admin0", "admin")
    results: dict[str, Any] = {}
    for label, params in QUERIES.items():
        for depth in ("first page", "deep page"):
            before = None
            if depth == "deep page":
                before = str(max(1, size // 2))
            query = ConversationQuery.parse(
                params.get("status"), params.get("assignee"), params.get("label"), "50", before
            )
            await services.team.page(me, query)  # warm
            times = []
            for _ in range(repeats):
                started = time.perf_counter()
                found, _ = await services.team.page(me, query)
                times.append((time.perf_counter() - started) * 1000)
            results[f"{label} / {depth}"] = {
                "p50_ms": round(statistics.median(times), 2),
                "p99_ms": round(percentile(times, 0.99), 2),
                "rows": len(found),
            }
    return results


LABEL_QUERY = (
    "SELECT c.user FROM conversations c WHERE EXISTS (SELECT 1 FROM conversation_labels l"
    " WHERE l.conversation = c.user AND l.label = 'vip') ORDER BY c.last_message_id DESC LIMIT 51"
)


async def explain(engine: AsyncEngine) -> None:
    """The database's plan of the label filter's page, on stderr."""
    query = LABEL_QUERY  # as services.team.Team.page writes it
    if engine.dialect.name == "postgresql":
        query = query.replace("c.user", 'c."user"')
    else:
        query = query.replace(
            "conversations c ", "conversations c FORCE INDEX (ix_conversations_activity) "
        )
    async with engine.connect() as conn:
        for row in await conn.execute(text("EXPLAIN " + query)):
            print("  plan:", *row, file=sys.stderr)


async def run(kind: str, sizes: list[int], repeats: int, show_plan: bool = False) -> None:
    for size in sizes:
        url, name = await fresh(kind)
        try:
            engine = make_engine(url)
            await migrate(engine)
            await fill(engine, size, random.Random(size))  # noqa: S311 (made-up data)
            settings = replace(Settings(database_url=url), jwt_secret=Secret("x" * 40))
            services = Services.build(settings, engine, make_sessions(engine))
            results = await measure(services, size, repeats)
            if show_plan:
                await explain(engine)
            await engine.dispose()
        finally:
            await drop(kind, name)
        print(f"\n{kind}, {size:,} conversations: ms per page of 50", file=sys.stderr)
        for key, value in results.items():
            print(
                f"  {key:32} p50 {value['p50_ms']:7.2f}  p99 {value['p99_ms']:7.2f}"
                f"  ({value['rows']} rows)",
                file=sys.stderr,
            )
        print(json.dumps({"db": kind, "conversations": size, "pages": results}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=sorted(SERVERS), default="mariadb")
    parser.add_argument("--sizes", default="100,100000")
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--explain", action="store_true", help="print the label filter's plan")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    asyncio.run(run(args.db, sizes, args.repeats, args.explain))


if __name__ == "__main__":
    main()
