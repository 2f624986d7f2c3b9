"""Canned responses from outside, over HTTP: admins only, the shortcut and text rules, a
shortcut unique even between concurrent requests, partial changes, deletion, media types,
unknown ids and the cap on how many the team keeps."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

import services.canned
from tests.conftest import PASSWORD, Stack, StackFactory
from tests.integration.test_api import assert_error, bearer

PATH = "/api/canned-responses"


def one(r: httpx.Response, status: int = 200) -> dict[str, Any]:
    """The `canned_response` of a successful answer, checked to be exactly {id, shortcut, text}."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"canned_response"}, body
    canned: dict[str, Any] = body["canned_response"]
    assert set(canned) == {"id", "shortcut", "text"}, canned
    assert isinstance(canned["id"], int) and canned["id"] >= 1
    return canned


async def admin(stack: Stack, name: str = "boss") -> dict[str, str]:
    return bearer(await stack.register(name, admin=True))


async def create(stack: Stack, auth: dict[str, str], shortcut: str, text: str) -> httpx.Response:
    assert stack.http is not None
    return await stack.http.post(PATH, json={"shortcut": shortcut, "text": text}, headers=auth)


async def listed(stack: Stack, auth: dict[str, str]) -> list[dict[str, Any]]:
    assert stack.http is not None
    r = await stack.http.get(PATH, headers=auth)
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"canned_responses"}, body
    return list(body["canned_responses"])


async def patch(stack: Stack, auth: dict[str, str], canned_id: Any, body: Any) -> httpx.Response:
    assert stack.http is not None
    return await stack.http.patch(f"{PATH}/{canned_id}", json=body, headers=auth)


async def delete(stack: Stack, auth: dict[str, str], canned_id: Any) -> httpx.Response:
    assert stack.http is not None
    return await stack.http.delete(f"{PATH}/{canned_id}", headers=auth)


# -- the whole life of one ----------------------------------------------------------------


async def test_an_admin_creates_lists_changes_and_deletes_a_canned_response(stack: Stack) -> None:
    boss = await admin(stack)
    assert await listed(stack, boss) == []
    made = one(await create(stack, boss, "hello", "Hi {{name}}, how can we help?"), 201)
    assert made["shortcut"] == "hello" and made["text"] == "Hi {{name}}, how can we help?"
    assert await listed(stack, boss) == [made]

    # Another admin sees the team's list and may change it.
    other = await admin(stack, "lead")
    assert await listed(stack, other) == [made]
    text_only = one(await patch(stack, other, made["id"], {"text": "Hello {{name}}!"}))
    assert text_only == {**made, "text": "Hello {{name}}!"}
    shortcut_only = one(await patch(stack, boss, made["id"], {"shortcut": "hi"}))
    assert shortcut_only == {"id": made["id"], "shortcut": "hi", "text": "Hello {{name}}!"}
    both = one(await patch(stack, boss, made["id"], {"shortcut": "greet", "text": "Hey"}))
    assert both == {"id": made["id"], "shortcut": "greet", "text": "Hey"}
    assert await listed(stack, boss) == [both]

    gone = await delete(stack, boss, made["id"])
    assert gone.status_code == 204 and gone.content == b""
    assert await listed(stack, boss) == []
    assert_error(await delete(stack, boss, made["id"]), 404, "not_found")
    assert_error(await patch(stack, boss, made["id"], {"text": "again"}), 404, "not_found")
    # The shortcut is free again.
    one(await create(stack, boss, "greet", "Hey"), 201)


async def test_the_list_is_in_code_point_order_of_shortcuts_on_every_database(
    stack: Stack,
) -> None:
    # Collations disagree on these (`_` after letters, `-` ignored): the answer does not.
    boss = await admin(stack)
    shortcuts = ["b", "a_b", "ab", "a-b", "a1", "_x", "-y", "9", "z"]
    for s in shortcuts:
        one(await create(stack, boss, s, f"text of {s}"), 201)
    answer = await listed(stack, boss)
    assert [c["shortcut"] for c in answer] == sorted(shortcuts)
    assert [c["text"] for c in answer] == [f"text of {s}" for s in sorted(shortcuts)]


async def test_text_comes_back_exactly_as_sent(stack: Stack) -> None:
    boss = await admin(stack)
    text = "  <b>{{name}}</b>'; DROP TABLE canned_responses; -- \n\t 😀 ñ {{ name }}  "
    made = one(await create(stack, boss, "exact", text), 201)
    assert made["text"] == text
    assert (await listed(stack, boss))[0]["text"] == text


