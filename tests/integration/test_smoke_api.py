"""The JSON API from outside: login, registration, me, errors."""

from __future__ import annotations

from tests.conftest import PASSWORD, Stack


async def test_register_then_login_returns_token_and_cookie(stack: Stack) -> None:
    assert stack.http is not None
    r = await stack.http.post(
        "/api/register", json={"username": "Bob", "name": "Bob B", "password": PASSWORD}
    )
    assert r.status_code == 201
    assert r.json() == {"user": {"user": "Bob", "name": "Bob B", "rol": "user"}}
    assert "token" not in r.cookies
    r = await stack.http.post("/api/login", json={"username": "bob", "password": PASSWORD})
    assert r.status_code == 200
    body = r.json()
    assert body["user"] == {"user": "Bob", "name": "Bob B", "rol": "user"}
    assert body["expires_at"].endswith("Z")
    cookie = r.headers["set-cookie"]
    assert cookie.startswith("token=")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie
    me = await stack.http.get("/api/me", headers={"Authorization": f"Bearer {body['token']}"})
    assert me.json() == {"user": "Bob", "name": "Bob B", "rol": "user"}
