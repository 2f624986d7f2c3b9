"""The message box and what becomes of what is typed in it: a counter near the length limit, a
message (never a silent cut) past it or for a blank message, in English and Spanish; the outbox
that keeps messages written offline across a reload and sends each once, in order, when the
socket is back; drafts kept per user (and per conversation on /admin), forgotten at logout."""

from __future__ import annotations

import re

import pytest

from tests.browser.conftest import Browser, Tab
from tests.browser.helpers import (
    admin_tab,
    assert_clean,
    number,
    open_conversation,
    say,
    send,
    user_tab,
)
from tests.conftest import Stack, StackFactory

try:
    from playwright.async_api import expect
except ImportError:  # the conftest skips (or fails under REQUIRE_SERVICES) before any test runs
    pass

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("make_stack", ["sqlite"], indirect=True)]

MAX = 4000  # MSG_MAX_CHARS's default, which the test server keeps
SOCKET = "**/socket.io/**"
RECONNECT_MS = 15_000  # the client retries with a growing delay of up to 5 s (and a jitter)


def counter(lang: str, count: int) -> str:
    return f"{number(lang, count)} / {number(lang, MAX)}"


def too_long(lang: str, count: int) -> str:
    return say(
        lang,
        "Too long: {count} characters, and the limit is {max}. Shorten it to send it.",
        count=number(lang, count),
        max=number(lang, MAX),
    )


