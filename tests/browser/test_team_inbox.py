"""The team's inbox in a browser: the filters Mine / Unassigned / All and Status, paging, the
open conversation's controls (Assignee, Resolve, Reopen, Snooze, Labels), private notes, the
Available switch, and every change seen live by the other admins, auto-assignment included;
in English and Spanish."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import pytest

from tests.browser.conftest import SCREENSHOTS, Browser, Tab
from tests.browser.helpers import (
    LOCALES,
    admin_tab,
    assert_clean,
    log_in,
    open_conversation,
    say,
    send,
    starts_with,
    user_tab,
)
from tests.conftest import PASSWORD, Client, Stack, StackFactory

try:
    from playwright.async_api import expect
except ImportError:  # the conftest skips (or fails under REQUIRE_SERVICES) before any test runs
    pass

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("make_stack", ["sqlite"], indirect=True)]

SOCKET = "**/socket.io/**"
RECONNECT_MS = 15_000  # the client retries with a growing delay of up to 5 s (and a jitter)
T = TypeVar("T")


# -- helpers ------------------------------------------------------------------------------


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def customer(stack: Stack, user: str, name: str, text: str | None = None) -> Client:
    """A user on a plain Socket.IO client (cheaper than a browser tab), who writes `text`;
    made as `adduser` does (registrations per hour are limited)."""
    await stack.services.auth.add_user(user, name, PASSWORD, admin=False)
    client = await stack.connect(await stack.login(user))
    if text is not None:
        await write(client, text)
    return client


async def write(client: Client, text: str) -> None:
    ack = await client.call("mensaje_privado", {"text": text})
    assert ack["ok"], ack


async def conversation(stack: Stack, token: str, user: str) -> dict[str, Any]:
    """`user`'s conversation as GET /api/conversations lists it."""
    assert stack.http is not None
    r = await stack.http.get("/api/conversations", params={"limit": "200"}, headers=bearer(token))
    assert r.status_code == 200, r.text
    found = [c for c in r.json()["conversations"] if c["user"] == user]
    assert len(found) == 1, r.json()
    return dict(found[0])


async def patch(stack: Stack, token: str, user: str, body: dict[str, Any]) -> dict[str, Any]:
    assert stack.http is not None
    r = await stack.http.patch(f"/api/conversations/{user}", json=body, headers=bearer(token))
    assert r.status_code == 200, r.text
    return dict(r.json()["conversation"])


async def messages(stack: Stack, token: str, with_user: str | None = None) -> list[dict[str, Any]]:
    assert stack.http is not None
    params = {"limit": "200"} | ({"with": with_user} if with_user else {})
    r = await stack.http.get("/api/messages", params=params, headers=bearer(token))
    assert r.status_code == 200, r.text
    return list(r.json()["messages"])


async def eventually(check: Callable[[], Awaitable[T]], timeout: float = 5.0) -> T:
    """`check()` once it stops failing its assertions (the page's request may still be on its
    way when the test asks the server)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            return await check()
        except AssertionError:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.1)


def entries(tab: Tab) -> Any:
    """The names of the listed conversations, top first."""
    return tab.page.get_by_role("list").locator(".name")


def entry(tab: Tab, name: str) -> Any:
    return tab.page.get_by_role("list").get_by_role("button", name=starts_with(name))


async def choose_view(tab: Tab, view: str, *, lang: str = "en") -> None:
    radio = tab.page.get_by_role("radio", name=say(lang, view), exact=True)
    await radio.check()
    await expect(radio).to_be_checked()


async def choose_status(tab: Tab, status: str, *, lang: str = "en") -> None:
    await tab.page.get_by_label(say(lang, "Status"), exact=True).select_option(
        label=say(lang, status)
    )


def button(tab: Tab, name: str, *, lang: str = "en") -> Any:
    return tab.page.get_by_role("button", name=say(lang, name), exact=True)


def state_of(tab: Tab) -> Any:
    """The open conversation's status, as its controls show it."""
    return tab.page.locator("#conversation-state")


