"""The JSON API of PROTOCOL.md from outside: login and its throttling, registration, media
types, me, message paging, conversations, roles, error bodies, health, metrics and the docs."""

from __future__ import annotations

import asyncio
import re
from datetime import datetime
from html.parser import HTMLParser
from typing import Any

import httpx
import pytest

from tests.conftest import PASSWORD, Client, Stack, StackFactory

ERROR_STATUS = {
    "invalid": 400,
    "bad_credentials": 401,
    "unauthenticated": 401,
    "forbidden": 403,
    "not_found": 404,
    "exists": 409,
    "unsupported_media_type": 415,
    "rate_limited": 429,
    "unavailable": 503,
}


def assert_error(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The response is `status` with exactly `{"error": code, "message": <text>}`."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = r.json()
    assert set(body) == {"error", "message"}, body
    assert body["error"] == code
    assert isinstance(body["message"], str) and body["message"]
    return body


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def from_address(ip: str) -> dict[str, str]:
    """Requests from the loopback are trusted to name the client's address."""
    return {"X-Forwarded-For": ip}


async def login(stack: Stack, username: str, password: str = PASSWORD, **kw: Any):
    assert stack.http is not None
    r = await stack.http.post("/api/login", json={"username": username, "password": password}, **kw)
    stack.http.cookies.clear()
    return r


# -- /api/login ---------------------------------------------------------------------------


async def test_login_returns_token_expiry_user_and_an_httponly_lax_cookie(stack: Stack) -> None:
    await stack.register("ana", "Ana A")
    r = await login(stack, "ana")
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"token", "expires_at", "user"}
    assert body["user"] == {"user": "ana", "name": "Ana A", "rol": "user"}
    assert isinstance(body["token"], str) and body["token"].count(".") == 2
    expires = datetime.fromisoformat(body["expires_at"].replace("Z", "+00:00"))
    offset = expires.utcoffset()
    assert offset is not None and offset.total_seconds() == 0
    assert re.search(r"\.\d{3}", body["expires_at"]), "at least millisecond precision"
    cookie = r.headers["set-cookie"]
    assert cookie.startswith(f"token={body['token']};")
    attrs = [a.strip().lower() for a in cookie.split(";")[1:]]
    assert "httponly" in attrs and "samesite=lax" in attrs and "path=/" in attrs
    assert "secure" not in attrs


async def test_login_cookie_is_secure_when_configured_for_https(make_stack: StackFactory) -> None:
    stack = await make_stack(cookie_secure=True)
    await stack.register("ana")
    r = await login(stack, "ana")
    assert r.status_code == 200
    attrs = [a.strip().lower() for a in r.headers["set-cookie"].split(";")[1:]]
    assert "secure" in attrs and "httponly" in attrs and "samesite=lax" in attrs


async def test_login_with_other_case_of_the_user_name_works(stack: Stack) -> None:
    await stack.register("Bob")
    r = await login(stack, "BOB")
    assert r.status_code == 200 and r.json()["user"]["user"] == "Bob"


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        "[]",
        '"text"',
        "null",
        '{"username": "ana"}',
        '{"password": "correct horse battery staple"}',
        '{"username": 5, "password": "correct horse battery staple"}',
        '{"username": "ana", "password": ""}',
    ],
)
async def test_login_with_bad_json_or_missing_fields_is_invalid(stack: Stack, content: str) -> None:
    assert stack.http is not None
    r = await stack.http.post(
        "/api/login", content=content, headers={"Content-Type": "application/json"}
    )
    assert_error(r, 400, "invalid")


async def test_unknown_user_and_wrong_password_get_the_same_bad_credentials(stack: Stack) -> None:
    await stack.register("ana")
    unknown = assert_error(await login(stack, "nobody"), 401, "bad_credentials")
    wrong = assert_error(await login(stack, "ana", "wrong password!!"), 401, "bad_credentials")
    assert unknown == wrong
    assert "set-cookie" not in (await login(stack, "ana", "nope")).headers


async def test_failed_logins_past_the_limit_are_rate_limited_even_with_the_right_password(
    make_stack: StackFactory,
) -> None:
    stack = await make_stack(login_failures_per_minute=3)
    await stack.register("ana")
    for spelling in ("ana", "ANA", "Ana"):
        assert_error(await login(stack, spelling, "wrong password!!"), 401, "bad_credentials")
    assert_error(await login(stack, "ana"), 429, "rate_limited")
    assert_error(await login(stack, "ana", "wrong password!!"), 429, "rate_limited")


