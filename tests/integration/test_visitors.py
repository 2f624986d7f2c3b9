"""Website visitors from outside: `POST /api/visitors` (anonymous, identified by the site's
HMAC, refresh), its limits and refusals, and visitors as users everywhere else (sockets with
`auth.token` and no cookie, the inbox, roles, password logins), on every database."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
import time
from datetime import datetime
from typing import Any

import httpx
import jwt
import pytest
from sqlalchemy import delete, func, select

from config.settings import Secret
from models.user import User
from models.visitor import Visitor
from services.inputs import USERNAME
from tests.conftest import Stack, StackFactory, service_url, statements
from tests.integration.test_api import assert_error, bearer, from_address
from tests.integration.test_js_client import JS, node_or_skip
from tests.integration.test_pages import browser, post_login

PATH = "/api/visitors"
SITE = "https://shop.example"
KEY = "the-site-and-the-server-share-this-widget-key"
WIDGET: dict[str, Any] = {"widget_origins": (SITE,), "widget_secret": Secret(KEY)}
DAY = 86400


def sign(external_id: str, key: str = KEY) -> str:
    return hmac.new(key.encode(), external_id.encode(), hashlib.sha256).hexdigest()


async def post(stack: Stack, body: Any, **headers: str) -> httpx.Response:
    assert stack.http is not None
    return await stack.http.post(PATH, json=body, headers=headers)


def admitted(r: httpx.Response, status: int) -> dict[str, Any]:
    """A successful answer: exactly {token, expires_at, user}, the user a visitor."""
    assert r.status_code == status, r.text
    body: dict[str, Any] = r.json()
    assert set(body) == {"token", "expires_at", "user"}, body
    assert set(body["user"]) == {"user", "name", "rol", "visitor", "verified", "email"}
    assert body["user"]["rol"] == "user" and body["user"]["visitor"] is True
    assert "set-cookie" not in r.headers  # the widget keeps the token itself
    return body


def claims(token: str) -> dict[str, Any]:
    return dict(jwt.decode(token, options={"verify_signature": False}))


def forge(stack: Stack, user: str, *, exp: float, visitor: bool = True) -> str:
    """A token this server's secret signed, with the given expiry."""
    assert stack.settings.jwt_secret is not None
    payload: dict[str, Any] = {
        "user": user,
        "name": "Visitor",
        "rol": "user",
        "iat": int(exp) - 3600,
        "exp": int(exp),
        "jti": f"forged-{exp}",
    }
    if visitor:
        payload["vis"] = True
    return jwt.encode(payload, stack.settings.jwt_secret.reveal(), algorithm="HS256")


async def widget(make_stack: StackFactory, **overrides: Any) -> Stack:
    return await make_stack(**{**WIDGET, **overrides})


async def inbox(stack: Stack, admin_token: str) -> dict[str, dict[str, Any]]:
    assert stack.http is not None
    r = await stack.http.get("/api/conversations", headers=bearer(admin_token))
    assert r.status_code == 200, r.text
    return {c["user"]: c for c in r.json()["conversations"]}


# -- the widget off -------------------------------------------------------------------------


async def test_without_widget_origins_the_route_is_not_found(stack: Stack) -> None:
    assert not stack.settings.widget
    assert_error(await post(stack, {}), 404, "not_found")
    assert_error(await post(stack, {"id": "42", "hash": sign("42")}), 404, "not_found")
    assert_error(await post(stack, {"email": "not an address"}), 404, "not_found")


# -- anonymous ------------------------------------------------------------------------------


async def test_an_anonymous_visitor_gets_a_generated_user_and_a_visitor_token(
    make_stack: StackFactory,
) -> None:
    stack = await widget(make_stack, visitor_ttl_seconds=3 * DAY)
    before = time.time()
    body = admitted(await post(stack, {}), 201)
    user = body["user"]
    assert re.fullmatch(r"v_[a-z0-9]{16}", user["user"]) and USERNAME.fullmatch(user["user"])
    assert re.fullmatch(r"Visitor \d{4}", user["name"])
    assert (user["verified"], user["email"]) == (False, None)
    seen = claims(body["token"])
    assert seen["user"] == user["user"] and seen["rol"] == "user" and seen["vis"] is True
    assert {"iat", "exp", "jti", "name"} <= set(seen)
    expires = datetime.fromisoformat(body["expires_at"].replace("Z", "+00:00"))
    assert before + 3 * DAY - 5 <= expires.timestamp() <= time.time() + 3 * DAY + 1
    assert seen["exp"] == int(expires.timestamp())

    named = admitted(await post(stack, {"name": "  Ann  ", "email": "ann@example.com"}), 201)
    assert named["user"]["name"] == "Ann" and named["user"]["email"] == "ann@example.com"
    assert named["user"]["user"] != user["user"]

    # The token works as any user's (Bearer), and the visitor is a user of role `user`.
    assert stack.http is not None
    me = await stack.http.get("/api/me", headers=bearer(body["token"]))
    assert me.json() == {"user": user["user"], "name": user["name"], "rol": "user"}