# -- filters and paging -------------------------------------------------------------------


@pytest.mark.parametrize("lang", ["en", "es"])
async def test_the_filters_narrow_the_list_and_are_kept_across_a_reload(
    ui: Browser, stack: Stack, lang: str
) -> None:
    sam = await stack.register("sam", "Sam", admin=True)
    await stack.register("kim", "Kim", admin=True)
    for user, name in (("ana", "Ana"), ("ben", "Ben"), ("cyd", "Cy")):
        await customer(stack, user, name, f"Hello from {name}")
    await patch(stack, sam, "ana", {"assignee": "sam"})
    await patch(stack, sam, "ben", {"assignee": "kim", "labels": ["billing"]})
    await patch(stack, sam, "cyd", {"status": "resolved"})

    tab = await ui.tab(locale=LOCALES[lang])
    await log_in(tab, "sam", lands_on="/admin", lang=lang)
    await expect(tab.page.get_by_role("radio", name=say(lang, "All"), exact=True)).to_be_checked()
    await expect(entries(tab)).to_have_text(["Cy", "Ben", "Ana"])  # newest activity first
    # Each entry tells its status, its assignee and its labels.
    await expect(entry(tab, "Ana")).to_contain_text(say(lang, "Open"))
    await expect(entry(tab, "Ana")).to_contain_text(say(lang, "You"))
    await expect(entry(tab, "Ben")).to_contain_text("Kim")
    await expect(entry(tab, "Ben")).to_contain_text("billing")
    await expect(entry(tab, "Cy")).to_contain_text(say(lang, "Resolved"))
    await expect(entry(tab, "Cy")).to_contain_text(say(lang, "Unassigned"))

    await choose_view(tab, "Mine", lang=lang)
    await expect(entries(tab)).to_have_text(["Ana"])
    await choose_view(tab, "Unassigned", lang=lang)
    await expect(entries(tab)).to_have_text(["Cy"])
    await choose_view(tab, "All", lang=lang)
    await expect(entries(tab)).to_have_text(["Cy", "Ben", "Ana"])
    await choose_status(tab, "Resolved", lang=lang)
    await expect(entries(tab)).to_have_text(["Cy"])
    await choose_status(tab, "Open", lang=lang)
    await expect(entries(tab)).to_have_text(["Ben", "Ana"])
    await choose_view(tab, "Unassigned", lang=lang)
    await expect(entries(tab)).to_have_count(0)
    nothing = say(lang, "No conversations match these filters.")
    await expect(tab.page.get_by_text(nothing)).to_be_visible()
    await tab.shoot(f"inbox-filters-empty-{lang}")

    await choose_view(tab, "Mine", lang=lang)
    await expect(entries(tab)).to_have_text(["Ana"])
    await tab.page.reload()
    await expect(tab.page.get_by_role("radio", name=say(lang, "Mine"), exact=True)).to_be_checked()
    await expect(tab.page.get_by_label(say(lang, "Status"), exact=True)).to_have_value("open")
    await expect(entries(tab)).to_have_text(["Ana"])
    assert_clean(tab)


async def test_load_more_lists_the_next_page(ui: Browser, stack: Stack) -> None:
    await stack.register("sam", "Sam", admin=True)
    # One more conversation than a page holds (50).
    clients = [await customer(stack, f"user{n:02d}", f"User {n:02d}", "Hi") for n in range(51)]
    tab = await ui.tab()
    await log_in(tab, "sam", lands_on="/admin")
    await expect(entries(tab)).to_have_count(50)
    await expect(entries(tab).first).to_have_text("User 50")
    more = button(tab, "Load more")
    await more.click()
    await expect(entries(tab)).to_have_count(51)
    await expect(entries(tab).last).to_have_text("User 00")
    await expect(more).to_be_hidden()
    await expect(entry(tab, "User 00")).to_be_focused()  # the keyboard goes on from there
    # The oldest one writes again: on top, once.
    await write(clients[0], "Me again")
    await expect(entries(tab).first).to_have_text("User 00")
    await expect(entries(tab)).to_have_count(51)
    assert_clean(tab)