async def test_a_successful_login_clears_the_user_names_failure_count(
    make_stack: StackFactory,
) -> None:
    stack = await make_stack(login_failures_per_minute=3)
    await stack.register("ana")
    # A different client address for each attempt, so that only the user name's count matters.
    for i in range(2):
        r = await login(stack, "ana", "wrong password!!", headers=from_address(f"198.51.100.{i}"))
        assert_error(r, 401, "bad_credentials")
    assert (await login(stack, "ana", headers=from_address("198.51.100.10"))).status_code == 200
    for i in range(3):
        r = await login(stack, "ana", "wrong password!!", headers=from_address(f"198.51.100.2{i}"))
        assert_error(r, 401, "bad_credentials")
    r = await login(stack, "ana", headers=from_address("198.51.100.30"))
    assert_error(r, 429, "rate_limited")


async def test_failures_over_many_user_names_from_one_address_are_rate_limited(
    make_stack: StackFactory,
) -> None:
    stack = await make_stack(login_failures_per_minute=3)
    await stack.register("ana")
    attacker = from_address("203.0.113.7")
    for name in ("alpha", "bravo", "charlie"):
        assert_error(
            await login(stack, name, "whatever pass", headers=attacker), 401, "bad_credentials"
        )
    assert_error(
        await login(stack, "delta", "whatever pass", headers=attacker), 429, "rate_limited"
    )
    assert_error(await login(stack, "ana", headers=attacker), 429, "rate_limited")
    # Another address is not affected.
    assert (await login(stack, "ana", headers=from_address("203.0.113.8"))).status_code == 200


# -- /api/register ------------------------------------------------------------------------


async def test_register_creates_a_user_without_setting_a_cookie(stack: Stack) -> None:
    assert stack.http is not None
    r = await stack.http.post(
        "/api/register", json={"username": "ana.b-1_", "name": "Ana", "password": PASSWORD}
    )
    assert r.status_code == 201
    assert r.json() == {"user": {"user": "ana.b-1_", "name": "Ana", "rol": "user"}}
    assert "token=" not in r.headers.get("set-cookie", "")
    assert (await login(stack, "ana.b-1_")).status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {"username": "ab", "name": "Ana", "password": PASSWORD},
        {"username": "a" * 33, "name": "Ana", "password": PASSWORD},
        {"username": "ana bob", "name": "Ana", "password": PASSWORD},
        {"username": "ana'--", "name": "Ana", "password": PASSWORD},
        {"username": "añá", "name": "Ana", "password": PASSWORD},
        {"username": "ana", "name": "", "password": PASSWORD},
        {"username": "ana", "name": "   ", "password": PASSWORD},
        {"username": "ana", "name": "x" * 101, "password": PASSWORD},
        {"username": "ana", "name": "Ana", "password": "x" * 11},
        {"username": "ana", "name": "Ana", "password": "x" * 129},
        {"username": "ana", "password": PASSWORD},
        {"username": "ana", "name": "Ana"},
        {"name": "Ana", "password": PASSWORD},
        {"username": "ana", "name": 5, "password": PASSWORD},
    ],
)
async def test_register_with_a_bad_name_or_short_password_is_invalid(
    stack: Stack, body: dict[str, Any]
) -> None:
    assert stack.http is not None
    assert_error(await stack.http.post("/api/register", json=body), 400, "invalid")
    assert (await login(stack, "ana")).status_code == 401


async def test_password_min_length_setting_applies_to_registration(
    make_stack: StackFactory,
) -> None:
    stack = await make_stack(password_min_length=20)
    assert stack.http is not None
    short = {"username": "ana", "name": "Ana", "password": "x" * 19}
    assert_error(await stack.http.post("/api/register", json=short), 400, "invalid")
    ok = {"username": "ana", "name": "Ana", "password": "x" * 20}
    assert (await stack.http.post("/api/register", json=ok)).status_code == 201


async def test_register_bad_json_is_invalid(stack: Stack) -> None:
    assert stack.http is not None
    r = await stack.http.post(
        "/api/register", content="{", headers={"Content-Type": "application/json"}
    )
    assert_error(r, 400, "invalid")