async def test_visitor_inputs_are_checked_at_the_edge(make_stack: StackFactory) -> None:
    stack = await widget(make_stack)
    for bad in (
        {"email": "ann"},
        {"email": "ann@example"},
        {"email": "ann @example.com"},
        {"email": "a@b@example.com"},
        {"email": ""},
        {"email": 42},
        {"email": "a" * 250 + "@example.com"},
        {"name": ""},
        {"name": "   "},
        {"name": "x" * 101},
        {"name": "tab\there"},
        {"name": 7},
        {"id": "", "hash": sign("")},
        {"id": "x" * 256, "hash": sign("x" * 256)},
        {"id": 42, "hash": sign("42")},
        {"id": "4\x002", "hash": sign("4\x002")},
        {"hash": sign("42")},
        {"id": "42", "hash": sign("42"), "email": "nope"},
        {"token": ""},
        {"token": 5},
        {"token": "a.b.c", "id": "42"},
    ):
        assert_error(await post(stack, bad), 400, "invalid")
    assert_error(await post(stack, [1]), 400, "invalid")
    assert stack.http is not None
    r = await stack.http.post(PATH, content=b"{}", headers={"Content-Type": "text/plain"})
    assert_error(r, 415, "unsupported_media_type")
    # Upper bounds are inclusive.
    admitted(await post(stack, {"name": "x" * 100, "email": "a.b+c@mail.example.org"}), 201)
    admitted(await post(stack, {"id": "y" * 255, "hash": sign("y" * 255)}), 201)
    async with stack.services.sessions() as db:
        assert (await db.execute(select(func.count()).select_from(Visitor))).scalar() == 2


# -- refresh --------------------------------------------------------------------------------


async def test_refresh_gives_a_fresh_token_for_the_same_visitor(make_stack: StackFactory) -> None:
    stack = await widget(make_stack)
    first = admitted(await post(stack, {"name": "Ann"}), 201)
    name = first["user"]["user"]
    again = admitted(await post(stack, {"token": first["token"]}), 200)
    assert again["user"] == first["user"]
    assert again["token"] != first["token"]
    assert claims(again["token"])["jti"] != claims(first["token"])["jti"]
    assert claims(again["token"])["vis"] is True

    now = time.time()
    # Expired, but at most 7 days ago: still refreshed.
    late = admitted(await post(stack, {"token": forge(stack, name, exp=now - 6 * DAY)}), 200)
    assert late["user"]["user"] == name
    assert claims(late["token"])["exp"] > now
    # Expired longer ago, or not a visitor token, or someone else's: refused.
    for token in (
        forge(stack, name, exp=now - 7 * DAY - 60),
        forge(stack, name, exp=now + DAY, visitor=False),
        forge(stack, "v_nobody0000000000", exp=now + DAY),
        "garbage",
        "a.b.c",
        jwt.encode({"user": name, "vis": True, "exp": now + DAY, "iat": now, "jti": "j"}, "x" * 40),
    ):
        assert_error(await post(stack, {"token": token}), 401, "bad_credentials")

    # A registered user's token is not a visitor's.
    assert stack.http is not None
    ann = await stack.register("ann", "Ann Lee")
    assert_error(await post(stack, {"token": ann}), 401, "bad_credentials")


async def test_a_revoked_or_orphaned_visitor_token_is_not_refreshed(
    make_stack: StackFactory,
) -> None:
    stack = await widget(make_stack)
    assert stack.http is not None
    first = admitted(await post(stack, {}), 201)
    r = await stack.http.post("/api/logout", json={}, headers=bearer(first["token"]))
    assert r.status_code == 204, r.text
    assert_error(await post(stack, {"token": first["token"]}), 401, "bad_credentials")

    # Revoked and since expired: a new worker, reading revocations from the database, still
    # refuses it within the refresh window.
    other = admitted(await post(stack, {}), 201)
    revoked = forge(stack, other["user"]["user"], exp=time.time() + 2)
    r = await stack.http.post("/api/logout", json={}, headers=bearer(revoked))
    assert r.status_code == 204, r.text
    await asyncio.sleep(3)
    later = await widget(make_stack)
    assert_error(await post(later, {"token": revoked}), 401, "bad_credentials")
    assert_error(await post(stack, {"token": revoked}), 401, "bad_credentials")

    # A visitor whose user was removed: its token is refused there too.
    gone = admitted(await post(stack, {}), 201)
    async with stack.services.sessions.begin() as db:
        await db.execute(delete(User).where(User.user == gone["user"]["user"]))
    assert_error(await post(stack, {"token": gone["token"]}), 401, "bad_credentials")