# -- the open conversation's controls -----------------------------------------------------


@pytest.mark.parametrize("lang", ["en", "es"])
async def test_assigning_with_the_combobox_is_seen_live_by_the_other_admin(
    ui: Browser, stack: Stack, lang: str
) -> None:
    sam = await admin_tab(ui, stack, "sam", "Sam", lang=lang)
    kim = await admin_tab(ui, stack, "kim", "Kim", lang=lang)
    await customer(stack, "ana", "Ana", "Where is my parcel?")
    await choose_view(kim, "Mine", lang=lang)
    await expect(entries(kim)).to_have_count(0)

    await open_conversation(sam, "Ana", lang=lang)
    assignee = sam.page.get_by_label(say(lang, "Assignee"), exact=True)
    await expect(assignee).to_have_value("")  # unassigned
    await assignee.select_option(label="Kim")
    await expect(sam.page.get_by_text(say(lang, "Assigned to {name}.", name="Kim"))).to_be_visible()
    await expect(entry(sam, "Ana")).to_contain_text("Kim")
    await expect(entries(kim)).to_have_text(["Ana"])  # live, without a reload
    await expect(entry(kim, "Ana")).to_contain_text(say(lang, "You"))
    token = await stack.login("sam")
    assert (await conversation(stack, token, "ana"))["assignee"] == "kim"

    # Kim has it open too: the controls follow Sam's changes.
    await open_conversation(kim, "Ana", lang=lang)
    await expect(kim.page.get_by_label(say(lang, "Assignee"), exact=True)).to_have_value("kim")
    await assignee.select_option(label="Sam")
    await expect(kim.page.get_by_label(say(lang, "Assignee"), exact=True)).to_have_value("sam")
    await expect(entries(kim)).to_have_count(0)  # no longer Kim's
    await assignee.select_option(label=say(lang, "Unassigned"))
    await expect(kim.page.get_by_label(say(lang, "Assignee"), exact=True)).to_have_value("")
    assert (await conversation(stack, token, "ana"))["assignee"] is None
    assert_clean(sam, kim)


@pytest.mark.parametrize("lang", ["en", "es"])
async def test_a_resolved_conversation_opens_again_live_when_the_user_writes(
    ui: Browser, stack: Stack, lang: str
) -> None:
    sam = await admin_tab(ui, stack, "sam", "Sam", lang=lang)
    kim = await admin_tab(ui, stack, "kim", "Kim", lang=lang)
    ana = await user_tab(ui, "ana", "Ana", lang=lang)
    await send(ana, "My order is late.", lang=lang)
    await open_conversation(sam, "Ana", lang=lang)
    resolve, reopen = button(sam, "Resolve", lang=lang), button(sam, "Reopen", lang=lang)
    await expect(state_of(sam)).to_have_text(say(lang, "Open"))
    await expect(reopen).to_be_hidden()

    await resolve.click()
    await expect(state_of(sam)).to_have_text(say(lang, "Resolved"))
    await expect(resolve).to_be_hidden()
    await expect(reopen).to_be_focused()  # the keyboard is not left on nothing
    await expect(sam.page.get_by_text(say(lang, "Marked resolved."))).to_be_visible()
    await expect(entry(kim, "Ana")).to_contain_text(say(lang, "Resolved"))  # the other admin

    await send(ana, "Actually, one more thing.", lang=lang)
    await expect(entry(kim, "Ana")).to_contain_text(say(lang, "Open"))
    await expect(entry(kim, "Ana")).not_to_contain_text(say(lang, "Resolved"))
    await expect(state_of(sam)).to_have_text(say(lang, "Open"))
    await expect(resolve).to_be_visible()
    await expect(reopen).to_be_hidden()

    # By hand: resolved, then reopened.
    await resolve.click()
    await expect(entry(kim, "Ana")).to_contain_text(say(lang, "Resolved"))
    await reopen.click()
    await expect(entry(kim, "Ana")).to_contain_text(say(lang, "Open"))
    token = await stack.login("kim")
    assert (await conversation(stack, token, "ana"))["status"] == "open"
    await sam.shoot(f"inbox-open-{lang}")
    assert_clean(sam, kim, ana)


