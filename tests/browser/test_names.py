"""People are shown by display name: a customer never sees a staff login name, not on the
team's replies, not on announcements, not while the team is typing; in English and Spanish."""

from __future__ import annotations

import pytest

from tests.browser.conftest import Browser
from tests.browser.helpers import (
    admin_tab,
    assert_clean,
    open_conversation,
    say,
    send,
    user_tab,
)
from tests.conftest import Stack

try:
    from playwright.async_api import expect
except ImportError:  # the conftest skips (or fails under REQUIRE_SERVICES) before any test runs
    pass

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("make_stack", ["sqlite"], indirect=True)]


@pytest.mark.parametrize("lang", ["en", "es"])
async def test_the_customer_sees_the_team_by_display_name_never_by_login(
    ui: Browser, stack: Stack, lang: str
) -> None:
    boss = await admin_tab(ui, stack, "boss", "Support lead", lang=lang)
    user = await user_tab(ui, "ana", "Ana", lang=lang)
    page = user.page
    await send(user, "Hello? My parcel is late.", lang=lang)
    await open_conversation(boss, "Ana", lang=lang)
    box = boss.page.get_by_label(say(lang, "Message"), exact=True)
    typing = page.locator("#typing")

    # Typing carries the display name too: the admin is named from the first keystroke.
    await box.fill("Hi Ana, let me check.")
    await expect(typing).to_have_text(say(lang, "{name} is typing…", name="Support lead"))
    await box.press("Enter")
    reply = page.get_by_role("log").locator("li.theirs")
    await expect(reply).to_contain_text("Hi Ana, let me check.")
    await expect(reply.locator(".sender")).to_have_text("Support lead")
    await expect(typing).to_have_text("")

    await box.fill("It is at the depot.")
    await expect(typing).to_have_text(say(lang, "{name} is typing…", name="Support lead"))
    await box.press("Enter")
    await expect(reply).to_have_count(2)

    await boss.page.get_by_label(say(lang, "Announcement"), exact=True).fill("Back at 9.")
    await boss.page.get_by_role("button", name=say(lang, "Announce"), exact=True).click()
    shown = page.locator("#announcement")
    await expect(shown).to_contain_text(say(lang, "Announcement from {name}", name="Support lead"))
    await expect(shown).to_contain_text("Back at 9.")
    await user.shoot(f"chat-display-names-{lang}")
    assert "boss" not in (await page.locator("body").inner_text()).lower()

    # History after a reload: the same names.
    await page.reload()
    await expect(reply.locator(".sender")).to_have_text(["Support lead", "Support lead"])
    assert "boss" not in (await page.locator("body").inner_text()).lower()

    # Another admin's inbox names the reply by display name too, in the log and the list.
    sam = await admin_tab(ui, stack, "sam", "Sam", lang=lang)
    entry = sam.page.get_by_role("list").locator(".preview")
    await expect(entry).to_have_text("Support lead: It is at the depot.")
    await open_conversation(sam, "Ana", lang=lang)
    senders = sam.page.get_by_role("log").locator(".sender")
    await expect(senders).to_have_text(["Ana", "Support lead", "Support lead"])
    assert_clean(boss, user, sam)