async def test_register_a_taken_name_in_any_case_is_exists(stack: Stack) -> None:
    assert stack.http is not None
    await stack.register("ana", "Ana")
    for spelling in ("ana", "ANA", "aNa"):
        r = await stack.http.post(
            "/api/register", json={"username": spelling, "name": "Other", "password": PASSWORD}
        )
        assert_error(r, 409, "exists")
    assert (await login(stack, "ana")).json()["user"]["name"] == "Ana"


# -- media types --------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/login", "/api/register", "/api/users/ana/role"])
@pytest.mark.parametrize(
    ("content_type", "content"),
    [
        ("application/x-www-form-urlencoded", "username=ana&password=x&name=y&rol=admin"),
        ("text/plain", '{"username": "ana", "password": "x", "name": "y", "rol": "admin"}'),
        ("multipart/form-data; boundary=x", "--x--"),
        (None, '{"username": "ana", "password": "x"}'),
    ],
)
async def test_posts_that_are_not_json_are_unsupported_media_type(
    stack: Stack, path: str, content_type: str | None, content: str
) -> None:
    assert stack.http is not None
    admin = await stack.register("boss", admin=True)
    await stack.register("ana")
    headers = bearer(admin)
    if content_type is not None:
        headers["Content-Type"] = content_type
    r = await stack.http.post(path, content=content, headers=headers)
    assert_error(r, 415, "unsupported_media_type")
    me = await stack.http.get("/api/me", headers=bearer(await stack.login("ana")))
    assert me.json()["rol"] == "user"