@pytest.mark.parametrize("lang", ["en", "es"])
async def test_snoozing_for_an_hour_and_until_tomorrow_morning(
    ui: Browser, stack: Stack, lang: str
) -> None:
    zone = "America/Mexico_City"
    sam = await admin_tab(ui, stack, lang=lang, timezone_id=zone)
    ana = await customer(stack, "ana", "Ana", "Please call me back next week.")
    token = await stack.login("sam")
    await open_conversation(sam, "Ana", lang=lang)
    snooze = button(sam, "Snooze", lang=lang)
    until = sam.page.get_by_label(say(lang, "Snooze until"), exact=True)
    await expect(until).to_have_value("1h")  # the default: a click snoozes for an hour

    await snooze.click()
    await expect(state_of(sam)).to_have_text(
        starts_with(say(lang, "Snoozed until {time}", time=""))
    )
    await expect(entry(sam, "Ana")).to_contain_text(say(lang, "Snoozed"))
    found = await conversation(stack, token, "ana")
    assert found["status"] == "snoozed"
    left = datetime.fromisoformat(found["snoozed_until"]) - datetime.now(UTC)
    assert timedelta(minutes=58) < left <= timedelta(hours=1), left
    reopen = button(sam, "Reopen", lang=lang)
    await expect(reopen).to_be_visible()
    await reopen.click()
    await expect(state_of(sam)).to_have_text(say(lang, "Open"))
    assert (await conversation(stack, token, "ana"))["snoozed_until"] is None

    await until.select_option(label=say(lang, "Tomorrow at 9:00"))
    await snooze.click()
    await expect(entry(sam, "Ana")).to_contain_text(say(lang, "Snoozed"))
    found = await conversation(stack, token, "ana")
    there = datetime.fromisoformat(found["snoozed_until"]).astimezone(ZoneInfo(zone))
    tomorrow = datetime.now(ZoneInfo(zone)).date() + timedelta(days=1)
    assert (there.date(), there.hour, there.minute) == (tomorrow, 9, 0), there

    # A message from the user wakes it.
    await write(ana, "Sooner, actually.")
    await expect(state_of(sam)).to_have_text(say(lang, "Open"))
    assert_clean(sam)


@pytest.mark.parametrize("lang", ["en", "es"])
async def test_labels_are_saved_with_enter_and_refused_with_the_servers_reason(
    ui: Browser, stack: Stack, lang: str
) -> None:
    sam = await admin_tab(ui, stack, lang=lang)
    kim = await admin_tab(ui, stack, "kim", "Kim", lang=lang)
    await customer(stack, "ana", "Ana", "I was charged twice.")
    token = await stack.login("sam")
    await open_conversation(sam, "Ana", lang=lang)
    labels = sam.page.get_by_label(say(lang, "Labels"), exact=True)

    await labels.fill("Billing, VIP, billing")
    await labels.press("Enter")
    await expect(sam.page.get_by_text(say(lang, "Labels saved."))).to_be_visible()
    await expect(labels).to_have_value("billing, vip")
    assert (await conversation(stack, token, "ana"))["labels"] == ["billing", "vip"]
    await expect(entry(sam, "Ana")).to_contain_text("billing, vip")
    await expect(entry(kim, "Ana")).to_contain_text("billing, vip")  # live

    await labels.fill("billing, two words")
    await labels.press("Enter")
    refusal = sam.page.locator("#team-result")
    await expect(refusal).to_have_attribute("role", "status")
    await expect(refusal).to_contain_text("a-z")  # the server's own words
    await expect(labels).to_have_value("billing, two words")  # kept for correcting
    assert (await conversation(stack, token, "ana"))["labels"] == ["billing", "vip"]

    # Another admin's change reaches the box (when it is not being edited).
    await labels.fill("")
    await labels.press("Enter")
    await expect(labels).to_have_value("")
    await open_conversation(kim, "Ana", lang=lang)
    kim_labels = kim.page.get_by_label(say(lang, "Labels"), exact=True)
    await expect(kim_labels).to_have_value("")
    await patch(stack, token, "ana", {"labels": ["urgent"]})
    await expect(kim_labels).to_have_value("urgent")
    await expect(labels).to_have_value("urgent")
    assert_clean(kim)
    # The refused PATCH is the one error in the console: Chromium logs every 400.
    assert len(sam.errors) == 1 and "400 (Bad Request)" in sam.errors[0], sam.errors
    assert sam.dialogs == []


