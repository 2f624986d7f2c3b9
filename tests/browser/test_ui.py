"""The pages in a real browser (headless Chromium) against a real server: forms, live messages
both ways, history, text never taken as markup, Spanish labels, CSP, logout, announcements.
Screenshots go to artifacts/screenshots/; `UPDATE_SCREENSHOTS=1` also refreshes the README's
docs/screenshots/."""

from __future__ import annotations

import re

import pytest

from tests.browser.conftest import Browser
from tests.browser.helpers import (
    admin_tab,
    assert_clean,
    log_in,
    open_conversation,
    register,
    send,
    starts_with,
)
from tests.conftest import PASSWORD, Stack

try:
    from playwright.async_api import expect
except ImportError:  # the conftest skips (or fails under REQUIRE_SERVICES) before any test runs
    pass

# Browser tests run on SQLite: the database is not what they test.
pytestmark = [pytest.mark.slow, pytest.mark.parametrize("make_stack", ["sqlite"], indirect=True)]

PAYLOAD = "<img src=x onerror=alert(1)><script>alert(2)</script>"


async def test_registering_through_the_form_lands_on_the_empty_chat(ui: Browser) -> None:
    tab = await ui.tab()
    await tab.page.goto("/register")
    await tab.shoot("register")
    await register(tab, "ana", "Ana García")

    page = tab.page
    await expect(page.get_by_role("log")).to_be_empty()
    await expect(page.get_by_text("No messages yet.")).to_be_visible()
    await expect(page.get_by_label("Message", exact=True)).to_be_editable()
    await expect(page.get_by_role("button", name="Send", exact=True)).to_be_visible()
    assert_clean(tab)


async def test_admin_logging_in_through_the_form_lands_on_the_inbox(
    ui: Browser, stack: Stack
) -> None:
    await stack.register("sam", "Sam", admin=True)
    tab = await ui.tab()
    await tab.page.goto("/login")
    await tab.shoot("login")
    await log_in(tab, "sam", lands_on="/admin")

    page = tab.page
    await expect(page.get_by_role("navigation", name="Conversations")).to_be_visible()
    await expect(page.get_by_text("No conversations yet.")).to_be_visible()
    await expect(page.get_by_label("Announcement", exact=True)).to_be_editable()
    await expect(page.get_by_role("button", name="Announce", exact=True)).to_be_visible()
    assert_clean(tab)


async def test_wrong_password_stays_on_login_with_one_message(ui: Browser, stack: Stack) -> None:
    await stack.register("sam", "Sam", admin=True)
    tab = await ui.tab()
    page = tab.page
    await page.goto("/login")
    await page.get_by_label("Username", exact=True).fill("sam")
    await page.get_by_label("Password", exact=True).fill("not the password at all")
    await page.get_by_role("button", name="Log in", exact=True).click()
    await expect(page.get_by_role("alert")).to_have_text("Wrong user name or password.")
    await expect(page).to_have_url(re.compile(r"/login$"))
    await expect(page.get_by_label("Username", exact=True)).to_have_value("sam")