async def test_json_with_charset_parameter_is_accepted(stack: Stack) -> None:
    assert stack.http is not None
    await stack.register("ana")
    r = await stack.http.post(
        "/api/login",
        content=f'{{"username": "ana", "password": "{PASSWORD}"}}',
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    assert r.status_code == 200


# -- /api/me ------------------------------------------------------------------------------


async def test_me_answers_with_cookie_or_bearer_and_401_without(stack: Stack) -> None:
    assert stack.http is not None
    token = await stack.register("ana", "Ana")
    assert_error(await stack.http.get("/api/me"), 401, "unauthenticated")
    assert_error(await stack.http.get("/api/me", headers=bearer("garbage")), 401, "unauthenticated")
    r = await stack.http.get("/api/me", headers=bearer(token))
    assert r.status_code == 200 and r.json() == {"user": "ana", "name": "Ana", "rol": "user"}
    async with httpx.AsyncClient(base_url=stack.url, cookies={"token": token}) as browser:
        r = await browser.get("/api/me")
        assert r.status_code == 200 and r.json() == {"user": "ana", "name": "Ana", "rol": "user"}
    async with httpx.AsyncClient(base_url=stack.url, cookies={"token": "x.y.z"}) as browser:
        assert_error(await browser.get("/api/me"), 401, "unauthenticated")


async def test_login_cookie_alone_authenticates_the_api(stack: Stack) -> None:
    await stack.register("ana")
    async with httpx.AsyncClient(base_url=stack.url) as browser:
        r = await browser.post("/api/login", json={"username": "ana", "password": PASSWORD})
        assert r.status_code == 200
        assert (await browser.get("/api/me")).json()["user"] == "ana"


# -- /api/messages ------------------------------------------------------------------------


async def send_all(client: Client, texts: list[str], **extra: Any) -> list[dict[str, Any]]:
    acks = []
    for start in range(0, len(texts), 25):
        batch = texts[start : start + 25]
        acks += await asyncio.gather(
            *(client.call("mensaje_privado", {"text": t, **extra}) for t in batch)
        )
    assert all(a["ok"] for a in acks), [a for a in acks if not a["ok"]][:1]
    return [a["message"] for a in acks]


async def messages(stack: Stack, token: str, **params: Any) -> httpx.Response:
    assert stack.http is not None
    return await stack.http.get("/api/messages", params=params, headers=bearer(token))


def texts_of(r: httpx.Response) -> list[str]:
    assert r.status_code == 200, r.text
    return [m["text"] for m in r.json()["messages"]]


async def test_messages_pages_backwards_oldest_first_with_default_and_maximum_limit(
    make_stack: StackFactory,
) -> None:
    stack = await make_stack(msg_rate=0.0)
    token = await stack.register("ana")
    admin = await stack.register("boss", admin=True)
    ana = await stack.connect(token)
    sent = await send_all(ana, [f"m{i}" for i in range(205)])
    by_text = {m["text"]: m for m in sent}

    assert texts_of(await messages(stack, token)) == [f"m{i}" for i in range(155, 205)]
    assert texts_of(await messages(stack, token, limit=500)) == [f"m{i}" for i in range(5, 205)]
    assert texts_of(await messages(stack, token, limit=200)) == [f"m{i}" for i in range(5, 205)]
    before = by_text["m100"]["id"]
    page = await messages(stack, token, before=before, limit=10)
    assert texts_of(page) == [f"m{i}" for i in range(90, 100)]
    assert page.json()["messages"][0] == by_text["m90"]
    assert texts_of(await messages(stack, token, before=by_text["m2"]["id"])) == ["m0", "m1"]
    assert texts_of(await messages(stack, token, before=by_text["m0"]["id"])) == []
    assert texts_of(await messages(stack, admin, **{"with": "ana", "limit": 3})) == [
        "m202",
        "m203",
        "m204",
    ]


async def test_messages_of_a_conversation_include_both_directions(stack: Stack) -> None:
    token = await stack.register("ana", "Ana Pérez")
    ana = await stack.connect(token)
    boss = await stack.connect(await stack.register("boss", "Support lead", admin=True))
    await ana.call("mensaje_privado", {"text": "question"})
    await boss.call("mensaje_privado", {"to": "ana", "text": "answer"})
    bob = await stack.connect(await stack.register("bob"))
    await bob.call("mensaje_privado", {"text": "not for ana"})
    r = await messages(stack, token)
    assert texts_of(r) == ["question", "answer"]
    first, second = r.json()["messages"]
    assert set(first) == {
        "id",
        "from",
        "from_name",
        "to",
        "text",
        "created_at",
        "client_msg_id",
        "note",
        "attachments",
    }
    assert first["attachments"] == []
    assert (first["from"], first["to"], second["from"], second["to"]) == (
        "ana",
        "admins",
        "boss",
        "ana",
    )
    assert (first["from_name"], second["from_name"]) == ("Ana Pérez", "Support lead")
    assert first["id"] < second["id"]


async def test_a_user_may_not_read_another_users_conversation(stack: Stack) -> None:
    await stack.register("ana")
    bob = await stack.register("bob")
    assert_error(await messages(stack, bob, **{"with": "ana"}), 403, "forbidden")


async def test_a_user_may_name_itself_in_any_case(stack: Stack) -> None:
    token = await stack.register("ana")
    await (await stack.connect(token)).call("mensaje_privado", {"text": "hi"})
    for spelling in ("ana", "ANA", "Ana"):
        assert texts_of(await messages(stack, token, **{"with": spelling})) == ["hi"]


async def test_an_admin_must_name_an_existing_user(stack: Stack) -> None:
    admin = await stack.register("boss", admin=True)
    token = await stack.register("ana")
    await (await stack.connect(token)).call("mensaje_privado", {"text": "hi"})
    assert_error(await messages(stack, admin), 400, "invalid")
    assert_error(await messages(stack, admin, **{"with": "nobody"}), 404, "not_found")
    assert texts_of(await messages(stack, admin, **{"with": "ANA"})) == ["hi"]


@pytest.mark.parametrize(
    "params",
    [
        {"before": "abc"},
        {"before": "-1"},
        {"before": "1.5"},
        {"limit": "0"},
        {"limit": "-5"},
        {"limit": "ten"},
        {"limit": "1e3"},
        {"with": "x'; DROP TABLE usuarios; --"},
    ],
)
async def test_bad_paging_parameters_are_invalid(stack: Stack, params: dict[str, str]) -> None:
    token = await stack.register("ana")
    assert_error(await messages(stack, token, **params), 400, "invalid")


async def test_a_limit_too_large_for_64_bits_is_still_treated_as_200(stack: Stack) -> None:
    token = await stack.register("ana")
    await (await stack.connect(token)).call("mensaje_privado", {"text": "hi"})
    assert texts_of(await messages(stack, token, limit="1" + "0" * 20)) == ["hi"]


async def test_messages_without_auth_is_unauthenticated(stack: Stack) -> None:
    assert stack.http is not None
    assert_error(await stack.http.get("/api/messages"), 401, "unauthenticated")


# -- /api/conversations -------------------------------------------------------------------


async def conversations(stack: Stack, token: str) -> list[dict[str, Any]]:
    assert stack.http is not None
    r = await stack.http.get("/api/conversations", headers=bearer(token))
    assert r.status_code == 200, r.text
    return list(r.json()["conversations"])


async def test_conversations_are_for_admins_only(stack: Stack) -> None:
    assert stack.http is not None
    token = await stack.register("ana")
    assert_error(await stack.http.get("/api/conversations"), 401, "unauthenticated")
    r = await stack.http.get("/api/conversations", headers=bearer(token))
    assert_error(r, 403, "forbidden")


CONVERSATION_KEYS = {
    "user",
    "name",
    "rol",
    "online",
    "unread",
    "last_message",
    "status",
    "assignee",
    "labels",
    "snoozed_until",
    "visitor",
    "email",
    "verified",
}


async def test_conversations_list_newest_activity_first_with_unread_and_presence(
    stack: Stack,
) -> None:
    admin_token = await stack.register("boss", "Boss", admin=True)
    boss = await stack.connect(admin_token)
    assert await conversations(stack, admin_token) == []
    ana = await stack.connect(await stack.register("ana", "Ana A"))
    bob = await stack.connect(await stack.register("bob", "Bob B"))
    await stack.register("carl")  # never writes: no conversation
    await ana.call("mensaje_privado", {"text": "a1"})
    await ana.call("mensaje_privado", {"text": "a2"})
    await bob.call("mensaje_privado", {"text": "b1"})

    listed = await conversations(stack, admin_token)
    assert [c["user"] for c in listed] == ["bob", "ana"]
    for c in listed:
        assert set(c) == CONVERSATION_KEYS
        assert c["rol"] == "user"
    bob_c, ana_c = listed
    assert (ana_c["name"], ana_c["unread"], ana_c["online"]) == ("Ana A", 2, True)
    assert (bob_c["name"], bob_c["unread"], bob_c["online"]) == ("Bob B", 1, True)
    assert ana_c["last_message"]["text"] == "a2" and ana_c["last_message"]["from"] == "ana"

    reply = await boss.call("mensaje_privado", {"to": "ana", "text": "r1"})
    listed = await conversations(stack, admin_token)
    assert [c["user"] for c in listed] == ["ana", "bob"]
    assert listed[0]["last_message"] == reply["message"]
    assert listed[0]["unread"] == 2  # an admin's reply is not unread for the team

    assert (await boss.call("read", {"with": "ana", "up_to": reply["message"]["id"]}))["ok"]
    assert {c["user"]: c["unread"] for c in await conversations(stack, admin_token)} == {
        "ana": 0,
        "bob": 1,
    }

    await bob.sio.disconnect()
    for _ in range(50):
        online = {c["user"]: c["online"] for c in await conversations(stack, admin_token)}
        if not online["bob"]:
            break
        await asyncio.sleep(0.1)
    assert online == {"ana": True, "bob": False}


# -- /api/users/<user>/role ---------------------------------------------------------------


async def set_role(stack: Stack, token: str | None, user: str, body: Any) -> httpx.Response:
    assert stack.http is not None
    return await stack.http.post(
        f"/api/users/{user}/role", json=body, headers=bearer(token) if token else {}
    )


async def test_admin_changes_a_role_naming_the_user_in_any_case(stack: Stack) -> None:
    admin = await stack.register("boss", admin=True)
    token = await stack.register("Ana", "Ana A")
    r = await set_role(stack, admin, "aNA", {"rol": "admin"})
    assert r.status_code == 200
    assert r.json() == {"user": {"user": "Ana", "name": "Ana A", "rol": "admin"}}
    assert stack.http is not None
    me = await stack.http.get("/api/me", headers=bearer(token))
    assert me.json()["rol"] == "admin"  # the role comes from the database, not the token
    r = await set_role(stack, admin, "ANA", {"rol": "user"})
    assert r.json()["user"]["rol"] == "user"


async def test_role_change_disconnects_the_users_sockets(stack: Stack) -> None:
    admin = await stack.register("boss", admin=True)
    ana = await stack.connect(await stack.register("ana"))
    assert (await set_role(stack, admin, "ana", {"rol": "admin"})).status_code == 200
    await asyncio.wait_for(ana.disconnected.wait(), 5)


async def test_role_change_refusals(stack: Stack) -> None:
    admin = await stack.register("boss", admin=True)
    user = await stack.register("ana")
    assert_error(await set_role(stack, None, "ana", {"rol": "admin"}), 401, "unauthenticated")
    assert_error(await set_role(stack, user, "ana", {"rol": "admin"}), 403, "forbidden")
    assert_error(await set_role(stack, admin, "nobody", {"rol": "admin"}), 404, "not_found")
    for body in ({"rol": "superuser"}, {"rol": "Admin"}, {"rol": None}, {}, ["admin"], "admin"):
        assert_error(await set_role(stack, admin, "ana", body), 400, "invalid")
    assert stack.http is not None
    assert (await stack.http.get("/api/me", headers=bearer(user))).json()["rol"] == "user"


# -- errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/nothing"),
        ("GET", "/api/"),
        ("GET", "/api/me/extra"),
        ("POST", "/api/nothing"),
        ("GET", "/api/users/ana/role/x"),
    ],
)
async def test_unknown_api_paths_get_a_json_404(stack: Stack, method: str, path: str) -> None:
    assert stack.http is not None
    r = await stack.http.request(method, path, json={})
    assert_error(r, 404, "not_found")