# -- private notes ------------------------------------------------------------------------


@pytest.mark.parametrize("lang", ["en", "es"])
async def test_a_private_note_is_shown_to_admins_only_and_distinctly(
    ui: Browser, stack: Stack, lang: str
) -> None:
    sam = await admin_tab(ui, stack, lang=lang)
    kim = await admin_tab(ui, stack, "kim", "Kim", lang=lang)
    ana = await user_tab(ui, "ana", "Ana", lang=lang)
    listener = await stack.connect(await stack.login("ana"))  # what reaches the user's sockets
    await send(ana, "Hello, I need help.", lang=lang)
    await open_conversation(sam, "Ana", lang=lang)
    await open_conversation(kim, "Ana", lang=lang)

    note = sam.page.get_by_label(say(lang, "Private note"), exact=True)
    await note.check()
    await send(sam, "VIP customer: refund without questions.", lang=lang)
    await asyncio.sleep(0.5)  # a "typing" would have come by now
    assert [e for e in listener.got("typing") if e["from"] == "sam"] == []  # no "Sam is typing…"
    for tab in (sam, kim):
        shown = tab.page.get_by_role("log").locator("li", has_text="VIP customer")
        await expect(shown).to_have_class(re.compile(r"\bprivate\b"))
        await expect(shown).to_contain_text(say(lang, "Private note"))
    await note.uncheck()
    await send(sam, "Hello Ana, I am on it.", lang=lang)

    log = ana.page.get_by_role("log")
    await expect(log.locator("li.theirs")).to_have_text([re.compile("Hello Ana, I am on it.")])
    await expect(log).not_to_contain_text("VIP customer")
    await expect(log.locator(".private")).to_have_count(0)
    await ana.page.reload()
    await expect(log.locator("li")).to_have_count(2)
    await expect(log).not_to_contain_text("VIP customer")
    await listener.wait_for("mensaje_privado", count=2)  # its own message and the reply
    assert [m["text"] for m in listener.got("mensaje_privado")] == [
        "Hello, I need help.",
        "Hello Ana, I am on it.",
    ]

    # In the history of the admins' page too, after a reload, and the list's preview says so.
    await kim.page.reload()
    await open_conversation(kim, "Ana", lang=lang)
    shown = kim.page.get_by_role("log").locator("li.private")
    await expect(shown).to_have_count(1)
    await expect(shown).to_contain_text(say(lang, "Private note"))
    await sam.shoot(f"inbox-note-{lang}")
    assert_clean(sam, kim, ana)