# -- identified -----------------------------------------------------------------------------


async def test_an_identified_visitor_is_one_user_on_every_device(
    make_stack: StackFactory,
) -> None:
    stack = await widget(make_stack)
    body = {"id": "42", "name": "Ann", "email": "ann@example.com", "hash": sign("42")}
    first = admitted(await post(stack, body), 201)
    assert first["user"]["verified"] is True
    assert (first["user"]["name"], first["user"]["email"]) == ("Ann", "ann@example.com")
    phone = await stack.connect(first["token"])
    assert (await phone.call("mensaje_privado", {"text": "from my phone"}))["ok"]

    # Another device, another worker: the same user and conversation; a new name and e-mail
    # are stored, and left-out ones kept.
    laptop_worker = await widget(make_stack)
    second = admitted(
        await post(laptop_worker, {"id": "42", "name": "Ann Lee", "hash": sign("42")}), 200
    )
    assert second["user"] == {**first["user"], "name": "Ann Lee"}
    laptop = await laptop_worker.connect(second["token"])
    synced = await laptop.call("sync", {"after": 0})
    assert [m["text"] for m in synced["messages"]] == ["from my phone"]
    third = admitted(
        await post(stack, {"id": "42", "email": "ann@work.example", "hash": sign("42")}), 200
    )
    assert third["user"] == {**second["user"], "email": "ann@work.example"}

    # Ids are exact: another case or a trailing space is another visitor.
    for other in ("42 ", "A42", "a42"):
        made = admitted(await post(stack, {"id": other, "hash": sign(other)}), 201)
        assert made["user"]["user"] != first["user"]["user"]
        assert re.fullmatch(r"Visitor \d{4}", made["user"]["name"])
    # An identified visitor's token refreshes like any visitor's.
    assert admitted(await post(stack, {"token": third["token"]}), 200)["user"] == third["user"]


async def test_a_missing_or_wrong_hash_is_refused_never_anonymous(
    make_stack: StackFactory,
) -> None:
    stack = await widget(make_stack)
    for body in (
        {"id": "42"},
        {"id": "42", "hash": None},
        {"id": "42", "hash": ""},
        {"id": "42", "hash": sign("43")},
        {"id": "42", "hash": sign("42").upper()},
        {"id": "42", "hash": sign("42", key="another-key-of-at-least-32-bytes!!")},
        {"id": "42", "hash": sign("42")[:-1]},
        {"id": "42", "hash": "ñ" * 64},
        {"id": "42", "hash": 42},
        {"id": "42", "name": "Ann", "hash": "0" * 64},
    ):
        assert_error(await post(stack, body), 401, "bad_credentials")
    async with stack.services.sessions() as db:
        assert (await db.execute(select(func.count()).select_from(Visitor))).scalar() == 0

    # Without WIDGET_SECRET nobody is identified, whatever the hash.
    unkeyed = await make_stack(widget_origins=(SITE,))
    assert_error(await post(unkeyed, {"id": "42", "hash": sign("42")}), 401, "bad_credentials")
    assert_error(
        await post(unkeyed, {"id": "42", "hash": sign("42", key="")}), 401, "bad_credentials"
    )


async def test_concurrent_first_calls_for_one_id_on_two_workers_make_one_user(
    make_stack: StackFactory,
) -> None:
    workers = [await widget(make_stack), await widget(make_stack)]
    body = {"id": "order-7", "hash": sign("order-7")}
    answers = await asyncio.gather(*(post(workers[i % 2], body) for i in range(8)))
    statuses = sorted(r.status_code for r in answers)
    assert statuses == [200] * 7 + [201], [r.text for r in answers]
    assert len({r.json()["user"]["user"] for r in answers}) == 1
    async with workers[0].services.sessions() as db:
        assert (await db.execute(select(func.count()).select_from(Visitor))).scalar() == 1


# -- limits and WIDGET_IDENTITY=required ------------------------------------------------------