async def test_every_error_code_uses_its_documented_status(stack: Stack) -> None:
    """The error codes seen across the API all map to PROTOCOL.md's statuses."""
    assert stack.http is not None
    user = await stack.register("ana")
    seen = [
        await stack.http.post("/api/login", json={}),
        await login(stack, "ana", "wrong password!!"),
        await stack.http.get("/api/me"),
        await messages(stack, user, **{"with": "someone"}),
        await stack.http.get("/api/nope"),
        await stack.http.post(
            "/api/register", json={"username": "ana", "name": "A", "password": PASSWORD}
        ),
        await stack.http.post("/api/login", content="x", headers={"Content-Type": "text/plain"}),
    ]
    for r in seen:
        body = r.json()
        assert set(body) == {"error", "message"}
        assert ERROR_STATUS[body["error"]] == r.status_code


# -- stored exactly -----------------------------------------------------------------------


async def test_sql_and_html_in_names_and_messages_come_back_exactly(stack: Stack) -> None:
    assert stack.http is not None
    name = 'Robert\'); DROP TABLE usuarios;-- <b>"x"</b> & \\ %_'
    token = await stack.register("bobby", name)
    me = await stack.http.get("/api/me", headers=bearer(token))
    assert me.json()["name"] == name
    text = "' OR '1'='1'; DELETE FROM messages; -- <script>alert(1)</script> &amp; %"
    ack = await (await stack.connect(token)).call("mensaje_privado", {"text": text})
    assert ack["ok"] is True and ack["message"]["text"] == text
    assert texts_of(await messages(stack, token)) == [text]
    admin = await stack.register("boss", admin=True)
    listed = await conversations(stack, admin)
    assert listed[0]["name"] == name and listed[0]["last_message"]["text"] == text