async def test_a_note_written_offline_is_still_a_note_after_a_reload(
    ui: Browser, stack: Stack
) -> None:
    sam = await admin_tab(ui, stack)
    ana = await user_tab(ui, "ana", "Ana")
    await send(ana, "Hello")
    page = sam.page
    await open_conversation(sam, "Ana")
    await page.context.set_offline(True)
    await expect(page.get_by_role("status").first).to_have_text("Connection lost. Reconnecting…")
    await page.get_by_label("Private note", exact=True).check()
    box = page.get_by_label("Message", exact=True)
    await box.fill("Written offline: check her last invoice.")
    await box.press("Enter")
    pending = page.get_by_role("log").locator("li.mine")
    await expect(pending).to_contain_text("Waiting for the connection…")
    await expect(pending).to_contain_text("Private note")

    await page.route(SOCKET, lambda route: route.abort())
    await page.context.set_offline(False)
    await page.reload()
    await open_conversation(sam, "Ana")
    await expect(page.get_by_label("Private note", exact=True)).not_to_be_checked()
    await expect(pending).to_have_class(re.compile(r"\bprivate\b"))
    await expect(pending).to_contain_text("Private note")
    await page.unroute(SOCKET)
    await expect(pending).to_contain_text("Sent", timeout=RECONNECT_MS)

    stored = await messages(stack, await stack.login("sam"), "ana")
    assert [(m["text"], m["note"]) for m in stored] == [
        ("Hello", False),
        ("Written offline: check her last invoice.", True),
    ]
    assert [m["text"] for m in await messages(stack, await stack.login("ana"))] == ["Hello"]
    await ana.page.reload()
    await expect(ana.page.get_by_role("log").locator("li")).to_have_count(1)
    assert_clean(ana)


# -- availability and auto-assignment -----------------------------------------------------


@pytest.mark.parametrize("lang", ["en", "es"])
async def test_the_available_switch_is_what_the_team_sees(
    ui: Browser, stack: Stack, lang: str
) -> None:
    sam = await admin_tab(ui, stack, lang=lang)
    token = await stack.login("sam")
    switch = sam.page.get_by_role("switch", name=say(lang, "Available"), exact=True)
    await expect(switch).to_be_checked()  # available by default

    async def available() -> bool:
        assert stack.http is not None
        r = await stack.http.get("/api/admins", headers=bearer(token))
        assert r.status_code == 200, r.text
        return bool(next(a for a in r.json()["admins"] if a["user"] == "sam")["available"])

    async def is_(wanted: bool) -> None:
        assert await available() is wanted

    await switch.click()
    await expect(switch).not_to_be_checked()
    await eventually(lambda: is_(False))
    await sam.page.reload()
    await expect(switch).not_to_be_checked()
    await switch.press("Space")  # the keyboard works it too
    await expect(switch).to_be_checked()
    await eventually(lambda: is_(True))
    assert_clean(sam)


async def test_auto_assignment_puts_a_new_conversation_in_mine_live(
    ui: Browser, make_stack: StackFactory
) -> None:
    ui.stack = stack = await make_stack(auto_assign="round_robin")
    sam = await admin_tab(ui, stack)
    await choose_view(sam, "Mine")
    await expect(entries(sam)).to_have_count(0)

    await customer(stack, "ana", "Ana", "Hello, anyone there?")
    await expect(entries(sam)).to_have_text(["Ana"])  # without a reload
    await expect(entry(sam, "Ana")).to_contain_text("You")
    await expect(entry(sam, "Ana")).to_contain_text("1 unread")
    await open_conversation(sam, "Ana")
    await expect(sam.page.get_by_label("Assignee", exact=True)).to_have_value("sam")
    assert_clean(sam)


# -- canned responses, and the whole round ------------------------------------------------


async def add_canned(stack: Stack, token: str, shortcut: str, text: str) -> None:
    assert stack.http is not None
    r = await stack.http.post(
        "/api/canned-responses", json={"shortcut": shortcut, "text": text}, headers=bearer(token)
    )
    assert r.status_code == 201, r.text