# -- who may ------------------------------------------------------------------------------


async def test_a_user_is_forbidden_and_no_token_is_unauthenticated(stack: Stack) -> None:
    assert stack.http is not None
    boss = await admin(stack)
    made = one(await create(stack, boss, "hello", "Hi"), 201)
    user = bearer(await stack.register("ana"))
    for auth, status, code in ((user, 403, "forbidden"), ({}, 401, "unauthenticated")):
        assert_error(await stack.http.get(PATH, headers=auth), status, code)
        assert_error(await create(stack, auth, "mine", "x"), status, code)
        # Refused before the body or the id is judged.
        assert_error(await create(stack, auth, "BAD", ""), status, code)
        assert_error(await patch(stack, auth, made["id"], {"text": "mine"}), status, code)
        assert_error(await patch(stack, auth, 999999, {}), status, code)
        assert_error(await delete(stack, auth, made["id"]), status, code)
        assert_error(await delete(stack, auth, 999999), status, code)
    assert_error(await stack.http.get(PATH, headers=bearer("x.y.z")), 401, "unauthenticated")
    assert await listed(stack, boss) == [made]


async def test_the_login_cookie_works_as_well_as_bearer(stack: Stack) -> None:
    await stack.register("boss", admin=True)
    async with httpx.AsyncClient(base_url=stack.url) as browser:
        r = await browser.post("/api/login", json={"username": "boss", "password": PASSWORD})
        assert r.status_code == 200
        made = one(await browser.post(PATH, json={"shortcut": "c", "text": "by cookie"}), 201)
        assert (await browser.get(PATH)).json() == {"canned_responses": [made]}
        assert (await browser.delete(f"{PATH}/{made['id']}")).status_code == 204


# -- the shortcut and the text ------------------------------------------------------------


@pytest.mark.parametrize(
    "shortcut",
    ["Hello", "HELLO", "a" * 33, "", "a b", " a", "a\n", "ñ", "a.b", "a/b", "a+b", 5, None, ["a"]],
    ids=repr,
)
async def test_a_shortcut_out_of_the_rule_is_invalid(stack: Stack, shortcut: Any) -> None:
    assert stack.http is not None
    boss = await admin(stack)
    r = await stack.http.post(PATH, json={"shortcut": shortcut, "text": "x"}, headers=boss)
    assert "shortcut" in assert_error(r, 400, "invalid")["message"]
    made = one(await create(stack, boss, "ok", "x"), 201)
    r = await patch(stack, boss, made["id"], {"shortcut": shortcut})
    assert "shortcut" in assert_error(r, 400, "invalid")["message"]
    assert await listed(stack, boss) == [made]


@pytest.mark.parametrize("shortcut", ["a" * 32, "a", "-", "_", "0", "z9_-", "thanks-2"])
async def test_shortcuts_within_the_rule_are_taken_as_they_are(stack: Stack, shortcut: str) -> None:
    boss = await admin(stack)
    assert one(await create(stack, boss, shortcut, "x"), 201)["shortcut"] == shortcut


async def test_a_missing_shortcut_or_text_is_invalid(stack: Stack) -> None:
    assert stack.http is not None
    boss = await admin(stack)
    for body in ({"text": "x"}, {"shortcut": "a"}, {}, {"shortcut": "a", "txt": "x"}):
        assert_error(await stack.http.post(PATH, json=body, headers=boss), 400, "invalid")
    assert await listed(stack, boss) == []


@pytest.mark.parametrize("text", ["", "\x00", "a\x00b", 5, None, ["x"], {"t": "x"}], ids=repr)
async def test_text_out_of_the_message_rules_is_invalid(stack: Stack, text: Any) -> None:
    assert stack.http is not None
    boss = await admin(stack)
    r = await stack.http.post(PATH, json={"shortcut": "a", "text": text}, headers=boss)
    assert "text" in assert_error(r, 400, "invalid")["message"].lower()
    made = one(await create(stack, boss, "ok", "x"), 201)
    r = await patch(stack, boss, made["id"], {"text": text})
    assert "text" in assert_error(r, 400, "invalid")["message"].lower()
    assert await listed(stack, boss) == [made]


