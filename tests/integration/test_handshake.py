"""Socket.IO handshakes: token sources, the exact refusal texts, origins, forced disconnects."""

from __future__ import annotations

import asyncio
import time

import jwt

from tests.conftest import Stack, StackFactory


async def test_no_cookie_and_no_auth_is_no_autenticado(stack: Stack) -> None:
    assert await stack.try_connect() == "No autenticado"


async def test_cookies_without_token_is_token_no_proporcionado(stack: Stack) -> None:
    assert await stack.try_connect(headers={"Cookie": "other=1"}) == "Token no proporcionado"


async def test_empty_token_cookie_is_token_no_proporcionado(stack: Stack) -> None:
    assert await stack.try_connect(headers={"Cookie": "token=; a=b"}) == "Token no proporcionado"


async def test_empty_auth_token_counts_as_absent(stack: Stack) -> None:
    assert await stack.try_connect(auth={"token": ""}) == "No autenticado"
    token = await stack.register("ana")
    assert await stack.try_connect(auth={"token": ""}, headers={"Cookie": f"token={token}"}) is None


async def test_garbage_token_is_token_invalido(stack: Stack) -> None:
    assert await stack.try_connect(auth={"token": "not.a.jwt"}) == "Token inválido"
    assert await stack.try_connect(headers={"Cookie": "token=abc"}) == "Token inválido"


async def test_cookie_token_connects(stack: Stack) -> None:
    token = await stack.register("ana")
    assert await stack.try_connect(headers={"Cookie": f"x=1; token={token}"}) is None


async def test_polling_transport_connects_and_exchanges(stack: Stack) -> None:
    token = await stack.register("ana")
    client = await stack.connect(token, transports=["polling"])
    ack = await client.call("mensaje_privado", {"text": "over polling"})
    assert ack["ok"] is True


async def test_token_signed_with_another_secret_is_refused(stack: Stack) -> None:
    await stack.register("ana")
    now = int(time.time())
    forged = jwt.encode(
        {"user": "ana", "name": "a", "rol": "admin", "iat": now, "exp": now + 60, "jti": "x"},
        "another-secret-of-at-least-thirty-two-bytes!!",
        algorithm="HS256",
    )
    assert await stack.try_connect(auth={"token": forged}) == "Token inválido"


async def test_alg_none_token_is_refused(stack: Stack) -> None:
    await stack.register("ana")
    now = int(time.time())
    unsigned = jwt.encode(
        {"user": "ana", "name": "a", "rol": "admin", "iat": now, "exp": now + 60, "jti": "x"},
        None,  # type: ignore[arg-type]  # what PyJWT takes for alg none
        algorithm="none",
    )
    assert await stack.try_connect(auth={"token": unsigned}) == "Token inválido"


async def test_token_without_jti_or_exp_is_refused(stack: Stack) -> None:
    await stack.register("ana")
    secret = stack.settings.jwt_secret.reveal()  # type: ignore[union-attr]
    now = int(time.time())
    for claims in (
        {"user": "ana", "iat": now, "exp": now + 60},
        {"user": "ana", "iat": now, "jti": "j"},
    ):
        token = jwt.encode(claims, secret, algorithm="HS256")
        assert await stack.try_connect(auth={"token": token}) == "Token inválido"


async def test_token_of_deleted_user_is_refused(stack: Stack) -> None:
    from sqlalchemy import delete

    from models.user import User

    token = await stack.register("ana")
    async with stack.services.sessions.begin() as db:
        await db.execute(delete(User).where(User.user == "ana"))
    assert await stack.try_connect(auth={"token": token}) == "Token inválido"


async def test_foreign_origin_is_refused_before_the_token(stack: Stack) -> None:
    token = await stack.register("ana")
    refusal = await stack.try_connect(
        auth={"token": token}, headers={"Origin": "https://evil.example"}
    )
    assert refusal is not None
    assert refusal not in ("No autenticado", "Token no proporcionado", "Token inválido")
    polling = await stack.try_connect(
        auth={"token": token}, headers={"Origin": "https://evil.example"}, transports=["polling"]
    )
    assert polling is not None
    assert stack.http is not None
    r = await stack.http.get(
        "/socket.io/?EIO=4&transport=polling", headers={"Origin": "https://evil.example"}
    )
    assert r.status_code == 403


async def test_own_and_listed_origins_are_allowed(make_stack: StackFactory) -> None:
    stack = await make_stack(allowed_origins=("https://app.example",))
    token = await stack.register("ana")
    assert await stack.try_connect(auth={"token": token}, headers={"Origin": stack.url}) is None
    assert (
        await stack.try_connect(auth={"token": token}, headers={"Origin": "https://app.example"})
        is None
    )
    assert (
        await stack.try_connect(
            auth={"token": token}, headers={"Origin": "https://app.example.evil"}
        )
        is not None
    )