async def stored_texts(stack: Stack, user: str) -> list[str]:
    """Every message of `user`'s conversation as the server stored it, oldest first."""
    assert stack.http is not None
    token = await stack.login("sam")
    r = await stack.http.get(
        "/api/messages",
        params={"with": user, "limit": "200"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert r.status_code == 200, r.text
    return [m["text"] for m in r.json()["messages"]]


# -- the length limit ---------------------------------------------------------------------


@pytest.mark.parametrize("lang", ["en", "es"])
async def test_the_chat_counts_near_the_limit_and_refuses_past_it_without_cutting(
    ui: Browser, stack: Stack, lang: str
) -> None:
    admin = await admin_tab(ui, stack)
    user = await user_tab(ui, "ana", "Ana", lang=lang)
    page = user.page
    box = page.get_by_label(say(lang, "Message"), exact=True)
    log = page.get_by_role("log")

    await box.fill("a" * (MAX * 9 // 10))
    await expect(page.get_by_text(f" / {number(lang, MAX)}")).to_be_hidden()
    await box.fill("a" * 3950)
    await expect(page.get_by_text(counter(lang, 3950), exact=True)).to_be_visible()

    # A 10,000-character paste stays whole in the box and is not sent.
    pasted = "0123456789" * 1000
    await box.fill(pasted)
    await expect(box).to_have_value(pasted)
    await expect(page.get_by_text(counter(lang, 10_000), exact=True)).to_be_visible()
    await box.press("Enter")
    await expect(page.get_by_role("alert")).to_have_text(too_long(lang, 10_000))
    await expect(box).to_have_value(pasted)
    await expect(box).to_have_attribute("aria-invalid", "true")
    await user.shoot(f"too-long-{lang}")
    # The Send button refuses the same way.
    await page.get_by_role("button", name=say(lang, "Send"), exact=True).click()
    await expect(page.get_by_role("alert")).to_have_text(too_long(lang, 10_000))

    # Only spaces: a message, not silence.
    await box.fill("   \n  ")
    await box.press("Enter")
    await expect(page.get_by_role("alert")).to_have_text(say(lang, "Write a message first."))
    await expect(box).to_have_value("   \n  ")

    # Characters are counted as the server counts them: an emoji is one, not two.
    at_limit = "a" * (MAX - 1) + "😀"
    await box.fill(at_limit)
    await expect(page.get_by_text(counter(lang, MAX), exact=True)).to_be_visible()
    await box.press("Enter")
    await expect(page.get_by_role("alert")).to_be_hidden()
    await expect(log.locator("li.mine")).to_have_count(1)
    await expect(log.locator("li.mine")).to_contain_text(say(lang, "Sent"))
    await expect(page.get_by_text(counter(lang, MAX))).to_be_hidden()
    assert await stored_texts(stack, "ana") == [at_limit]
    assert_clean(admin, user)


@pytest.mark.parametrize("lang", ["en", "es"])
async def test_the_inbox_refuses_a_reply_or_announcement_past_the_limit_without_cutting(
    ui: Browser, stack: Stack, lang: str
) -> None:
    admin = await admin_tab(ui, stack, lang=lang)
    user = await user_tab(ui, "ana", "Ana", lang=lang)
    await send(user, "Hello", lang=lang)
    await open_conversation(admin, "Ana", lang=lang)
    page = admin.page
    box = page.get_by_label(say(lang, "Message"), exact=True)

    reply = "b" * (MAX + 1)
    await box.fill(reply)
    await expect(page.get_by_text(counter(lang, MAX + 1), exact=True)).to_be_visible()
    await box.press("Enter")
    await expect(page.get_by_role("alert")).to_have_text(too_long(lang, MAX + 1))
    await expect(box).to_have_value(reply)
    await box.fill(" ")
    await page.get_by_role("button", name=say(lang, "Send"), exact=True).click()
    await expect(page.get_by_role("alert")).to_have_text(say(lang, "Write a message first."))

    announcement = page.get_by_label(say(lang, "Announcement"), exact=True)
    await announcement.fill("c" * (MAX + 1))
    await expect(page.get_by_text(counter(lang, MAX + 1), exact=True)).to_be_visible()
    await page.get_by_role("button", name=say(lang, "Announce"), exact=True).click()
    await expect(page.get_by_text(too_long(lang, MAX + 1))).to_be_visible()
    await expect(announcement).to_have_value("c" * (MAX + 1))
    await announcement.fill("  ")
    await page.get_by_role("button", name=say(lang, "Announce"), exact=True).click()
    await expect(page.get_by_text(say(lang, "Write the announcement first."))).to_be_visible()
    await admin.shoot(f"admin-too-long-{lang}")

    # Nothing of it went anywhere: the one message after it is the first the user gets.
    await box.fill("Thanks, Ana.")
    await box.press("Enter")
    await expect(user.page.get_by_role("log").locator("li.theirs")).to_have_count(1)
    await expect(user.page.get_by_role("log").locator("li.theirs")).to_contain_text("Thanks, Ana.")
    await expect(user.page.locator("#announcement")).to_be_hidden()
    assert await stored_texts(stack, "ana") == ["Hello", "Thanks, Ana."]
    assert_clean(admin, user)


# -- the outbox ---------------------------------------------------------------------------


async def go_offline(tab: Tab, *, lang: str = "en") -> None:
    await tab.page.context.set_offline(True)
    await expect(tab.page.get_by_role("status").first).to_have_text(
        say(lang, "Connection lost. Reconnecting…")
    )


@pytest.mark.parametrize("lang", ["en", "es"])
async def test_messages_written_offline_survive_a_reload_and_arrive_once_in_order(
    ui: Browser, stack: Stack, lang: str
) -> None:
    admin = await admin_tab(ui, stack, lang=lang)
    user = await user_tab(ui, "ana", "Ana", lang=lang)
    page = user.page
    box = page.get_by_label(say(lang, "Message"), exact=True)
    mine = page.get_by_role("log").locator("li.mine")
    await send(user, "Hello", lang=lang)

    await go_offline(user, lang=lang)
    for text in ("First, written offline", "Second, written offline"):
        await box.fill(text)
        await box.press("Enter")
        await expect(box).to_have_value("")
    await expect(mine).to_have_count(3)
    for i in (1, 2):
        await expect(mine.nth(i)).to_contain_text(say(lang, "Waiting for the connection…"))
    await box.fill("A draft, not sent yet")
    await user.shoot(f"outbox-offline-{lang}")

    # Pages load again, but the socket cannot connect: the reload starts from storage alone.
    await page.route(SOCKET, lambda route: route.abort())
    await page.context.set_offline(False)
    await page.reload()
    await expect(box).to_have_value("A draft, not sent yet")
    await expect(mine.locator(".text")).to_have_text(
        ["Hello", "First, written offline", "Second, written offline"]
    )
    for i in (1, 2):
        await expect(mine.nth(i)).to_contain_text(say(lang, "Waiting for the connection…"))
    await expect(page.get_by_text(say(lang, "Not sent"))).to_have_count(0)

    await page.unroute(SOCKET)
    for i in (1, 2):
        await expect(mine.nth(i)).to_contain_text(say(lang, "Sent"), timeout=RECONNECT_MS)
    await expect(page.get_by_role("status").first).to_have_text(say(lang, "Connected"))
    await expect(box).to_have_value("A draft, not sent yet")

    await open_conversation(admin, "Ana", lang=lang)
    expected = ["Hello", "First, written offline", "Second, written offline"]
    await expect(admin.page.get_by_role("log").locator(".text")).to_have_text(expected)
    await page.reload()
    await expect(mine.locator(".text")).to_have_text(expected)
    assert await stored_texts(stack, "ana") == expected
    assert_clean(admin)


async def test_two_tabs_sending_the_same_outbox_store_each_message_once(
    ui: Browser, stack: Stack
) -> None:
    await stack.register("sam", "Sam", admin=True)
    first = await user_tab(ui, "ana", "Ana")
    second = await first.page.context.new_page()  # same storage, its own socket
    await second.goto("/chat")
    await expect(second.get_by_role("status").first).to_have_text("Connected")

    await go_offline(first)
    box = first.page.get_by_label("Message", exact=True)
    texts = [f"Written offline, {n}" for n in ("one", "two", "three")]
    for text in texts:
        await box.fill(text)
        await box.press("Enter")
    await first.page.context.set_offline(False)  # both tabs reconnect and send the outbox
    for page in (first.page, second):
        await expect(page.get_by_role("log").locator(".text")).to_have_text(
            texts, timeout=RECONNECT_MS
        )
    assert await stored_texts(stack, "ana") == texts


async def test_a_reply_written_offline_on_the_inbox_keeps_its_conversation_and_draft(
    ui: Browser, stack: Stack
) -> None:
    admin = await admin_tab(ui, stack)
    ana = await user_tab(ui, "ana", "Ana")
    ben = await user_tab(ui, "ben", "Ben")
    await send(ana, "Hello from Ana")
    await send(ben, "Hello from Ben")
    page = admin.page
    box = page.get_by_label("Message", exact=True)

    await open_conversation(admin, "Ana")
    await go_offline(admin)
    await box.fill("Ana, your parcel left today.")
    await box.press("Enter")
    await box.fill("A draft for Ana")
    await open_conversation(admin, "Ben")
    await expect(box).to_have_value("")
    await box.fill("A draft for Ben")
    await page.route(SOCKET, lambda route: route.abort())
    await page.context.set_offline(False)
    await page.reload()
    await open_conversation(admin, "Ana")
    await expect(box).to_have_value("A draft for Ana")
    reply = page.get_by_role("log").locator("li.mine")
    await expect(reply).to_contain_text("Waiting for the connection…")
    await page.unroute(SOCKET)

    theirs = ana.page.get_by_role("log").locator("li.theirs")
    await expect(theirs).to_contain_text("Ana, your parcel left today.", timeout=RECONNECT_MS)
    await expect(reply).to_contain_text("Sent")
    await open_conversation(admin, "Ben")
    await expect(box).to_have_value("A draft for Ben")
    await expect(page.get_by_role("log").locator("li.mine")).to_have_count(0)
    assert await stored_texts(stack, "ana") == ["Hello from Ana", "Ana, your parcel left today."]
    assert await stored_texts(stack, "ben") == ["Hello from Ben"]
    assert_clean(ana, ben)


async def test_rate_limited_messages_are_sent_again_by_themselves_in_order(
    ui: Browser, make_stack: StackFactory
) -> None:
    ui.stack = await make_stack(msg_rate=2.0, msg_burst=1)
    user = await user_tab(ui, "ana", "Ana")
    box = user.page.get_by_label("Message", exact=True)
    texts = [f"Message {i}" for i in range(1, 5)]
    for text in texts:
        await box.fill(text)
        await box.press("Enter")
    mine = user.page.get_by_role("log").locator("li.mine")
    await expect(mine.locator(".state")).to_have_text(["Sent"] * 4, timeout=10_000)
    await ui.stack.register("sam", "Sam", admin=True)
    assert await stored_texts(ui.stack, "ana") == texts
    assert_clean(user)


async def test_a_message_the_server_refuses_says_why_and_is_not_sent_again(
    ui: Browser, stack: Stack
) -> None:
    admin = await admin_tab(ui, stack)
    user = await user_tab(ui, "ana", "Ana")
    page = user.page
    await send(user, "Hello")
    # Text the server refuses for good: a lone surrogate (a broken paste), not valid Unicode.
    await page.get_by_label("Message", exact=True).evaluate("(box) => { box.value = 'x\\ud800'; }")
    await page.get_by_label("Message", exact=True).press("Enter")
    refused = page.get_by_role("log").locator("li.mine").last
    await expect(refused).to_contain_text(re.compile(r"Not sent: \S"))
    await send(user, "After it")
    await page.reload()
    await expect(page.get_by_role("log").locator(".text")).to_have_text(["Hello", "After it"])
    await page.wait_for_timeout(500)  # an outbox that still held it would send it now
    assert await stored_texts(stack, "ana") == ["Hello", "After it"]
    assert_clean(admin, user)


async def test_logging_out_forgets_the_users_outbox_and_drafts(ui: Browser, stack: Stack) -> None:
    user = await user_tab(ui, "ana", "Ana")
    page = user.page
    await page.get_by_label("Message", exact=True).fill("A draft")
    await page.reload()
    await expect(page.get_by_label("Message", exact=True)).to_have_value("A draft")
    await page.get_by_role("button", name="Log out", exact=True).click()
    await expect(page).to_have_url(re.compile(r"/login$"))
    assert await page.evaluate("() => Object.keys(localStorage)") == []
    assert_clean(user)