async def test_sql_in_login_names_is_just_a_wrong_name(stack: Stack) -> None:
    await stack.register("ana")
    for username in ("' OR '1'='1", "ana' --", 'ana" OR 1=1 --', "%", "_na"):
        assert_error(await login(stack, username), 401, "bad_credentials")
    assert (await login(stack, "ana")).status_code == 200


# -- operations ---------------------------------------------------------------------------


async def test_healthz_reports_the_database_ok(stack: Stack) -> None:
    assert stack.http is not None
    r = await stack.http.get("/healthz")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    assert r.json() == {"status": "ok", "checks": {"database": "ok"}}


async def test_metrics_is_prometheus_text_with_the_products_series(stack: Stack) -> None:
    assert stack.http is not None
    ana = await stack.connect(await stack.register("ana"))
    await ana.call("mensaje_privado", {"text": "counted"})
    r = await stack.http.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    names = {line.split()[2] for line in r.text.splitlines() if line.startswith("# TYPE ")}
    assert {
        "supportchat_connected_sockets",
        "supportchat_delivery_seconds",
        "supportchat_http_requests_total",
    } <= names
    assert "supportchat_messages_stored" in names or "supportchat_messages_stored_total" in names
    samples = {}
    for line in r.text.splitlines():
        if line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            samples[key] = float(value)
    assert samples["supportchat_connected_sockets"] >= 1
    assert samples["supportchat_messages_stored_total"] >= 1
    assert samples["supportchat_delivery_seconds_count"] >= 1
    assert any(k.startswith("supportchat_http_requests_total{") for k in samples)