async def test_text_is_at_most_msg_max_chars_code_points(make_stack: StackFactory) -> None:
    stack = await make_stack(msg_max_chars=20)
    boss = await admin(stack)
    assert one(await create(stack, boss, "full", "😀" * 20), 201)["text"] == "😀" * 20
    assert_error(await create(stack, boss, "over", "x" * 21), 400, "invalid")
    made = one(await create(stack, boss, "short", "x"), 201)
    assert_error(await patch(stack, boss, made["id"], {"text": "x" * 21}), 400, "invalid")
    assert one(await patch(stack, boss, made["id"], {"text": "é" * 20}))["text"] == "é" * 20


async def test_the_default_limit_is_the_default_msg_max_chars(stack: Stack) -> None:
    boss = await admin(stack)
    limit = stack.settings.msg_max_chars
    assert limit == 4000
    one(await create(stack, boss, "long", "x" * limit), 201)
    assert_error(await create(stack, boss, "longer", "x" * (limit + 1)), 400, "invalid")


async def test_a_lone_surrogate_is_invalid(stack: Stack) -> None:
    assert stack.http is not None
    boss = await admin(stack)
    content = '{"shortcut": "a", "text": "bad \\ud800 half"}'
    headers = {**boss, "Content-Type": "application/json"}
    assert_error(await stack.http.post(PATH, content=content, headers=headers), 400, "invalid")


@pytest.mark.parametrize("content", ["{not json", "[]", '"text"', "null", "5", ""])
async def test_a_body_that_is_not_a_json_object_is_invalid(stack: Stack, content: str) -> None:
    assert stack.http is not None
    boss = await admin(stack)
    headers = {**boss, "Content-Type": "application/json"}
    assert_error(await stack.http.post(PATH, content=content, headers=headers), 400, "invalid")
    made = one(await create(stack, boss, "ok", "x"), 201)
    r = await stack.http.patch(f"{PATH}/{made['id']}", content=content, headers=headers)
    assert_error(r, 400, "invalid")


# -- unique shortcuts ---------------------------------------------------------------------


async def test_a_taken_shortcut_is_exists(stack: Stack) -> None:
    boss = await admin(stack)
    made = one(await create(stack, boss, "hello", "first"), 201)
    assert_error(await create(stack, boss, "hello", "second"), 409, "exists")
    assert await listed(stack, boss) == [made]


async def test_of_concurrent_creations_of_one_shortcut_exactly_one_succeeds(
    stack: Stack,
) -> None:
    boss = await admin(stack)
    answers = await asyncio.gather(*(create(stack, boss, "race", f"text {i}") for i in range(6)))
    statuses = sorted(r.status_code for r in answers)
    assert statuses == [201] + [409] * 5, [r.text for r in answers]
    for r in answers:
        if r.status_code == 409:
            assert_error(r, 409, "exists")
    winner = one(next(r for r in answers if r.status_code == 201), 201)
    assert await listed(stack, boss) == [winner]


async def test_a_change_to_a_taken_shortcut_is_exists_and_changes_nothing(stack: Stack) -> None:
    boss = await admin(stack)
    first = one(await create(stack, boss, "first", "one"), 201)
    second = one(await create(stack, boss, "second", "two"), 201)
    r = await patch(stack, boss, second["id"], {"shortcut": "first", "text": "changed"})
    assert_error(r, 409, "exists")
    assert await listed(stack, boss) == [first, second]
    # Its own shortcut is no conflict.
    same = one(await patch(stack, boss, second["id"], {"shortcut": "second", "text": "2"}))
    assert same == {**second, "text": "2"}


async def test_of_concurrent_changes_to_one_shortcut_exactly_one_succeeds(stack: Stack) -> None:
    boss = await admin(stack)
    ids = [one(await create(stack, boss, f"s{i}", "x"), 201)["id"] for i in range(4)]
    answers = await asyncio.gather(*(patch(stack, boss, i, {"shortcut": "same"}) for i in ids))
    assert sorted(r.status_code for r in answers) == [200, 409, 409, 409], [r.text for r in answers]
    assert sorted(c["shortcut"] for c in await listed(stack, boss)).count("same") == 1


async def test_a_change_needs_a_field_it_knows(stack: Stack) -> None:
    boss = await admin(stack)
    made = one(await create(stack, boss, "ok", "x"), 201)
    for body in ({}, {"other": "x"}, {"shortcut": None}, {"text": None}):
        assert_error(await patch(stack, boss, made["id"], body), 400, "invalid")
    # Unknown keys beside a known one are ignored.
    assert one(await patch(stack, boss, made["id"], {"text": "y", "other": 1}))["text"] == "y"


# -- ids, methods and media types ---------------------------------------------------------