@pytest.mark.redis
async def test_new_anonymous_visitors_are_limited_per_address_across_workers(
    make_stack: StackFactory,
) -> None:
    redis_url = service_url("redis")
    a, b = [await widget(make_stack, redis_url=redis_url, visitors_per_hour=3) for _ in range(2)]
    here = from_address("203.0.113.7")
    admitted(await post(a, {}, **here), 201)
    admitted(await post(b, {}, **here), 201)
    admitted(await post(a, {}, **here), 201)
    assert_error(await post(b, {}, **here), 429, "rate_limited")
    assert_error(await post(a, {}, **here), 429, "rate_limited")
    # A refused request counts nothing: an invalid one gives its place back.
    there = from_address("203.0.113.8")
    assert_error(await post(a, {"email": "bad"}, **there), 400, "invalid")
    for _ in range(3):
        admitted(await post(b, {}, **there), 201)
    # Identified visitors and refreshes are not new anonymous visitors.
    identified = admitted(await post(a, {"id": "9", "hash": sign("9")}, **here), 201)
    admitted(await post(b, {"token": identified["token"]}, **here), 200)


async def test_required_identity_refuses_anonymous_visitors_on_every_path(
    make_stack: StackFactory,
) -> None:
    optional = await widget(make_stack)
    anonymous = admitted(await post(optional, {"name": "Anon"}), 201)
    assert (await optional.connect(anonymous["token"])).sio.connected

    strict = await widget(make_stack, widget_identity="required")
    assert_error(await post(strict, {}), 403, "forbidden")
    assert_error(await post(strict, {"name": "Anon"}), 403, "forbidden")
    assert_error(await post(strict, {"token": anonymous["token"]}), 403, "forbidden")
    assert_error(await post(strict, {"id": "42"}), 401, "bad_credentials")
    assert strict.http is not None
    r = await strict.http.get("/api/me", headers=bearer(anonymous["token"]))
    assert_error(r, 401, "unauthenticated")
    refused = await strict.try_connect(auth={"token": anonymous["token"]})
    assert refused == "Token inválido"

    # Identified visitors and registered users keep working there.
    identified = admitted(await post(strict, {"id": "42", "hash": sign("42")}), 201)
    assert admitted(await post(strict, {"token": identified["token"]}), 200)
    assert (await strict.connect(identified["token"])).sio.connected
    ann = await strict.register("ann", "Ann")
    assert (await strict.connect(ann)).sio.connected
    r = await strict.http.get("/api/me", headers=bearer(identified["token"]))
    assert r.status_code == 200, r.text


# -- visitors among users ---------------------------------------------------------------------


async def test_a_visitor_cannot_log_in_with_a_password(make_stack: StackFactory) -> None:
    stack = await widget(make_stack)
    assert stack.http is not None
    visitor = admitted(await post(stack, {}), 201)["user"]["user"]
    for password in ("", "!visitor", "correct horse battery staple", "x" * 20):
        r = await stack.http.post("/api/login", json={"username": visitor, "password": password})
        if password == "":
            assert_error(r, 400, "invalid")
        else:
            body = assert_error(r, 401, "bad_credentials")
            assert body["message"] == "Wrong user name or password."
    async with stack.services.sessions() as db:
        stored = (await db.execute(select(User.password).where(User.user == visitor))).scalar()
    assert stored == "!visitor"
    # The login form says no the same way.
    async with browser(stack) as client:
        r = await post_login(client, visitor, "!visitor")
    assert r.status_code == 401
    assert "token" not in r.cookies


async def test_a_visitor_cannot_be_made_an_admin(make_stack: StackFactory) -> None:
    stack = await widget(make_stack)
    assert stack.http is not None
    boss = await stack.register("boss", "Boss", admin=True)
    visitor = admitted(await post(stack, {"id": "7", "hash": sign("7")}), 201)["user"]["user"]
    r = await stack.http.post(
        f"/api/users/{visitor.upper()}/role", json={"rol": "admin"}, headers=bearer(boss)
    )
    body = assert_error(r, 409, "conflict")
    assert "visitor" in body["message"]
    r = await stack.http.post(
        f"/api/users/{visitor}/role", json={"rol": "user"}, headers=bearer(boss)
    )
    assert r.status_code == 200 and r.json()["user"]["rol"] == "user"
    async with stack.services.sessions() as db:
        rol = (await db.execute(select(User.rol).where(User.user == visitor))).scalar()
    assert rol == "user"