@pytest.mark.parametrize("lang", ["en", "es"])
async def test_a_full_round_auto_assigned_answered_with_a_canned_response_noted_resolved_reopened(
    ui: Browser, make_stack: StackFactory, lang: str
) -> None:
    ui.stack = stack = await make_stack(auto_assign="round_robin")
    token = await stack.register("ava", "Ava", admin=True)
    greeting = "Hello {{name}}, thanks for writing. How can I help?"
    await add_canned(stack, token, "greeting", greeting)
    await add_canned(stack, token, "refund", "{{name}}, your refund is on its way.")
    await add_canned(stack, token, "bye", "Goodbye!")
    ava = await ui.tab(locale=LOCALES[lang])
    await log_in(ava, "ava", lands_on="/admin", lang=lang)
    await choose_view(ava, "Mine", lang=lang)
    ana = await user_tab(ui, "ana", "Ana García", lang=lang)

    # The user writes; auto-assignment gives it to Ava, whose Mine shows it without a reload.
    await send(ana, "My parcel never arrived.", lang=lang)
    await expect(entries(ava)).to_have_text(["Ana García"])
    await open_conversation(ava, "Ana García", lang=lang)
    await expect(ava.page.get_by_label(say(lang, "Assignee"), exact=True)).to_have_value("ava")

    # "/" offers the canned responses by shortcut; arrows choose, Enter inserts.
    page = ava.page
    box = page.get_by_label(say(lang, "Message"), exact=True)
    picker = page.get_by_role("listbox", name=say(lang, "Canned responses"), exact=True)
    options = picker.get_by_role("option")
    await box.press_sequentially("/")
    await expect(options).to_have_count(3)
    await expect(options.first).to_contain_text("/bye")  # by shortcut
    await box.press_sequentially("re")  # "refund" starts so, "greeting" has it inside
    await expect(options).to_have_count(2)
    await expect(options.nth(0)).to_contain_text("/refund")
    await expect(options.nth(0)).to_have_attribute("aria-selected", "true")
    await expect(options.nth(1)).to_contain_text("Hello Ana García, thanks for writing.")
    await box.press("ArrowDown")
    await expect(options.nth(1)).to_have_attribute("aria-selected", "true")
    chosen = await options.nth(1).get_attribute("id")
    await expect(box).to_have_attribute("aria-activedescendant", str(chosen))
    # Tab.shoot would take the focus away, which closes the picker.
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=SCREENSHOTS / f"inbox-canned-{lang}.png")
    await box.press("Enter")
    await expect(picker).to_be_hidden()
    await expect(box).to_have_value("Hello Ana García, thanks for writing. How can I help?")
    await expect(box).to_be_focused()
    await box.press("Enter")  # now it is sent
    answer = ana.page.get_by_role("log").locator("li.theirs")
    await expect(answer).to_contain_text("Hello Ana García, thanks for writing. How can I help?")

    # Escape closes it and "/x" stays as typed; Tab inserts too, after other text.
    await box.press_sequentially("/gr")
    await expect(options).to_have_count(1)
    await box.press("Escape")
    await expect(picker).to_be_hidden()
    await expect(box).to_have_value("/gr")
    await box.fill("")
    await box.press_sequentially("Thanks. /by")
    await box.press("Tab")
    await expect(box).to_have_value("Thanks. Goodbye!")
    await expect(box).to_be_focused()
    await box.fill("")

    # A private note, then resolved.
    note = page.get_by_label(say(lang, "Private note"), exact=True)
    await note.check()
    await send(ava, "Courier says it was left at the door.", lang=lang)
    await note.uncheck()
    await button(ava, "Resolve", lang=lang).click()
    await expect(state_of(ava)).to_have_text(say(lang, "Resolved"))
    await expect(entry(ava, "Ana García")).to_contain_text(say(lang, "Resolved"))

    # The user writes again: open again, still Ava's, live.
    await send(ana, "It is not at my door.", lang=lang)
    await expect(state_of(ava)).to_have_text(say(lang, "Open"))
    await expect(entry(ava, "Ana García")).to_contain_text(say(lang, "Open"))
    await expect(page.get_by_label(say(lang, "Assignee"), exact=True)).to_have_value("ava")
    await expect(ana.page.get_by_role("log")).not_to_contain_text("Courier says")
    assert (await conversation(stack, token, "ana"))["assignee"] == "ava"

    # The report counts the round: two openings, one resolution.
    assert stack.http is not None
    r = await stack.http.get("/api/reports", headers=bearer(token))
    assert r.status_code == 200, r.text
    report = r.json()
    assert (report["conversations_opened"], report["conversations_resolved"]) == (2, 1), report
    assert_clean(ava, ana)