async def test_a_message_goes_live_from_chat_to_the_inbox_and_the_answer_comes_back(
    ui: Browser, stack: Stack
) -> None:
    admin = await admin_tab(ui, stack)
    user = await ui.tab()
    await register(user, "ana", "Ana García")

    await send(user, "Hi! My order #1042 has not arrived yet.")
    entry = admin.page.get_by_role("list").get_by_role("button", name=starts_with("Ana García"))
    await expect(entry).to_contain_text("1 unread")
    await expect(entry).to_contain_text("online")  # presence, read by screen readers
    await send(user, "It was due last Friday.")
    await expect(entry).to_contain_text("2 unread")

    await open_conversation(admin, "Ana García")
    log = admin.page.get_by_role("log")
    await expect(log.locator("li")).to_have_count(2)
    await expect(log).to_contain_text("Hi! My order #1042 has not arrived yet.")
    await expect(entry).not_to_contain_text("unread")

    await send(admin, "Sorry about that, Ana. Let me check with the courier.")
    answer = user.page.get_by_role("log").locator("li.theirs")
    await expect(answer).to_have_count(1)
    await expect(answer).to_contain_text("Sorry about that, Ana. Let me check with the courier.")
    await expect(answer.locator(".sender")).to_have_text("Sam")  # the display name
    await send(admin, "It is at the local depot and will be delivered tomorrow morning.")
    await expect(answer).to_have_count(2)
    await send(user, "Great, thank you!")
    await expect(log.locator("li")).to_have_count(5)
    await expect(log.locator("li").last).to_contain_text("Great, thank you!")

    # Another user writes meanwhile: a new entry on top, unread, while Ana's stays open.
    ben = await stack.connect(await stack.register("ben", "Ben Okafor"))
    ack = await ben.call("mensaje_privado", {"text": "Hello, how do I change my address?"})
    assert ack["ok"], ack
    other = admin.page.get_by_role("list").get_by_role("button", name=starts_with("Ben Okafor"))
    await expect(other).to_contain_text("1 unread")
    await expect(other).to_contain_text("online")
    await expect(admin.page.get_by_role("list").get_by_role("button").first).to_contain_text(
        "Ben Okafor"
    )
    await expect(log.locator("li")).to_have_count(5)

    await user.shoot("chat", docs=True)
    await admin.shoot("admin", docs=True)
    await user.page.set_viewport_size({"width": 390, "height": 844})
    await user.shoot("chat-phone", docs=True)
    assert_clean(admin, user)


async def test_reloading_the_chat_shows_the_history(ui: Browser, stack: Stack) -> None:
    admin = await admin_tab(ui, stack)
    user = await ui.tab()
    await register(user, "ana", "Ana")
    await send(user, "Is anyone there?")
    await open_conversation(admin, "Ana")
    await send(admin, "Yes, how can I help?")
    await expect(user.page.get_by_role("log").locator("li")).to_have_count(2)

    await user.page.reload()
    log = user.page.get_by_role("log")
    await expect(log.locator("li")).to_have_count(2)
    await expect(log.locator("li").first).to_contain_text("Is anyone there?")
    await expect(log.locator("li").last).to_contain_text("Yes, how can I help?")
    await expect(user.page.get_by_text("No messages yet.")).to_be_hidden()
    assert_clean(admin, user)


async def test_markup_in_a_message_is_shown_as_text_on_both_pages(
    ui: Browser, stack: Stack
) -> None:
    admin = await admin_tab(ui, stack)
    user = await ui.tab()
    await register(user, "mallory", "<b>Mallory</b>")
    await send(user, PAYLOAD)

    await open_conversation(admin, "<b>Mallory</b>")
    await send(admin, f"You wrote: {PAYLOAD}")
    for tab in (user, admin):
        log = tab.page.get_by_role("log")
        await expect(log.locator(".text")).to_have_text([PAYLOAD, f"You wrote: {PAYLOAD}"])
        await expect(log.locator("img, script, b")).to_have_count(0)
    await expect(admin.page.get_by_role("list").locator("b, img, script")).to_have_count(0)

    await user.page.reload()  # history, not only live events
    await expect(user.page.get_by_role("log").locator(".text").first).to_have_text(PAYLOAD)
    await expect(user.page.get_by_role("log").locator("img, script")).to_have_count(0)
    assert_clean(admin, user)


