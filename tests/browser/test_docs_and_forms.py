"""In a real browser: Swagger UI at /api-docs lists the API's operations, every page has an icon
that loads, the registration form states its rules before they are broken, and its errors are
in the browser's language."""

from __future__ import annotations

import logging
import re

import pytest

from tests.browser.conftest import Browser, Tab
from tests.browser.helpers import assert_clean, register
from tests.browser.test_ui import assert_strict_csp
from tests.conftest import PASSWORD, Stack

try:
    from playwright.async_api import expect
except ImportError:  # the conftest skips (or fails under REQUIRE_SERVICES) before any test runs
    pass

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("make_stack", ["sqlite"], indirect=True)]


@pytest.mark.parametrize("locale", ["en-US", "es-ES"])  # the page itself is English
async def test_api_docs_lists_the_operations_of_the_api(ui: Browser, locale: str) -> None:
    tab = await ui.tab(locale=locale)
    page = tab.page
    response = await page.goto("/api-docs")
    assert_strict_csp(response, "/api-docs")
    login = page.locator(".opblock", has=page.get_by_text("/api/login", exact=True))
    await expect(login).to_be_visible()
    await expect(login.get_by_text("POST", exact=True)).to_be_visible()
    await expect(login).to_contain_text("Log in")
    await login.get_by_text("/api/login", exact=True).click()  # opens it: body and answers
    await expect(login).to_contain_text("bad_credentials")
    await expect(login.get_by_text("Request body")).to_be_visible()
    for path in ("/api/register", "/api/me", "/api/messages", "/api/users/{user}/role"):
        await expect(page.get_by_text(path, exact=True)).to_be_visible()
    await expect(page.get_by_text("Unable to render this definition")).to_have_count(0)
    await tab.shoot(f"api-docs-{locale}")
    assert_clean(tab)


async def load_with_icon(tab: Tab, path: str) -> None:
    """Open `path` and wait for its icon: the browser fetches the page's `<link rel="icon">`
    (seen here), or else `/favicon.ico` (which Playwright does not report)."""
    async with tab.page.expect_response(re.compile(r"/favicon\.")) as icon:
        await tab.page.goto(path)
    response = await icon.value
    assert response.status == 200, (path, response.url)
    assert response.headers["content-type"].startswith("image/"), path


async def test_every_page_has_an_icon_that_loads(
    ui: Browser, stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    await stack.register("sam", "Sam", admin=True)
    visitor, user, admin = await ui.tab(), await ui.tab(), await ui.tab()
    with caplog.at_level(logging.WARNING, logger="tornado.access"):
        for path in ("/login", "/register", "/api-docs", "/no-such-page"):
            await load_with_icon(visitor, path)
        await register(user, "ana", "Ana")
        await load_with_icon(user, "/chat")
        await load_with_icon(user, "/admin")  # 403
        await admin.page.goto("/login")
        await admin.page.get_by_label("Username", exact=True).fill("sam")
        await admin.page.get_by_label("Password", exact=True).fill(PASSWORD)
        await admin.page.get_by_role("button", name="Log in", exact=True).click()
        await expect(admin.page).to_have_url(re.compile(r"/admin$"))
        await load_with_icon(admin, "/admin")
    missing = [r.getMessage() for r in caplog.records if r.getMessage().startswith("404")]
    assert [m for m in missing if "/no-such-page" not in m] == []


FORM = {
    "en-US": {
        "Username": "3-32 letters, digits, '_', '.' or '-'.",
        "Name": "Up to 100 characters: the name the support team sees.",
        "Password": "At least 12 characters.",
        "Register": "That user name is taken.",
    },
    "es-ES": {
        "Usuario": "De 3 a 32 letras, dígitos, '_', '.' o '-'.",
        "Nombre": "Hasta 100 caracteres: el nombre que ve el equipo de soporte.",
        "Contraseña": "Al menos 12 caracteres.",
        "Registrarse": "Ese nombre de usuario ya está en uso.",
    },
}


@pytest.mark.parametrize("locale", FORM)
async def test_registration_states_its_rules_and_errors_in_the_browsers_language(
    ui: Browser, stack: Stack, locale: str
) -> None:
    await stack.register("ana")
    tab = await ui.tab(locale=locale)
    page = tab.page
    await page.goto("/register")
    (user, user_hint), (name, name_hint), (password, password_hint), (button, taken) = FORM[
        locale
    ].items()
    for label, hint in ((user, user_hint), (name, name_hint), (password, password_hint)):
        await expect(page.get_by_label(label, exact=True)).to_have_accessible_description(hint)
    await page.get_by_label(user, exact=True).fill("ANA")
    await page.get_by_label(name, exact=True).fill("Ana Two")
    await page.get_by_label(password, exact=True).fill(PASSWORD)
    await page.get_by_role("button", name=button, exact=True).click()
    await expect(page.get_by_role("alert")).to_have_text(taken)
    await expect(page.get_by_label(password, exact=True)).to_have_accessible_description(
        password_hint
    )
    await tab.shoot(f"register-error-{locale}")
    # Chromium logs the form's 409 answer as a failed load: that one is expected.
    assert [e for e in tab.errors if "status of 409" not in e] == []
    assert tab.dialogs == []