async def test_a_visitors_message_reaches_the_team_and_the_inbox_shows_who_it_is(
    make_stack: StackFactory,
) -> None:
    stack = await widget(make_stack)
    boss_token = await stack.register("boss", "Boss", admin=True)
    boss = await stack.connect(boss_token)
    anon = admitted(await post(stack, {"email": "anon@example.com"}), 201)
    known = admitted(await post(stack, {"id": "42", "name": "Ann", "hash": sign("42")}), 201)
    ann_token = await stack.register("ann", "Ann Lee")

    for token, text in ((anon["token"], "hi"), (known["token"], "hello"), (ann_token, "hey")):
        client = await stack.connect(token)  # auth.token, and no cookie at all
        ack = await client.call("mensaje_privado", {"text": text})
        assert ack["ok"], ack
    got = await boss.wait_for("mensaje_privado", 3)
    assert [(m["from"], m["text"]) for m in got] == [
        (anon["user"]["user"], "hi"),
        (known["user"]["user"], "hello"),
        ("ann", "hey"),
    ]
    assert got[1]["from_name"] == "Ann"

    found = await inbox(stack, boss_token)
    who = {u: (c["visitor"], c["email"], c["verified"]) for u, c in found.items()}
    assert who == {
        anon["user"]["user"]: (True, "anon@example.com", False),
        known["user"]["user"]: (True, None, True),
        "ann": (False, None, False),
    }
    events = await boss.wait_for("conversation", 3)
    by_user = {e["user"]: (e["visitor"], e["email"], e["verified"]) for e in events}
    assert by_user == who

    # The team answers a visitor as any user.
    visitor = await stack.connect(known["token"])
    reply = await boss.call("mensaje_privado", {"to": known["user"]["user"], "text": "hi Ann"})
    assert reply["ok"], reply
    [delivered] = await visitor.wait_for("mensaje_privado")
    assert delivered["text"] == "hi Ann" and delivered["from_name"] == "Boss"


async def test_the_inbox_reads_visitors_in_one_query_per_page(make_stack: StackFactory) -> None:
    stack = await widget(make_stack)
    boss_token = await stack.register("boss", "Boss", admin=True)
    for i in range(4):
        made = admitted(await post(stack, {"id": f"c{i}", "hash": sign(f"c{i}")}), 201)
        client = await stack.connect(made["token"])
        assert (await client.call("mensaje_privado", {"text": f"m{i}"}))["ok"]
    with statements(stack) as seen:
        found = await inbox(stack, boss_token)
    assert len(found) == 4 and all(c["verified"] for c in found.values())
    assert sum("visitors" in s for s in seen) == 1, seen


async def test_a_visitor_chats_through_the_official_js_client(make_stack: StackFactory) -> None:
    node = node_or_skip()
    stack = await widget(make_stack)
    boss = await stack.connect(await stack.register("boss", "Boss", admin=True))
    visitor = admitted(await post(stack, {"name": "Widget user"}), 201)
    proc = await asyncio.create_subprocess_exec(
        node,
        str(JS / "visitor.mjs"),
        stack.url,
        visitor["token"],
        "polling",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=JS,
    )
    [arrived] = await boss.wait_for("mensaje_privado", timeout=15)
    assert arrived["from"] == visitor["user"]["user"]
    assert arrived["from_name"] == "Widget user"
    reply = await boss.call("mensaje_privado", {"to": arrived["from"], "text": "how can we help?"})
    assert reply["ok"], reply
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, (out.decode(), err.decode())
    seen = json.loads(out.decode().strip().splitlines()[-1])
    assert seen["ack"]["ok"] is True and seen["ack"]["message"] == arrived
    assert seen["reply"] == reply["message"]
    assert [m["text"] for m in seen["sync"]["messages"]] == [
        "hello from the widget",
        "how can we help?",
    ]


async def test_a_user_registered_under_a_removed_visitors_name_is_no_visitor(
    make_stack: StackFactory,
) -> None:
    stack = await widget(make_stack)
    assert stack.http is not None
    gone = admitted(await post(stack, {}), 201)["user"]["user"]
    async with stack.services.sessions.begin() as db:
        await db.execute(delete(User).where(User.user == gone))
    token = await stack.register(gone.upper(), "New owner")
    r = await stack.http.get("/api/me", headers=bearer(token))
    assert r.json()["user"] == gone.upper()
    async with stack.services.sessions() as db:
        assert (await db.execute(select(func.count()).select_from(Visitor))).scalar() == 0


async def test_an_id_whose_user_was_removed_gets_a_new_user(make_stack: StackFactory) -> None:
    stack = await widget(make_stack)
    body = {"id": "42", "hash": sign("42")}
    first = admitted(await post(stack, body), 201)["user"]["user"]
    async with stack.services.sessions.begin() as db:
        await db.execute(delete(User).where(User.user == first))
    second = admitted(await post(stack, body), 201)["user"]
    assert second["user"] != first and second["verified"] is True
    assert admitted(await post(stack, body), 200)["user"] == second
