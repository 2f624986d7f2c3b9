"""Forged tokens, origins, CSRF, markup and SQL metacharacters in every field, and logs that
hold no secret."""

from __future__ import annotations

import base64
import json
import logging
import time
import traceback
from collections.abc import Callable
from typing import Any

import httpx
import jwt
import pytest
import tornado.escape
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import func, select, text

from models.message import Message
from models.user import User
from tests.conftest import PASSWORD, TABLES, Stack

pytestmark = pytest.mark.parametrize("make_stack", ["sqlite"], indirect=True)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims(user: str = "ana", *, exp_in: int = 600, rol: str = "admin") -> dict[str, Any]:
    now = int(time.time())
    return {"user": user, "name": user, "rol": rol, "iat": now, "exp": now + exp_in, "jti": "j1"}


def secret_of(stack: Stack) -> str:
    assert stack.settings.jwt_secret is not None
    return stack.settings.jwt_secret.reveal()


def alg_none(stack: Stack, real: str) -> list[str]:
    body = b64(json.dumps(claims()).encode())
    return [
        f"{b64(json.dumps({'alg': alg, 'typ': 'JWT'}).encode())}.{body}.{sig}"
        for alg in ("none", "None", "NONE", "nOnE")
        for sig in ("", real.rsplit(".", 1)[1])
    ]


_RSA = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PUBLIC_PEM = _RSA.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
)


