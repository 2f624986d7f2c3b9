"""Pointed at the old service's MariaDB database, the server adopts `usuarios` in place:
rows and columns kept, old bcrypt hashes log in and are upgraded at that login, and starting
again changes nothing."""

from __future__ import annotations

import bcrypt
import pytest
from sqlalchemy import text

from models.db import make_engine, migrate
from tests.conftest import StackFactory, _fresh_server_database, service_url

# The old service ran on MySQL/MariaDB.
pytestmark = [
    pytest.mark.mariadb,
    pytest.mark.parametrize("make_stack", ["mariadb"], indirect=True),
]

LEGACY_DDL = """
CREATE TABLE usuarios (
  user VARCHAR(50) NOT NULL PRIMARY KEY,
  name VARCHAR(100) NOT NULL,
  rol VARCHAR(20) NOT NULL DEFAULT 'user',
  password VARCHAR(60) NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci
"""
LONG = "ñ" * 40  # 80 bytes: bcrypt only ever saw the first 72


def legacy_hash(password: str, prefix: str) -> str:
    hashed = bcrypt.hashpw(password.encode()[:72], bcrypt.gensalt(rounds=4)).decode()
    return prefix + hashed[4:]


@pytest.fixture
async def legacy_url(make_stack: StackFactory) -> str:
    url = await _fresh_server_database("mariadb", service_url("mariadb"))
    engine = make_engine(url)
    async with engine.begin() as conn:
        await conn.execute(text(LEGACY_DDL))
        rows = [
            ("Ana", "Ana Old", "user", legacy_hash("ana-old-password", "$2a$")),
            ("boss", "Boss", "admin", legacy_hash("boss-old-password", "$2b$")),
            ("yy", "Two letters", "user", legacy_hash("short", "$2y$")),
            ("long", "Long pw", "user", legacy_hash(LONG, "$2b$")),
        ]
        for row in rows:
            await conn.execute(
                text("INSERT INTO usuarios (user, name, rol, password) VALUES (:u, :n, :r, :p)"),
                dict(zip("unrp", row, strict=True)),
            )
    await engine.dispose()
    return url


async def rows(url: str) -> dict[str, tuple[str, str, str]]:
    engine = make_engine(url)
    async with engine.connect() as conn:
        result = await conn.execute(text("SELECT user, name, rol, password FROM usuarios"))
        found = {r[0]: (r[1], r[2], r[3]) for r in result}
    await engine.dispose()
    return found


async def test_old_usuarios_is_adopted_and_old_hashes_log_in_then_upgrade(
    make_stack: StackFactory, legacy_url: str
) -> None:
    before = await rows(legacy_url)
    stack = await make_stack(database_url=legacy_url)
    assert stack.http is not None
    after_start = await rows(legacy_url)
    assert after_start == before  # adopted in place: nothing changed by starting

    for user, password, rol in [
        ("ana", "ana-old-password", "user"),  # any case spelling finds it
        ("BOSS", "boss-old-password", "admin"),
        ("yy", "short", "user"),  # outside today's rules, still logs in
        ("long", LONG + "anything after byte 72", "user"),
    ]:
        r = await stack.http.post("/api/login", json={"username": user, "password": password})
        assert r.status_code == 200, (user, r.text)
        assert r.json()["user"]["rol"] == rol

    upgraded = await rows(legacy_url)
    assert all(p.startswith("$argon2id$") for _, _, p in upgraded.values())
    assert {u: (n, r) for u, (n, r, _) in upgraded.items()} == {
        u: (n, r) for u, (n, r, _) in before.items()
    }
    r = await stack.http.post(
        "/api/login", json={"username": "Ana", "password": "ana-old-password"}
    )
    assert r.status_code == 200 and r.json()["user"]["user"] == "Ana"
    wrong = await stack.http.post("/api/login", json={"username": "Ana", "password": "nope"})
    assert wrong.status_code == 401

    engine = make_engine(legacy_url)
    await migrate(engine)  # starting again changes nothing
    await engine.dispose()
    assert await rows(legacy_url) == upgraded