async def test_forwarded_origin_is_believed_only_from_trusted_proxies(
    make_stack: StackFactory,
) -> None:
    untrusting = await make_stack(trusted_proxies=())
    token = await untrusting.register("ana")
    spoofed = {
        "Origin": "https://evil.example",
        "X-Forwarded-Host": "evil.example",
        "X-Forwarded-Proto": "https",
    }
    assert await untrusting.try_connect(auth={"token": token}, headers=spoofed) is not None
    trusting = await make_stack()
    token = await trusting.register("bea")
    proxied = {
        "Origin": "https://chat.example",
        "X-Forwarded-Host": "chat.example",
        "X-Forwarded-Proto": "https",
    }
    assert await trusting.try_connect(auth={"token": token}, headers=proxied) is None


async def test_sockets_join_user_and_admin_rooms(stack: Stack) -> None:
    user = await stack.connect(await stack.register("ana"))
    admin = await stack.connect(await stack.register("boss", admin=True))
    rooms_user = stack_rooms(stack, user.sio.get_sid())
    rooms_admin = stack_rooms(stack, admin.sio.get_sid())
    assert "user:ana" in rooms_user and "admins" not in rooms_user
    assert {"user:boss", "admins"} <= rooms_admin


def stack_rooms(stack: Stack, sid: str | None) -> set[str]:
    server = stack.services.fanout.server
    return set(server.rooms(sid))  # type: ignore[attr-defined]


async def test_logout_revokes_token_and_disconnects_its_sockets(stack: Stack) -> None:
    token = await stack.register("ana")
    other = await stack.login("ana")
    first = await stack.connect(token)
    second = await stack.connect(other)
    assert stack.http is not None
    r = await stack.http.post(
        "/api/logout",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    assert r.status_code == 204
    await asyncio.wait_for(first.disconnected.wait(), 3)
    assert second.sio.connected
    assert await stack.try_connect(auth={"token": token}) == "Token inválido"
    me = await stack.http.get("/api/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 401


async def test_revocation_outlives_a_restart(make_stack: StackFactory) -> None:
    first = await make_stack()
    token = await first.register("ana")
    assert first.http is not None
    await first.http.post(
        "/api/logout",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    second = await make_stack(jwt_secret=first.settings.jwt_secret)
    assert await second.try_connect(auth={"token": token}) == "Token inválido"


async def test_role_change_disconnects_and_reconnect_gets_new_role(stack: Stack) -> None:
    admin_token = await stack.register("boss", admin=True)
    token = await stack.register("ana")
    client = await stack.connect(token)
    assert stack.http is not None
    r = await stack.http.post(
        "/api/users/ANA/role",
        json={"rol": "admin"},
        headers={"Authorization": f"Bearer {admin_token}"},
    )
    assert r.status_code == 200 and r.json()["user"]["rol"] == "admin"
    await asyncio.wait_for(client.disconnected.wait(), 3)
    again = await stack.connect(token)  # same token, new role from the database
    assert "admins" in stack_rooms(stack, again.sio.get_sid())
    ack = await again.call("announcement", {"text": "now I can"})
    assert ack["ok"] is True


async def test_socket_is_disconnected_when_its_token_expires(make_stack: StackFactory) -> None:
    stack = await make_stack(jwt_ttl_seconds=2.0)
    client = await stack.connect(await stack.register("ana"))
    started = time.monotonic()
    await asyncio.wait_for(client.disconnected.wait(), 6)
    assert time.monotonic() - started < 5
    assert await stack.try_connect(auth={"token": await stack.login("ana")}) is None


async def test_worker_id_prefixes_session_ids(make_stack: StackFactory) -> None:
    stack = await make_stack(worker_id="w7")
    client = await stack.connect(await stack.register("ana"), transports=["polling"])
    assert client.sio.eio.sid.startswith("w7.")
    assert client.sio.get_sid().startswith("w7.")
    assert (await client.call("mensaje_privado", {"text": "routed"}))["ok"] is True


async def test_websocket_compression_is_not_negotiated(stack: Stack) -> None:
    import aiohttp

    url = f"{stack.url}/socket.io/?EIO=4&transport=websocket"
    async with aiohttp.ClientSession() as session, session.ws_connect(url, compress=15) as ws:
        assert "Sec-WebSocket-Extensions" not in ws._response.headers
        assert ws.compress == 0


async def test_admin_ui_is_off_by_default_and_for_admins_only(make_stack: StackFactory) -> None:
    from tests.conftest import PASSWORD

    off = await make_stack()
    await off.register("boss", admin=True)
    refused = await off.try_connect(
        namespaces=["/admin"], auth={"username": "boss", "password": PASSWORD}
    )
    assert refused is not None

    on = await make_stack(admin_ui=True)
    await on.register("ana")
    for auth in (
        {"username": "ana", "password": PASSWORD},  # not an admin
        {"username": "boss", "password": "wrong"},
        {"token": "x"},
    ):
        assert await on.try_connect(namespaces=["/admin"], auth=auth) is not None
    admin = {"username": "boss", "password": PASSWORD}
    assert await on.try_connect(namespaces=["/admin"], auth=admin) is None
