"""A database made by the first release (revision 0001, messages and no team state) upgrades in
place: every user with messages gets one open, unassigned conversation whose activity is its
newest message, and the server then serves and changes it like any other. One made by the
second (0002, the team's workflow) gets the visitors' table; its users stay registered users."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, inspect, text

from config.settings import parse_database_url
from models.db import MIGRATIONS, make_engine
from tests.conftest import FAST_HASHER, PASSWORD, StackFactory, _fresh_server_database, service_url


def _to(revision: str) -> Callable[[Connection], None]:
    def upgrade(connection: Connection) -> None:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["connection"] = connection
        command.upgrade(config, revision)

    return upgrade


async def database_at(kind: str, tmp_path: Path, revision: str) -> str:
    if kind == "sqlite":
        url = parse_database_url(f"sqlite:///{tmp_path / 'old.db'}")
    else:
        url = await _fresh_server_database(kind, service_url(kind))
    engine = make_engine(url)
    async with engine.connect() as conn:
        await conn.run_sync(_to(revision))
        await conn.commit()
    await engine.dispose()
    return url


async def database_at_0001(kind: str, tmp_path: Path) -> str:
    url = await database_at(kind, tmp_path, "0001")
    engine = make_engine(url)
    rows: list[dict[str, Any]] = [
        {"s": "boss", "r": "ana", "c": "ana", "t": "we wrote first"},  # 1
        {"s": "ana", "r": "admins", "c": "ana", "t": "hello"},  # 2
        {"s": "bob", "r": "admins", "c": "bob", "t": "hi"},  # 3
        {"s": "boss", "r": "bob", "c": "bob", "t": "hi bob"},  # 4
        {"s": "boss", "r": "cid", "c": "cid", "t": "only us so far"},  # 5
    ]
    async with engine.begin() as conn:
        for row in rows:
            await conn.execute(
                text(
                    "INSERT INTO messages (sender, recipient, conversation, text, created_at)"
                    " VALUES (:s, :r, :c, :t, CURRENT_TIMESTAMP)"
                ),
                row,
            )
    await engine.dispose()
    return url


@pytest.mark.parametrize("make_stack", ["sqlite"], indirect=True)  # its database is ours
@pytest.mark.parametrize("kind", ["sqlite", "mariadb", "postgresql"])
async def test_a_0001_database_upgrades_with_one_open_conversation_per_user(
    kind: str, tmp_path: Path, make_stack: StackFactory
) -> None:
    if kind != "sqlite":
        service_url(kind)  # skips (or fails under REQUIRE_SERVICES) without the server
    url = await database_at_0001(kind, tmp_path)
    stack = await make_stack(database_url=url)  # the server migrates at start
    boss_token = await stack.register("boss", "Boss", admin=True)
    for name in ("ana", "bob", "cid"):
        await stack.services.auth.add_user(name, name.title(), "a-long-password!", admin=False)

    engine = make_engine(url)
    async with engine.connect() as conn:
        state = {
            user: (status, assignee, last, opened)
            for user, status, assignee, last, opened in await conn.execute(
                text(
                    "SELECT conversations.user, status, assignee, last_message_id, opened_id"
                    " FROM conversations"
                )
            )
        }
        notes = (await conn.execute(text("SELECT COUNT(*) FROM messages WHERE note"))).scalar()
    await engine.dispose()
    ids = sorted({last for _, _, last, _ in state.values()})
    assert len(ids) == 3
    assert state == {
        "ana": ("open", None, state["ana"][2], state["ana"][3]),
        "bob": ("open", None, state["bob"][2], state["bob"][3]),
        "cid": ("open", None, state["cid"][2], None),  # no user message: not opened yet
    }
    assert state["ana"][3] == state["ana"][2]  # ana's first own message is also her last
    assert state["bob"][3] < state["bob"][2]
    assert notes == 0

    assert stack.http is not None
    r = await stack.http.get(
        "/api/conversations", headers={"Authorization": f"Bearer {boss_token}"}
    )
    assert [c["user"] for c in r.json()["conversations"]] == ["cid", "bob", "ana"]
    cid = await stack.connect(await stack.login("cid", "a-long-password!"))
    assert (await cid.call("mensaje_privado", {"text": "now me"}))["ok"]
    r = await stack.http.get(
        "/api/conversations", headers={"Authorization": f"Bearer {boss_token}"}
    )
    assert r.json()["conversations"][0]["user"] == "cid"
    assert r.json()["conversations"][0]["last_message"]["text"] == "now me"
    assert r.json()["conversations"][0]["last_message"]["attachments"] == []  # 0004's table


@pytest.mark.parametrize("make_stack", ["sqlite"], indirect=True)  # its database is ours
@pytest.mark.parametrize("kind", ["sqlite", "mariadb", "postgresql"])
async def test_a_0002_database_upgrades_with_its_users_registered_visitors_and_uploads_served(
    kind: str, tmp_path: Path, make_stack: StackFactory
) -> None:
    if kind != "sqlite":
        service_url(kind)
    url = await database_at(kind, tmp_path, "0002")
    engine = make_engine(url)
    async with engine.begin() as conn:
        # Positional: "user" is a reserved word on PostgreSQL.
        await conn.execute(
            text("INSERT INTO usuarios VALUES (:u, :n, 'user', :p)"),
            {"u": "ana", "n": "Ana", "p": FAST_HASHER.hash(PASSWORD)},
        )
    await engine.dispose()
    stack = await make_stack(
        database_url=url, widget_origins=("https://shop.example",)
    )  # the server migrates at start
    engine = make_engine(url)
    async with engine.connect() as conn:
        tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
        version = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar()
    await engine.dispose()
    assert {"visitors", "attachments"} <= tables and version == "0004"

    boss = await stack.register("boss", "Boss", admin=True)
    ana = await stack.connect(await stack.login("ana"))
    assert (await ana.call("mensaje_privado", {"text": "still here"}))["ok"]
    assert stack.http is not None
    r = await stack.http.post("/api/visitors", json={"email": "new@example.com"})
    assert r.status_code == 201, r.text
    newcomer = r.json()["user"]["user"]
    visitor = await stack.connect(r.json()["token"])
    assert (await visitor.call("mensaje_privado", {"text": "new here"}))["ok"]
    r = await stack.http.get("/api/conversations", headers={"Authorization": f"Bearer {boss}"})
    found = {
        c["user"]: (c["visitor"], c["email"], c["verified"]) for c in r.json()["conversations"]
    }
    assert found == {"ana": (False, None, False), newcomer: (True, "new@example.com", False)}
