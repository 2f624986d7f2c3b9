"""The inbox's details: the one role button that applies, times without a leading zero, and on
a phone no empty conversation panel under the list."""

from __future__ import annotations

import re

import pytest

from tests.browser.conftest import Browser
from tests.browser.helpers import (
    admin_tab,
    assert_clean,
    open_conversation,
    say,
    send,
    timezone_at_hour,
    user_tab,
)
from tests.conftest import Stack

try:
    from playwright.async_api import expect
except ImportError:  # the conftest skips (or fails under REQUIRE_SERVICES) before any test runs
    pass

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("make_stack", ["sqlite"], indirect=True)]


@pytest.mark.parametrize("lang", ["en", "es"])
async def test_the_inbox_offers_only_the_role_change_that_applies(
    ui: Browser, stack: Stack, lang: str
) -> None:
    admin = await admin_tab(ui, stack, lang=lang)
    user = await user_tab(ui, "ana", "Ana", lang=lang)
    await send(user, "Hello", lang=lang)
    await open_conversation(admin, "Ana", lang=lang)
    page = admin.page
    make_admin = page.get_by_role("button", name=say(lang, "Make admin"), exact=True)
    make_user = page.get_by_role("button", name=say(lang, "Make user"), exact=True)
    await expect(make_admin).to_be_visible()
    await expect(make_user).to_be_hidden()

    await make_admin.click()
    await expect(page.get_by_text(say(lang, "{name} is now an admin.", name="Ana"))).to_be_visible()
    await expect(make_admin).to_be_hidden()
    await expect(make_user).to_be_visible()
    await expect(make_user).to_be_focused()  # the keyboard user is not left on nothing

    await page.reload()  # the role now comes from the conversations list
    await open_conversation(admin, "Ana", lang=lang)
    await expect(make_user).to_be_visible()
    await expect(make_admin).to_be_hidden()
    await make_user.click()
    await expect(page.get_by_text(say(lang, "{name} is now a user.", name="Ana"))).to_be_visible()
    await expect(make_admin).to_be_visible()
    await expect(make_user).to_be_hidden()
    assert_clean(admin)


@pytest.mark.parametrize(
    ("lang", "shape"),
    [("en", r"^[78]:\d\d\sAM$"), ("es", r"^[78]:\d\d$")],
)
async def test_times_have_no_leading_zero(ui: Browser, stack: Stack, lang: str, shape: str) -> None:
    zone = timezone_at_hour(7)
    admin = await admin_tab(ui, stack, lang=lang, timezone_id=zone)
    user = await user_tab(ui, "ana", "Ana", lang=lang, timezone_id=zone)
    await send(user, "Good morning", lang=lang)
    await open_conversation(admin, "Ana", lang=lang)
    for tab in (user, admin):
        await expect(tab.page.get_by_role("log").locator("time")).to_have_text(re.compile(shape))
    assert_clean(admin, user)


async def test_on_a_phone_the_inbox_has_no_empty_panel_until_a_conversation_opens(
    ui: Browser, stack: Stack
) -> None:
    admin = await admin_tab(ui, stack, width=360, height=740)
    user = await user_tab(ui, "ana", "Ana")
    await send(user, "Hello from my phone")
    page = admin.page
    entry = page.get_by_role("list").get_by_role("button", name=re.compile("^Ana"))
    await expect(entry).to_be_visible()
    await expect(page.get_by_role("heading", name="No conversation open")).to_be_hidden()
    await expect(page.get_by_label("Message", exact=True)).to_be_hidden()
    await admin.shoot("admin-phone-list")

    await open_conversation(admin, "Ana")
    await expect(page.get_by_role("log")).to_contain_text("Hello from my phone")
    await expect(page.get_by_label("Message", exact=True)).to_be_visible()
    await admin.shoot("admin-phone-open")
    assert_clean(admin, user)