def api_routes() -> set[str]:
    """The `/api/` routes of the route table, with path groups written as `{}`."""
    import tornado.web

    from config.settings import Settings
    from handlers import make_app

    app = make_app(Settings(), None, tornado.web.RequestHandler)  # type: ignore[arg-type]
    patterns = [
        rule.matcher.regex.pattern.rstrip("$")  # type: ignore[attr-defined]
        for rule in app.wildcard_router.rules
    ]
    return {
        re.sub(r"\([^)]*\)", "{}", p)
        for p in patterns
        if p.startswith("/api/") and not p.endswith(".*")
    }


# What each route can answer besides success (415 on every state change).
ROUTE_ERRORS = {
    ("/api/login", "post"): {400, 401, 415, 429},
    ("/api/logout", "post"): {401, 415},
    ("/api/register", "post"): {400, 409, 415, 429},
    ("/api/visitors", "post"): {400, 401, 403, 404, 415, 429},
    ("/api/me", "get"): {401},
    ("/api/messages", "get"): {400, 401, 403, 404},
    ("/api/conversations", "get"): {400, 401, 403},
    ("/api/conversations/{}", "patch"): {400, 401, 403, 404, 415},
    ("/api/me/availability", "put"): {400, 401, 403, 415},
    ("/api/admins", "get"): {401, 403},
    ("/api/reports", "get"): {400, 401, 403},
    ("/api/users/{}/role", "post"): {400, 401, 403, 404, 409, 415},
    ("/api/canned-responses", "get"): {401, 403},
    ("/api/canned-responses", "post"): {400, 401, 403, 409, 415},
    ("/api/canned-responses/{}", "patch"): {400, 401, 403, 404, 409, 415},
    ("/api/canned-responses/{}", "delete"): {401, 403, 404},
    ("/api/uploads", "post"): {400, 401, 413, 415, 429},
    ("/api/uploads/{}", "get"): {404},
    ("/api/uploads/{}/thumbnail", "get"): {404},
}


async def test_openapi_describes_every_api_route_and_its_errors(stack: Stack) -> None:
    assert stack.http is not None
    r = await stack.http.get("/openapi.json")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    doc = r.json()
    assert doc["openapi"].startswith("3.")
    documented = {re.sub(r"\{[^}]+\}", "{}", p): ops for p, ops in doc["paths"].items()}
    routes = api_routes()
    assert routes == {path for path, _ in ROUTE_ERRORS}, "the table above is out of date"
    assert routes <= set(documented)
    for (path, method), statuses in ROUTE_ERRORS.items():
        responses = documented[path][method]["responses"]
        assert any(s.startswith("2") for s in responses)
        assert {str(s) for s in statuses} <= set(responses), (path, method, set(responses))
    assert "Error" in doc["components"]["schemas"]


class Assets(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[str] = []
        self.styles: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "script" and a.get("src"):
            self.scripts.append(str(a["src"]))
        if tag == "link" and a.get("href"):
            self.styles.append(str(a["href"]))


async def test_api_docs_serves_swagger_ui_from_this_server_only(stack: Stack) -> None:
    assert stack.http is not None
    r = await stack.http.get("/api-docs")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "http://" not in r.text and "https://" not in r.text
    page = Assets()
    page.feed(r.text)
    assert "/api-docs/vendor/swagger-ui-bundle.js" in page.scripts
    for src in page.scripts + page.styles:
        assert src.startswith("/") and not src.startswith("//"), src
        asset = await stack.http.get(src)
        assert asset.status_code == 200, src
    bundle = await stack.http.get("/api-docs/vendor/swagger-ui-bundle.js")
    assert "javascript" in bundle.headers["content-type"]
    assert len(bundle.content) > 10_000


async def test_invalid_login_requests_do_not_count_as_failures(make_stack: StackFactory) -> None:
    stack = await make_stack(login_failures_per_minute=3)
    await stack.register("ana")
    assert stack.http is not None
    for _ in range(5):
        assert_error(await stack.http.post("/api/login", json={"username": "ana"}), 400, "invalid")
    assert (await login(stack, "ana")).status_code == 200


async def test_api_logout_revokes_the_token(stack: Stack) -> None:
    assert stack.http is not None
    token = await stack.register("ana")
    r = await stack.http.post("/api/logout", json={}, headers=bearer(token))
    assert r.status_code == 204
    assert_error(await stack.http.get("/api/me", headers=bearer(token)), 401, "unauthenticated")
    r = await stack.http.post("/api/logout", json={}, headers=bearer(token))
    assert_error(r, 401, "unauthenticated")