@pytest.mark.parametrize("canned_id", ["999999", "0", "00", "9223372036854775807", "9" * 40])
async def test_an_unknown_id_is_not_found(stack: Stack, canned_id: str) -> None:
    boss = await admin(stack)
    one(await create(stack, boss, "ok", "x"), 201)
    assert_error(await patch(stack, boss, canned_id, {"text": "y"}), 404, "not_found")
    assert_error(await delete(stack, boss, canned_id), 404, "not_found")


@pytest.mark.parametrize("path", [f"{PATH}/abc", f"{PATH}/-1", f"{PATH}/1.0", f"{PATH}/1/x"])
async def test_a_path_that_is_no_id_is_a_json_not_found(stack: Stack, path: str) -> None:
    assert stack.http is not None
    boss = await admin(stack)
    for method in ("PATCH", "DELETE"):
        r = await stack.http.request(method, path, json={"text": "y"}, headers=boss)
        assert_error(r, 404, "not_found")


async def test_a_leading_zero_names_the_same_id(stack: Stack) -> None:
    boss = await admin(stack)
    made = one(await create(stack, boss, "ok", "x"), 201)
    assert one(await patch(stack, boss, f"000{made['id']}", {"text": "y"}))["id"] == made["id"]


async def test_methods_a_route_lacks_are_405_with_allow(stack: Stack) -> None:
    assert stack.http is not None
    boss = await admin(stack)
    made = one(await create(stack, boss, "ok", "x"), 201)
    for method in ("PUT", "PATCH", "DELETE"):
        r = await stack.http.request(method, PATH, json={}, headers=boss)
        assert_error(r, 405, "invalid")
        assert r.headers["allow"] == "GET, POST"
    for method in ("GET", "POST", "PUT"):
        r = await stack.http.request(method, f"{PATH}/{made['id']}", json={}, headers=boss)
        assert_error(r, 405, "invalid")
        assert r.headers["allow"] == "PATCH, DELETE"


@pytest.mark.parametrize(
    ("content_type", "content"),
    [
        ("application/x-www-form-urlencoded", "shortcut=form&text=x"),
        ("text/plain", '{"shortcut": "form", "text": "x"}'),
        ("multipart/form-data; boundary=x", "--x--"),
        (None, '{"shortcut": "form", "text": "x"}'),
    ],
)
async def test_changes_that_are_not_json_are_unsupported_media_type(
    stack: Stack, content_type: str | None, content: str
) -> None:
    assert stack.http is not None
    boss = await admin(stack)
    made = one(await create(stack, boss, "ok", "x"), 201)
    headers = dict(boss)
    if content_type is not None:
        headers["Content-Type"] = content_type
    r = await stack.http.post(PATH, content=content, headers=headers)
    assert_error(r, 415, "unsupported_media_type")
    r = await stack.http.patch(f"{PATH}/{made['id']}", content=content, headers=headers)
    assert_error(r, 415, "unsupported_media_type")
    # A DELETE that carries a body is held to the same rule.
    r = await stack.http.request("DELETE", f"{PATH}/{made['id']}", content=content, headers=headers)
    assert_error(r, 415, "unsupported_media_type")
    assert await listed(stack, boss) == [made]


async def test_a_delete_needs_no_body_nor_content_type(stack: Stack) -> None:
    assert stack.http is not None
    boss = await admin(stack)
    first = one(await create(stack, boss, "first", "x"), 201)
    second = one(await create(stack, boss, "second", "x"), 201)
    r = await stack.http.delete(f"{PATH}/{first['id']}", headers=boss)
    assert r.status_code == 204 and "content-type" not in r.request.headers
    r = await stack.http.request(
        "DELETE", f"{PATH}/{second['id']}", json={"ignored": True}, headers=boss
    )
    assert r.status_code == 204
    assert await listed(stack, boss) == []


# -- how many -----------------------------------------------------------------------------


async def test_the_team_keeps_at_most_the_cap(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert services.canned.CANNED_MAX == 1000
    monkeypatch.setattr(services.canned, "CANNED_MAX", 3)
    boss = await admin(stack)
    made = [one(await create(stack, boss, f"c{i}", "x"), 201) for i in range(3)]
    body = assert_error(await create(stack, boss, "c3", "x"), 400, "invalid")
    assert "at most 3" in body["message"]
    # Changes are no additions.
    one(await patch(stack, boss, made[0]["id"], {"text": "changed"}))
    assert (await delete(stack, boss, made[1]["id"])).status_code == 204
    one(await create(stack, boss, "c3", "x"), 201)
    assert len(await listed(stack, boss)) == 3