def _hmac(claims_: dict[str, Any], key: bytes, alg: str = "HS256") -> str:
    """An HMAC-signed token built by hand (PyJWT refuses PEM keys as HMAC secrets)."""
    import hashlib
    import hmac

    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
    head = b64(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    body = b64(json.dumps(claims_).encode())
    signature = hmac.new(key, f"{head}.{body}".encode(), digest).digest()
    return f"{head}.{body}.{b64(signature)}"


def key_confusion(stack: Stack, real: str) -> list[str]:
    return [
        jwt.encode(claims(), _RSA, algorithm="RS256"),  # a key pair of the attacker's own
        _hmac(claims(), PUBLIC_PEM),  # HS256 "signed" with a public key
        _hmac(claims(), b""),
        _hmac(claims(), secret_of(stack).encode(), "HS384"),  # the right secret, other algs
        _hmac(claims(), secret_of(stack).encode(), "HS512"),
    ]


def tampered(stack: Stack, real: str) -> list[str]:
    head, body, sig = real.split(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    out = []
    for change in ({"rol": "admin"}, {"user": "boss"}, {"exp": payload["exp"] + 10**6}):
        forged = b64(json.dumps({**payload, **change}).encode())
        out.append(f"{head}.{forged}.{sig}")
    out.append(f"{head}.{body}.{sig[:-2]}{'AA' if sig[-2:] != 'AA' else 'BB'}")
    out.append(f"{head}.{body}")
    out.append(f"{head}.{body}.{sig}.{sig}")
    return out


def expired(stack: Stack, real: str) -> list[str]:
    return [
        jwt.encode(claims(exp_in=-5), secret_of(stack), algorithm="HS256"),
        jwt.encode(claims(exp_in=-86400), secret_of(stack), algorithm="HS256"),
    ]


FORGERIES: dict[str, Callable[[Stack, str], list[str]]] = {
    "alg none": alg_none,
    "key confusion and other algorithms": key_confusion,
    "tampered payload or signature": tampered,
    "expired": expired,
}


async def refused_everywhere(stack: Stack, token: str) -> None:
    """Refused at the handshake and 401 `unauthenticated` on every authenticated route, as a
    bearer token and as the cookie."""
    assert await stack.try_connect(auth={"token": token}) == "Token inválido", token
    assert await stack.try_connect(headers={"Cookie": f"token={token}"}) == "Token inválido"
    routes = [
        ("GET", "/api/me", None),
        ("GET", "/api/messages?with=ana", None),
        ("GET", "/api/conversations", None),
        ("POST", "/api/users/ana/role", {"rol": "admin"}),
        ("POST", "/api/logout", {}),
    ]
    for via in ("bearer", "cookie"):
        async with httpx.AsyncClient(base_url=stack.url, timeout=10) as http:
            for method, path, body in routes:
                headers = {"Content-Type": "application/json"}
                if via == "bearer":
                    headers["Authorization"] = f"Bearer {token}"
                else:
                    headers["Cookie"] = f"token={token}"
                r = await http.request(method, path, json=body, headers=headers)
                assert r.status_code == 401, (via, path, token, r.status_code, r.text)
                assert r.json()["error"] == "unauthenticated", (via, path, r.text)


async def role_of(stack: Stack, name: str) -> str:
    user = await stack.services.auth.find_user(name)
    assert user is not None
    return user.rol


@pytest.mark.parametrize("kind", list(FORGERIES))
async def test_forged_tokens_are_refused_at_the_handshake_and_on_every_api_route(
    stack: Stack, kind: str
) -> None:
    real = await stack.register("ana")
    await stack.register("boss", admin=True)
    for token in FORGERIES[kind](stack, real):
        await refused_everywhere(stack, token)
    assert await role_of(stack, "ana") == "user"
    assert await stack.try_connect(auth={"token": real}) is None  # the real one still works


async def test_revoked_token_is_refused_at_the_handshake_and_on_every_api_route(
    stack: Stack,
) -> None:
    token = await stack.register("ana")
    await stack.register("boss", admin=True)
    assert stack.http is not None
    r = await stack.http.post("/api/logout", json={}, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 204
    await refused_everywhere(stack, token)
    assert await role_of(stack, "ana") == "user"


# -- origins --------------------------------------------------------------------------------


FOREIGN_ORIGINS = [
    "null",
    "https://evil.example",
    "http://127.0.0.1.evil.example",
    "http://127.0.0.1:1",  # same host, another port
    "http://evil.example#http://127.0.0.1",
]


async def test_foreign_origins_are_refused_on_polling_and_websocket_handshakes(
    stack: Stack,
) -> None:
    import aiohttp

    token = await stack.register("ana")
    origins = [*FOREIGN_ORIGINS, f"https://127.0.0.1:{stack.port}"]  # another scheme
    assert stack.http is not None
    async with aiohttp.ClientSession() as session:
        for origin in origins:
            headers = {"Origin": origin, "Cookie": f"token={token}"}
            r = await stack.http.get("/socket.io/?EIO=4&transport=polling", headers=headers)
            assert r.status_code == 403, (origin, r.status_code)
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await session.ws_connect(
                    f"{stack.url}/socket.io/?EIO=4&transport=websocket", headers=headers
                )
            assert refused.value.status == 403, origin
    # A session opened without an Origin cannot be driven by a foreign page either.
    r = await stack.http.get("/socket.io/?EIO=4&transport=polling")
    sid = json.loads(r.text[1:])["sid"]
    post = await stack.http.post(
        f"/socket.io/?EIO=4&transport=polling&sid={sid}",
        content="40" + json.dumps({"token": token}),
        headers={"Origin": "https://evil.example", "Content-Type": "text/plain"},
    )
    assert post.status_code == 403
    assert await stack.try_connect(auth={"token": token}, headers={"Origin": stack.url}) is None


# -- CSRF -----------------------------------------------------------------------------------


async def test_form_posts_without_a_valid_xsrf_are_forbidden_and_change_nothing(
    stack: Stack,
) -> None:
    token = await stack.register("ana")
    forms = {
        "/login": {"username": "ana", "password": PASSWORD},
        "/register": {"username": "mallory", "name": "M", "password": PASSWORD},
        "/logout": {},
    }
    async with httpx.AsyncClient(base_url=stack.url, timeout=10) as http:
        page = await http.get("/login")
        real_xsrf = http.cookies["_xsrf"]
        assert page.status_code == 200
        for path, fields in forms.items():
            for label, xsrf, with_cookie in (
                ("missing", None, True),
                ("wrong", "2|deadbeef|" + "0" * 32 + "|1", True),
                ("without its cookie", real_xsrf, False),
                ("garbage", "x", True),
            ):
                data = dict(fields)
                if xsrf is not None:
                    data["_xsrf"] = xsrf
                cookies = {"token": token, **({"_xsrf": real_xsrf} if with_cookie else {})}
                r = await http.post(
                    path,
                    data=data,
                    headers={"Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())},
                    follow_redirects=False,
                )
                assert r.status_code == 403, (path, label, r.status_code)
                assert "token=" not in r.headers.get("set-cookie", ""), (path, label)
    assert await stack.services.auth.find_user("mallory") is None
    assert await stack.try_connect(auth={"token": token}) is None  # not logged out


CROSS_SITE_BODIES = {
    "application/x-www-form-urlencoded": "rol=admin&username=ana&password=x&name=y",
    "multipart/form-data; boundary=xyz": (
        '--xyz\r\nContent-Disposition: form-data; name="rol"\r\n\r\nadmin\r\n--xyz--\r\n'
    ),
    "text/plain": '{"rol": "admin", "username": "eve", "name": "E", "password": "'
    + PASSWORD
    + '"}',
}


@pytest.mark.parametrize("content_type", list(CROSS_SITE_BODIES))
async def test_api_state_changes_refuse_what_a_cross_site_form_can_send(
    stack: Stack, content_type: str
) -> None:
    admin = await stack.register("boss", admin=True)
    await stack.register("ana")
    body = CROSS_SITE_BODIES[content_type]
    async with httpx.AsyncClient(base_url=stack.url, timeout=10) as http:
        for path in ("/api/users/ana/role", "/api/logout", "/api/register", "/api/login"):
            r = await http.post(
                path,
                content=body,
                headers={"Content-Type": content_type, "Cookie": f"token={admin}"},
            )
            assert r.status_code == 415, (path, r.status_code, r.text)
            assert r.json()["error"] == "unsupported_media_type"
            assert "set-cookie" not in r.headers or "token=" not in r.headers["set-cookie"]
    assert await role_of(stack, "ana") == "user"
    assert await stack.services.auth.find_user("eve") is None
    assert await stack.try_connect(auth={"token": admin}) is None


# -- markup ---------------------------------------------------------------------------------

MARKUP = "<script>alert('x')</script><img src=x onerror=alert(1)>&amp;\"'"


async def test_markup_in_names_and_messages_is_exact_in_json_and_escaped_in_html(
    stack: Stack,
) -> None:
    user_token = await stack.register("ana", MARKUP)
    admin_token = await stack.register("boss", "Boss " + MARKUP, admin=True)
    ana = await stack.connect(user_token)
    boss = await stack.connect(admin_token)
    ack = await ana.call("mensaje_privado", {"text": MARKUP, "client_msg_id": MARKUP[:60]})
    assert ack["ok"] is True and ack["message"]["text"] == MARKUP
    assert ack["message"]["client_msg_id"] == MARKUP[:60]
    assert (await boss.wait_for("mensaje_privado"))[0]["text"] == MARKUP
    reply = await boss.call("mensaje_privado", {"to": "ana", "text": MARKUP})
    assert (await ana.wait_for("mensaje_privado"))[0]["text"] == MARKUP
    assert reply["ok"] is True
    announced = await boss.call("announcement", {"text": MARKUP})
    assert announced["announcement"]["text"] == MARKUP
    assert all(m["text"] == MARKUP for m in (await ana.call("sync", {"after": 0}))["messages"])
    async with httpx.AsyncClient(base_url=stack.url, timeout=10) as http:
        me = await http.get("/api/me", headers={"Authorization": f"Bearer {user_token}"})
        assert me.json()["name"] == MARKUP
        history = await http.get("/api/messages", headers={"Authorization": f"Bearer {user_token}"})
        assert [m["text"] for m in history.json()["messages"]] == [MARKUP, MARKUP]
        inbox = await http.get(
            "/api/conversations", headers={"Authorization": f"Bearer {admin_token}"}
        )
        (conversation,) = inbox.json()["conversations"]
        assert conversation["name"] == MARKUP and conversation["last_message"]["text"] == MARKUP
        pages = [
            await http.get("/chat", headers={"Cookie": f"token={user_token}"}),
            await http.get("/admin", headers={"Cookie": f"token={admin_token}"}),
            await http.get("/login"),
        ]
        xsrf = http.cookies["_xsrf"]
        pages.append(
            await http.post(
                "/login",
                data={"_xsrf": xsrf, "username": MARKUP, "password": "wrong password"},
            )
        )
        pages.append(
            await http.post(
                "/register",
                data={"_xsrf": xsrf, "username": MARKUP, "name": MARKUP, "password": "short"},
            )
        )
        for page in pages:
            assert page.status_code in (200, 400, 401), (page.url, page.status_code)
            for dangerous in ("<script>alert", "<img src=x"):
                assert dangerous not in page.text, (page.url, dangerous)
            assert "script-src 'self'" in page.headers["content-security-policy"]
        for page in pages[:2]:  # the user's name in the page header, escaped
            assert tornado.escape.xhtml_escape(MARKUP) in page.text, page.url
        assert tornado.escape.xhtml_escape("Boss " + MARKUP) in pages[1].text


# -- SQL metacharacters ---------------------------------------------------------------------

SQL = ["' OR 1=1 --", '"; DROP TABLE usuarios; --', "\\", "%", "_", "a%", "ana' --"]


async def test_sql_metacharacters_are_stored_exactly_or_refused_and_tables_survive(
    stack: Stack,
) -> None:
    assert stack.http is not None
    http = stack.http
    token = await stack.register("ana")
    admin = await stack.register("boss", admin=True)
    await stack.register("a_a")  # `_` and `.` and `-` are legal in user names
    bearer = {"Authorization": f"Bearer {admin}"}
    for meta in SQL:
        # user names: refused at registration, never a match at login
        r = await http.post(
            "/api/register", json={"username": meta, "name": "x", "password": PASSWORD}
        )
        assert r.status_code == 400 and r.json()["error"] == "invalid", (meta, r.text)
        r = await http.post("/api/login", json={"username": meta, "password": PASSWORD})
        assert r.status_code == 401 and r.json()["error"] == "bad_credentials", (meta, r.text)
        # `with` and the role path: refused or not found, never someone else
        r = await http.get("/api/messages", params={"with": meta}, headers=bearer)
        assert r.status_code in (400, 404), (meta, r.status_code, r.text)
        r = await http.post(
            f"/api/users/{httpx.URL(path=meta).raw_path.decode()}/role",
            json={"rol": "admin"},
            headers=bearer,
        )
        assert r.status_code in (400, 404), (meta, r.status_code, r.text)
    http.cookies.clear()
    ana = await stack.connect(token)
    boss = await stack.connect(admin)
    ids = []
    for meta in SQL:
        ack = await ana.call("mensaje_privado", {"text": meta, "client_msg_id": meta})
        assert ack["ok"] is True, (meta, ack)
        assert ack["message"]["text"] == meta and ack["message"]["client_msg_id"] == meta
        ids.append(ack["message"]["id"])
        assert (await boss.call("mensaje_privado", {"to": meta, "text": "x"}))["error"] in (
            "invalid",
            "not_found",
        )
        assert (await boss.call("read", {"with": meta, "up_to": 1}))["error"] in (
            "invalid",
            "not_found",
        )
    assert len(set(ids)) == len(SQL), "a client_msg_id matched another one as a pattern"
    names = {}
    for i, meta in enumerate(SQL):
        user = f"meta{i}"
        await http.post(
            "/api/register", json={"username": user, "name": meta, "password": PASSWORD}
        )
        names[user] = meta
        me = await http.get(
            "/api/me", headers={"Authorization": f"Bearer {await stack.login(user)}"}
        )
        assert me.json()["name"] == meta.strip() or meta.strip() == "", me.text
    history = await http.get("/api/messages", headers={"Authorization": f"Bearer {token}"})
    assert [m["text"] for m in history.json()["messages"]] == SQL
    assert [m["client_msg_id"] for m in history.json()["messages"]] == SQL
    async with stack.services.sessions() as db:
        for table in TABLES:
            await db.execute(text(f"SELECT count(*) FROM {table}"))  # noqa: S608 (fixed names)
        users = (await db.execute(select(func.count()).select_from(User))).scalar_one()
        messages = (await db.execute(select(func.count()).select_from(Message))).scalar_one()
    assert users == 3 + len(SQL) and messages == len(SQL)
    assert await role_of(stack, "ana") == "user" and await role_of(stack, "a_a") == "user"


async def test_login_with_a_like_pattern_for_a_name_does_not_log_in(stack: Stack) -> None:
    await stack.register("ana")
    assert stack.http is not None
    for pattern in ("an_", "a%", "%", "_na", "AN_"):
        r = await stack.http.post("/api/login", json={"username": pattern, "password": PASSWORD})
        assert r.status_code == 401, (pattern, r.status_code)


# -- login throttling per address -------------------------------------------------------------


async def test_failed_logins_are_throttled_per_address_across_user_names(stack: Stack) -> None:
    await stack.register("ana")
    assert stack.http is not None
    limit = stack.settings.login_failures_per_minute
    for i in range(limit):
        r = await stack.http.post(
            "/api/login", json={"username": f"guess{i}", "password": "wrong password"}
        )
        assert r.status_code == 401, (i, r.text)
    r = await stack.http.post("/api/login", json={"username": "ana", "password": PASSWORD})
    assert r.status_code == 429 and r.json()["error"] == "rate_limited"


# -- logs -----------------------------------------------------------------------------------

CLIENT_LOGGERS = ("httpx", "httpcore", "hpack", "socketio.client", "engineio.client")


def everything_in(record: logging.LogRecord) -> str:
    parts = [record.getMessage(), repr(record.args), repr(vars(record))]
    if record.exc_info and record.exc_info[1] is not None:
        parts.append("".join(traceback.format_exception(*record.exc_info)))
    return "\n".join(parts)


async def test_no_password_token_or_secret_reaches_any_log_record(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    assert stack.http is not None
    http = stack.http
    password = "Tr0ub4dor&3-hostile-secret"
    wrong = "not-my-password-but-secret-too"
    r = await http.post(
        "/api/register", json={"username": "ana", "name": "Ana", "password": password}
    )
    assert r.status_code == 201
    r = await http.post("/api/login", json={"username": "ana", "password": password})
    token = r.json()["token"]
    http.cookies.clear()
    client = await stack.connect(token)
    assert (await client.call("mensaje_privado", {"text": "hello"}))["ok"] is True
    r = await http.post("/api/login", json={"username": "ana", "password": wrong})
    assert r.status_code == 401
    async with httpx.AsyncClient(base_url=stack.url, timeout=10) as browser:
        await browser.get("/login")
        await browser.post(
            "/login",
            data={"_xsrf": browser.cookies["_xsrf"], "username": "ana", "password": wrong},
        )
    r = await http.post("/api/logout", json={}, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 204
    await client.disconnected.wait()
    tampered_token = tampered(stack, token)[0]
    assert await stack.try_connect(auth={"token": token}) == "Token inválido"
    assert await stack.try_connect(auth={"token": tampered_token}) == "Token inválido"
    assert await stack.try_connect(headers={"Cookie": f"token={tampered_token}"}) is not None
    secrets_ = {
        "password": password,
        "failed password": wrong,
        "token": token,
        "token signature": token.rsplit(".", 1)[1],
        "tampered token": tampered_token,
        "jwt secret": secret_of(stack),
    }
    server_records = [r for r in caplog.records if not r.name.startswith(CLIENT_LOGGERS)]
    assert len(server_records) > 10  # the session was really logged
    leaks = [
        (what, record.name, record.getMessage()[:200])
        for record in server_records
        for what, value in secrets_.items()
        if value in everything_in(record)
    ]
    assert leaks == []
