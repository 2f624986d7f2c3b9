"""`GET /api/reports` and the `/admin/reports` page from outside, on each database: known
messages and conversation events written straight into the tables, and the exact counts,
medians, 90th percentiles, per-admin and per-day figures read back over HTTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import delete

from models.conversation import FIRST_REPLY, OPENED, RESOLVED_EVENT, ConversationEvent
from models.message import ADMINS, Message
from tests.conftest import Stack
from tests.integration.test_api import assert_error, bearer
from tests.integration.test_pages import SPANISH, Page, browser


def at(text: str) -> datetime:
    """A UTC time written as "2026-03-02 10:00[:00.000000]"."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def message(sender: str, recipient: str, when: datetime, *, note: bool = False) -> Message:
    conversation = sender if recipient == ADMINS else recipient
    return Message(
        sender=sender,
        recipient=recipient,
        conversation=conversation,
        text="x",
        created_at=when,
        client_msg_id=None,
        note=note,
    )


def event(
    kind: str,
    when: datetime,
    *,
    conversation: str = "ana",
    admin: str | None = None,
    seconds: float | None = None,
) -> ConversationEvent:
    return ConversationEvent(
        conversation=conversation, kind=kind, at=when, admin=admin, seconds=seconds
    )


async def insert(stack: Stack, *rows: Any) -> None:
    async with stack.services.sessions() as db:
        db.add_all(rows)
        await db.commit()


@pytest.fixture(autouse=True)
async def _no_events_left(stack: Stack) -> None:
    """The shared MariaDB and PostgreSQL databases keep `conversation_events` between tests
    (the stack empties the older tables only)."""
    async with stack.services.sessions() as db:
        await db.execute(delete(ConversationEvent))
        await db.commit()


async def report(stack: Stack, token: str, query: str = "") -> dict[str, Any]:
    assert stack.http is not None
    r = await stack.http.get(f"/api/reports{query}", headers=bearer(token))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = r.json()
    return body


