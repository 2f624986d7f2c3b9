"""Roles: the last admin stays one (by the API, on several workers at once, and from the
command line), and `server.py setrole` reaches every worker's sockets."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from models.user import ADMIN, User
from tests.conftest import Stack, StackFactory, service_url

ROOT = Path(__file__).resolve().parent.parent.parent


async def set_role(stack: Stack, token: str, user: str, rol: str) -> tuple[int, dict[str, Any]]:
    assert stack.http is not None
    r = await stack.http.post(
        f"/api/users/{user}/role", json={"rol": rol}, headers={"Authorization": f"Bearer {token}"}
    )
    return r.status_code, r.json()


async def admins(stack: Stack) -> int:
    async with stack.services.sessions() as db:
        return int((await db.execute(select(func.count()).where(User.rol == ADMIN))).scalar_one())


async def test_the_only_admin_cannot_demote_itself(stack: Stack) -> None:
    boss = await stack.register("boss", admin=True)
    status, body = await set_role(stack, boss, "boss", "user")
    assert (status, body["error"]) == (409, "conflict"), body
    assert await admins(stack) == 1
    await stack.register("ana")
    assert (await set_role(stack, boss, "ana", "admin"))[0] == 200
    assert (await set_role(stack, boss, "boss", "user"))[0] == 200  # now another one is left
    assert await admins(stack) == 1


async def test_two_admins_demoting_each_other_on_two_workers_leave_one(
    make_stack: StackFactory,
) -> None:
    a, b = await make_stack(), await make_stack()
    for round_ in range(5):
        alice, bob = f"alice{round_}", f"bob{round_}"
        tokens = [await a.register(alice, admin=True), await a.register(bob, admin=True)]
        before = await admins(a)
        results = await asyncio.gather(
            set_role(a, tokens[0], bob, "user"), set_role(b, tokens[1], alice, "user")
        )
        statuses = sorted(status for status, _ in results)
        if before == 2:  # only these two: one of them must fail
            assert statuses == [200, 409], results
            assert await admins(a) == 1
        else:  # admins of earlier rounds remain: both may go
            assert statuses == [200, 200], results
            assert await admins(a) == before - 2


def setrole(database_url: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    scheme, _, rest = database_url.partition("://")
    plain = f"{scheme.split('+', 1)[0]}://{rest}"
    return subprocess.run(
        [sys.executable, str(ROOT / "server.py"), "setrole", *args],
        env={"PATH": os.environ["PATH"], "DATABASE_URL": plain, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("make_stack", ["sqlite"], indirect=True)
async def test_setrole_from_the_command_line(stack: Stack) -> None:
    url = stack.settings.database_url
    await stack.register("boss", admin=True)
    await stack.register("ana")
    last = await asyncio.to_thread(setrole, url, "boss", "user")
    assert last.returncode == 1
    assert last.stderr.splitlines() == ["setrole: The last admin cannot stop being one."]
    made = await asyncio.to_thread(setrole, url, "ANA", "admin")
    assert made.returncode == 0, made.stderr
    assert made.stderr.splitlines() == ["setrole: 'ana' is now admin"]
    unknown = await asyncio.to_thread(setrole, url, "nobody", "admin")
    assert unknown.returncode == 1 and unknown.stderr.strip() == "setrole: No such user."
    assert await admins(stack) == 2


@pytest.mark.redis
@pytest.mark.parametrize("make_stack", ["sqlite"], indirect=True)
async def test_setrole_closes_the_users_sockets_on_every_worker(make_stack: StackFactory) -> None:
    redis_url = service_url("redis")
    a = await make_stack(redis_url=redis_url)
    b = await make_stack(redis_url=redis_url)
    await a.register("boss", admin=True)
    token = await a.register("ana")
    on_a, on_b = await a.connect(token), await b.connect(token)
    made = await asyncio.to_thread(
        setrole,
        a.settings.database_url,
        "ana",
        "admin",
        REDIS_URL=redis_url,
        REDIS_PREFIX=a.settings.redis_prefix,
    )
    assert made.returncode == 0, made.stderr
    for client in (on_a, on_b):
        await asyncio.wait_for(client.disconnected.wait(), 5)
        assert client.disconnect_reason == "server disconnect"
    again = await b.connect(token)  # the page reconnects, with the new role
    conn = b.services.connections.get(again.sio.get_sid())
    assert conn is not None and conn.identity.rol == ADMIN