async def test_a_spanish_browser_gets_spanish_labels(ui: Browser) -> None:
    tab = await ui.tab(locale="es-ES")
    page = tab.page
    await page.goto("/login")
    await expect(page.get_by_label("Usuario", exact=True)).to_be_visible()
    await expect(page.get_by_label("Contraseña", exact=True)).to_be_visible()
    await expect(page.get_by_role("button", name="Iniciar sesión", exact=True)).to_be_visible()
    await expect(page.get_by_role("link", name="Registrarse", exact=True)).to_be_visible()
    await tab.shoot("login-es")

    await page.get_by_role("link", name="Registrarse", exact=True).click()
    await page.get_by_label("Usuario", exact=True).fill("lucia")
    await page.get_by_label("Nombre", exact=True).fill("Lucía")
    await page.get_by_label("Contraseña", exact=True).fill(PASSWORD)
    await page.get_by_role("button", name="Registrarse", exact=True).click()
    await expect(page).to_have_url(re.compile(r"/chat$"))
    await expect(page.get_by_label("Mensaje", exact=True)).to_be_editable()
    await expect(page.get_by_role("button", name="Enviar", exact=True)).to_be_visible()
    await expect(page.get_by_role("button", name="Cerrar sesión", exact=True)).to_be_visible()
    await expect(page.get_by_role("status").first).to_have_text("Conectado")
    assert_clean(tab)


async def test_every_page_has_a_strict_csp_and_runs_without_errors(
    ui: Browser, stack: Stack
) -> None:
    await stack.register("sam", "Sam", admin=True)
    user = await ui.tab()
    admin = await ui.tab()
    for tab, path in ((user, "/register"), (admin, "/login")):
        response = await tab.page.goto(path)
        assert_strict_csp(response, path)
    await register(user, "ana", "Ana")
    await log_in(admin, "sam", lands_on="/admin")
    for tab, path in ((user, "/chat"), (admin, "/admin")):
        response = await tab.page.goto(path)
        assert_strict_csp(response, path)
        await expect(tab.page.get_by_role("status").first).to_have_text("Connected")
    await send(user, "Checking that scripts run.")
    await expect(admin.page.get_by_role("list").get_by_role("button")).to_have_count(1)
    assert_clean(user, admin)


def assert_strict_csp(response: object, path: str) -> None:
    assert response is not None
    assert response.status == 200, path  # type: ignore[attr-defined]
    csp = response.headers.get("content-security-policy")  # type: ignore[attr-defined]
    assert csp, f"{path} has no Content-Security-Policy"
    directives = {d.split()[0]: d.split()[1:] for d in (p.strip() for p in csp.split(";")) if d}
    scripts = directives.get("script-src", directives.get("default-src"))
    assert scripts, f"{path}: no script-src in {csp!r}"
    assert "'unsafe-inline'" not in scripts, f"{path}: {csp!r}"
    assert "'unsafe-eval'" not in scripts, f"{path}: {csp!r}"


async def test_log_out_returns_to_login(ui: Browser) -> None:
    tab = await ui.tab()
    await register(tab, "ana", "Ana")
    page = tab.page
    await page.get_by_role("button", name="Log out", exact=True).click()
    await expect(page).to_have_url(re.compile(r"/login$"))
    await page.goto("/chat")
    await expect(page).to_have_url(re.compile(r"/login$"))
    await expect(page.get_by_role("button", name="Log in", exact=True)).to_be_visible()
    assert_clean(tab)


async def test_an_announcement_from_the_admin_appears_on_the_chat(
    ui: Browser, stack: Stack
) -> None:
    admin = await admin_tab(ui, stack, name="Sam Support")
    user = await ui.tab()
    await register(user, "ana", "Ana")

    await admin.page.get_by_label("Announcement", exact=True).fill("Maintenance at 22:00 UTC.")
    await admin.page.get_by_role("button", name="Announce", exact=True).click()
    await expect(admin.page.get_by_text("Announcement sent.")).to_be_visible()
    shown = user.page.locator("#announcement")
    await expect(shown).to_be_visible()
    await expect(shown).to_contain_text("Maintenance at 22:00 UTC.")
    await expect(shown).to_contain_text("Announcement from")
    assert_clean(admin, user)