def parsed(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def by_admin(admin: str, replies: int, resolved: int, median: float | None) -> dict[str, Any]:
    return {
        "admin": admin,
        "replies": replies,
        "resolved": resolved,
        "first_response_seconds": {"median": median},
    }


def by_day(day: str, received: int, replied: int, resolved: int) -> dict[str, Any]:
    return {"date": day, "received": received, "replied": replied, "resolved": resolved}


# Three days, 2 to 4 March 2026 (UTC); the 3rd has no messages.
PERIOD = "?from=2026-03-02T00:00:00Z&to=2026-03-05T00:00:00Z"


async def known_history(stack: Stack) -> None:
    await insert(
        stack,
        # messages: just before, at the start, inside, at the last microsecond, at the end
        message("ana", ADMINS, at("2026-03-01 23:59:59.999999")),
        message("ana", ADMINS, at("2026-03-02 00:00:00")),
        message("ana", ADMINS, at("2026-03-02 10:00")),
        message("boss", "ana", at("2026-03-02 10:05")),
        message("boss", "ana", at("2026-03-02 10:06"), note=True),
        message("chief", "ana", at("2026-03-02 11:00")),
        message("bob", ADMINS, at("2026-03-04 09:00")),
        message("chief", "bob", at("2026-03-04 09:30")),
        message("chief", "bob", at("2026-03-04 12:00"), note=True),
        message("dana", "bob", at("2026-03-04 13:00"), note=True),  # dana: notes only
        message("bob", ADMINS, at("2026-03-04 23:59:59.999999")),
        message("bob", ADMINS, at("2026-03-05 00:00:00")),
        message("boss", "bob", at("2026-03-05 00:00:00")),
        # openings
        event(OPENED, at("2026-03-01 23:00")),
        event(OPENED, at("2026-03-02 00:00")),
        event(OPENED, at("2026-03-04 09:00"), conversation="bob"),
        event(OPENED, at("2026-03-05 00:00"), conversation="bob"),
        # first responses: boss 60, 120, 300; chief 30, 600; dana 90; one before the period
        event(FIRST_REPLY, at("2026-03-01 23:30"), admin="boss", seconds=999_999),
        event(FIRST_REPLY, at("2026-03-02 10:05"), admin="boss", seconds=300),
        event(FIRST_REPLY, at("2026-03-02 12:00"), admin="boss", seconds=60),
        event(FIRST_REPLY, at("2026-03-03 12:00"), admin="boss", seconds=120),
        event(FIRST_REPLY, at("2026-03-02 11:00"), admin="chief", seconds=600),
        event(FIRST_REPLY, at("2026-03-04 09:30"), admin="chief", seconds=30),
        event(FIRST_REPLY, at("2026-03-04 13:00"), admin="dana", seconds=90),
        # resolutions: 12 h, 1 h, 2 h (by nobody), one unmeasured, one by eve, one at the end
        event(RESOLVED_EVENT, at("2026-03-02 12:00"), admin="boss", seconds=43_200),
        event(RESOLVED_EVENT, at("2026-03-03 08:00"), admin="chief", seconds=3600),
        event(RESOLVED_EVENT, at("2026-03-03 09:00"), admin="eve"),
        event(RESOLVED_EVENT, at("2026-03-04 20:00"), admin="chief"),
        event(RESOLVED_EVENT, at("2026-03-04 21:00"), seconds=7200),
        event(RESOLVED_EVENT, at("2026-03-05 00:00"), admin="boss", seconds=1),
    )


async def test_a_period_is_counted_measured_and_split_by_admin_and_by_day(stack: Stack) -> None:
    boss = await stack.register("boss", admin=True)
    await known_history(stack)
    body = await report(stack, boss, PERIOD)
    assert body == {
        "from": "2026-03-02T00:00:00.000000Z",
        "to": "2026-03-05T00:00:00.000000Z",
        "conversations_opened": 2,
        "conversations_resolved": 5,
        "messages_received": 4,
        "replies_sent": 3,
        # [30, 60, 90, 120, 300, 600]: (90 + 120) / 2, and 300 + 0.5 * (600 - 300)
        "first_response_seconds": {"median": 105.0, "p90": 450.0},
        # [3600, 7200, 43200]: the middle one, and 7200 + 0.8 * (43200 - 7200)
        "resolution_seconds": {"median": 7200.0, "p90": 36_000.0},
        "by_admin": [
            by_admin("boss", 1, 1, 120.0),
            by_admin("chief", 2, 2, 315.0),  # (30 + 600) / 2
            by_admin("dana", 0, 0, 90.0),  # a first reply, and notes only
            by_admin("eve", 0, 1, None),  # a resolution only
        ],
        "by_day": [
            by_day("2026-03-02", 2, 2, 1),
            by_day("2026-03-03", 0, 0, 2),
            by_day("2026-03-04", 2, 1, 2),
        ],
    }


async def test_a_period_with_nothing_in_it_has_zeros_every_day_and_null_medians(
    stack: Stack,
) -> None:
    boss = await stack.register("boss", admin=True)
    await known_history(stack)
    body = await report(stack, boss, "?from=2026-02-01&to=2026-02-04")
    assert body == {
        "from": "2026-02-01T00:00:00.000000Z",
        "to": "2026-02-04T00:00:00.000000Z",
        "conversations_opened": 0,
        "conversations_resolved": 0,
        "messages_received": 0,
        "replies_sent": 0,
        "first_response_seconds": {"median": None, "p90": None},
        "resolution_seconds": {"median": None, "p90": None},
        "by_admin": [],
        "by_day": [by_day(f"2026-02-0{d}", 0, 0, 0) for d in (1, 2, 3)],
    }


async def test_percentiles_interpolate_between_the_two_nearest_values(stack: Stack) -> None:
    boss = await stack.register("boss", admin=True)
    await insert(
        stack,
        event(FIRST_REPLY, at("2026-03-02 10:00"), admin="boss", seconds=1),
        event(FIRST_REPLY, at("2026-03-02 11:00"), admin="boss", seconds=2),
        event(RESOLVED_EVENT, at("2026-03-02 12:00"), admin="boss", seconds=86_400),
    )
    body = await report(stack, boss, PERIOD)
    assert body["first_response_seconds"] == {"median": 1.5, "p90": 1.9}
    assert body["resolution_seconds"] == {"median": 86_400.0, "p90": 86_400.0}
    assert body["by_admin"] == [by_admin("boss", 0, 1, 1.5)]


async def test_bounds_in_other_time_zones_are_read_as_utc_and_to_is_left_out(
    stack: Stack,
) -> None:
    boss = await stack.register("boss", admin=True)
    await known_history(stack)
    # 10:00+01:00 is 09:00 UTC; the boss's reply at 10:05 UTC is the end, left out. The "+" is
    # sent unencoded, as a hand-typed URL would: it arrives as a space and is still read.
    body = await report(stack, boss, "?from=2026-03-02T10:00:00+01:00&to=2026-03-02T10:05:00Z")
    assert body["from"] == "2026-03-02T09:00:00.000000Z"
    assert body["to"] == "2026-03-02T10:05:00.000000Z"
    assert (body["messages_received"], body["replies_sent"]) == (1, 0)
    assert body["by_day"] == [by_day("2026-03-02", 1, 0, 0)]
    # a period across midnight touches two dates; the part of each inside it is counted
    body = await report(stack, boss, "?from=2026-03-04T23:00:00Z&to=2026-03-05T01:00:00.5Z")
    assert body["to"] == "2026-03-05T01:00:00.500000Z"
    assert body["by_day"] == [by_day("2026-03-04", 1, 0, 0), by_day("2026-03-05", 1, 1, 1)]
    assert body["conversations_opened"] == 1 and body["conversations_resolved"] == 1


async def test_without_a_period_the_report_covers_the_last_7_days(stack: Stack) -> None:
    boss = await stack.register("boss", admin=True)
    now = datetime.now(UTC)
    await insert(
        stack,
        message("ana", ADMINS, now - timedelta(days=8)),
        message("ana", ADMINS, now - timedelta(days=6)),
        message("boss", "ana", now - timedelta(hours=1)),
    )
    before = datetime.now(UTC)
    body = await report(stack, boss)
    after = datetime.now(UTC)
    start, end = parsed(body["from"]), parsed(body["to"])
    assert before - timedelta(seconds=1) <= end <= after + timedelta(seconds=1)
    assert end - start == timedelta(days=7)
    assert (body["messages_received"], body["replies_sent"]) == (1, 1)
    dates = [d["date"] for d in body["by_day"]]
    assert dates[0] == start.date().isoformat() and dates[-1] == end.date().isoformat()
    assert len(dates) == 8  # seven days from a time of day to the same time touch 8 dates
    # `to` alone: the 7 days before it; `from` alone: from then to now
    body = await report(stack, boss, "?to=2026-03-05")
    assert (body["from"], body["to"]) == (
        "2026-02-26T00:00:00.000000Z",
        "2026-03-05T00:00:00.000000Z",
    )
    since = (now - timedelta(days=2)).date().isoformat()
    body = await report(stack, boss, f"?from={since}")
    assert body["from"] == f"{since}T00:00:00.000000Z"
    assert parsed(body["to"]) >= before
    assert (body["messages_received"], body["replies_sent"]) == (0, 1)


async def test_a_period_of_366_days_has_a_row_for_each_day(stack: Stack) -> None:
    boss = await stack.register("boss", admin=True)
    await known_history(stack)
    body = await report(stack, boss, "?from=2025-06-01&to=2026-06-02")
    assert len(body["by_day"]) == 366
    assert body["by_day"][0]["date"] == "2025-06-01"
    assert body["by_day"][-1]["date"] == "2026-06-01"
    assert body["messages_received"] == 6 and body["replies_sent"] == 4
    assert sum(d["received"] for d in body["by_day"]) == 6


@pytest.mark.parametrize(
    "query",
    [
        "?from=yesterday",
        "?from=2026-03-02T10:00:00",  # no time zone
        "?to=2026-13-01",
        "?from=2026-03-02T25:00:00Z",
        "?from=2026-03-05&to=2026-03-05",  # empty
        "?from=2026-03-05&to=2026-03-02",  # backwards
        "?from=2026-03-05T00:00:00Z&to=2026-03-05T00:00:00+00:00",
        "?from=2025-06-01&to=2026-06-03",  # 367 days
        "?from=1969-12-31&to=1970-01-02",
        "?to=0001-01-01",
        "?from=9999-12-31T23:59:59-01:00",
        "?from=%EF%BC%92%EF%BC%90%EF%BC%92%EF%BC%96-03-02",  # full-width digits
        "?from=" + "2" * 100,
    ],
)
async def test_a_malformed_or_impossible_period_is_invalid(stack: Stack, query: str) -> None:
    boss = await stack.register("boss", admin=True)
    assert stack.http is not None
    r = await stack.http.get(f"/api/reports{query}", headers=bearer(boss))
    assert_error(r, 400, "invalid")


async def test_reports_are_for_admins_only(stack: Stack) -> None:
    ana = await stack.register("ana")
    assert stack.http is not None
    assert_error(await stack.http.get("/api/reports"), 401, "unauthenticated")
    r = await stack.http.get("/api/reports", headers=bearer("not.a.token"))
    assert_error(r, 401, "unauthenticated")
    assert_error(await stack.http.get("/api/reports", headers=bearer(ana)), 403, "forbidden")
    # who may ask comes before what was asked
    r = await stack.http.get("/api/reports?from=nonsense", headers=bearer(ana))
    assert_error(r, 403, "forbidden")
    r = await stack.http.get("/api/reports?from=nonsense")
    assert_error(r, 401, "unauthenticated")


async def test_a_real_round_is_counted_and_notes_never_as_replies(stack: Stack) -> None:
    """Messages over Socket.IO and a resolution over the API write the events reports read:
    an opening, a first reply (after a note, which is none), a resolution, a reopening."""
    ana = await stack.connect(await stack.register("ana", "Ana"))
    token = await stack.register("boss", "Boss", admin=True)
    boss = await stack.connect(token)
    assert (await ana.call("mensaje_privado", {"text": "help"}))["ok"] is True
    note = {"to": "ana", "text": "check her plan", "note": True}
    assert (await boss.call("mensaje_privado", note))["ok"] is True
    assert (await boss.call("mensaje_privado", {"to": "ana", "text": "hello"}))["ok"] is True
    assert stack.http is not None
    r = await stack.http.patch(
        "/api/conversations/ana", json={"status": "resolved"}, headers=bearer(token)
    )
    assert r.status_code == 200
    assert (await ana.call("mensaje_privado", {"text": "again"}))["ok"] is True
    body = await report(stack, token)
    assert (body["conversations_opened"], body["conversations_resolved"]) == (2, 1)
    assert (body["messages_received"], body["replies_sent"]) == (2, 1)
    first, resolution = body["first_response_seconds"], body["resolution_seconds"]
    assert 0 <= first["median"] <= resolution["median"] < 60
    [boss_row] = body["by_admin"]
    assert (boss_row["admin"], boss_row["replies"], boss_row["resolved"]) == ("boss", 1, 1)
    assert boss_row["first_response_seconds"]["median"] == first["median"]
    today = datetime.now(UTC).date().isoformat()
    assert body["by_day"][-1] == by_day(today, 2, 1, 1)
    # and the cookie is enough, as for the page's own requests
    async with browser(stack, cookies={"token": token}) as client:
        r = await client.get("/api/reports")
    assert r.status_code == 200 and r.json()["replies_sent"] == 1


# -- the page -------------------------------------------------------------------------------


async def test_the_reports_page_is_for_admins(stack: Stack) -> None:
    ana = await stack.register("ana")
    boss = await stack.register("boss", admin=True)
    async with browser(stack) as client:
        r = await client.get("/admin/reports", follow_redirects=False)
        assert r.status_code == 302 and r.headers["location"] == "/login"
    async with browser(stack, cookies={"token": ana}) as client:
        assert (await client.get("/admin/reports", follow_redirects=False)).status_code == 403
    async with browser(stack, cookies={"token": boss}) as client:
        r = await client.get("/admin/reports")
        inbox = Page((await client.get("/admin")).text)
    assert r.status_code == 200
    page = Page(r.text)
    assert {"From", "To"} <= set(page.labels)
    assert "Show" in page.buttons
    assert ("Inbox", "/admin") in page.links
    assert ("Reports", "/admin/reports") in inbox.links
    assert any(a.startswith("/static/vendor/uplot/uPlot.iife.min.js") for a in page.assets)
    assert any(a.startswith("/static/vendor/uplot/uPlot.min.css") for a in page.assets)
    async with browser(stack) as client:
        for src in page.assets:
            assert (await client.get(src)).status_code == 200, src


async def test_the_reports_page_and_its_link_are_in_spanish(stack: Stack) -> None:
    boss = await stack.register("boss", admin=True)
    async with browser(stack, cookies={"token": boss}, headers=SPANISH) as client:
        page = Page((await client.get("/admin/reports")).text)
        inbox = Page((await client.get("/admin")).text)
    assert {"Desde", "Hasta"} <= set(page.labels)
    assert "Mostrar" in page.buttons
    assert ("Informes", "/admin/reports") in inbox.links
