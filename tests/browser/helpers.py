"""What the browser tests do on the pages, in English or Spanish: register, log in, send, open a
conversation. Every control is found by its accessible name in the page's language."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from tests.browser.conftest import Browser, Tab
from tests.conftest import PASSWORD, Stack

try:
    from playwright.async_api import expect
except ImportError:  # the conftest skips (or fails under REQUIRE_SERVICES) before any test runs
    pass

# The browser locale of each language the pages speak (Accept-Language follows it).
LOCALES = {"en": "en-US", "es": "es-ES"}

# What the pages say in Spanish, written out here rather than read from locale/: a wrong or
# missing translation fails the test.
SPANISH = {
    "Username": "Usuario",
    "Name": "Nombre",
    "Password": "Contraseña",
    "Log in": "Iniciar sesión",
    "Register": "Registrarse",
    "Message": "Mensaje",
    "Send": "Enviar",
    "Announcement": "Anuncio",
    "Announce": "Anunciar",
    "Log out": "Cerrar sesión",
    "Connected": "Conectado",
    "Connection lost. Reconnecting…": "Conexión perdida. Reconectando…",
    "Sent": "Enviado",
    "Not sent": "No enviado",
    "You": "Tú",
    "Conversation with {name}": "Conversación con {name}",
    "No conversation open": "Ninguna conversación abierta",
    "Announcement from {name}": "Anuncio de {name}",
    "Announcement sent.": "Anuncio enviado.",
    "Make admin": "Hacer administrador",
    "Make user": "Hacer usuario",
    "Write a message first.": "Escribe primero un mensaje.",
    "Write the announcement first.": "Escribe primero el anuncio.",
    "Too long: {count} characters, and the limit is {max}. Shorten it to send it.": (
        "Demasiado largo: {count} caracteres, y el límite es {max}. Acórtalo para enviarlo."
    ),
    "Waiting for the connection…": "Esperando la conexión…",
    "{name} is typing…": "{name} está escribiendo…",
    "The support team": "El equipo de soporte",
    "{name} is now an admin.": "{name} ahora es administrador.",
    "{name} is now a user.": "{name} ahora es usuario.",
    # The team's inbox
    "Available": "Disponible",
    "Mine": "Míos",
    "Unassigned": "Sin asignar",
    "All": "Todos",
    "Status": "Estado",
    "Open": "Abierta",
    "Pending": "Pendiente",
    "Snoozed": "Pospuesta",
    "Resolved": "Resuelta",
    "No conversations match these filters.": "Ninguna conversación coincide con estos filtros.",
    "Load more": "Cargar más",
    "Assignee": "Asignado a",
    "Resolve": "Resolver",
    "Reopen": "Reabrir",
    "Snooze": "Posponer",
    "Snooze until": "Posponer hasta",
    "In 1 hour": "Dentro de 1 hora",
    "Tomorrow at 9:00": "Mañana a las 9:00",
    "Snoozed until {time}": "Pospuesta hasta {time}",
    "Labels": "Etiquetas",
    "Labels saved.": "Etiquetas guardadas.",
    "Assigned to {name}.": "Asignada a {name}.",
    "Marked resolved.": "Marcada como resuelta.",
    "Private note": "Nota privada",
    "Canned responses": "Respuestas predefinidas",
}


def say(lang: str, english: str, **values: object) -> str:
    """What the page says for `english` in `lang`, with {placeholders} filled in."""
    text = english if lang == "en" else SPANISH[english]
    for key, value in values.items():
        text = text.replace("{" + key + "}", str(value))
    return text


def number(lang: str, n: int) -> str:
    """A count as the browser writes it: 4,000 in English; 4000 and 10.000 in Spanish (Spanish
    groups digits from five on)."""
    if lang == "en":
        return f"{n:,}"
    return str(n) if n < 10_000 else f"{n:,}".replace(",", ".")


def starts_with(text: str) -> re.Pattern[str]:
    # Playwright sends the pattern as /source/: a "/" in it must be escaped too.
    return re.compile("^" + re.escape(text).replace("/", r"\/"))


async def register(tab: Tab, user: str, name: str, *, lang: str = "en") -> None:
    page = tab.page
    await page.goto("/register")
    await page.get_by_label(say(lang, "Username"), exact=True).fill(user)
    await page.get_by_label(say(lang, "Name"), exact=True).fill(name)
    await page.get_by_label(say(lang, "Password"), exact=True).fill(PASSWORD)
    await page.get_by_role("button", name=say(lang, "Register"), exact=True).click()
    await expect(page).to_have_url(re.compile(r"/chat$"))
    await expect(page.get_by_role("status").first).to_have_text(say(lang, "Connected"))


async def log_in(tab: Tab, user: str, *, lands_on: str, lang: str = "en") -> None:
    page = tab.page
    await page.goto("/login")
    await page.get_by_label(say(lang, "Username"), exact=True).fill(user)
    await page.get_by_label(say(lang, "Password"), exact=True).fill(PASSWORD)
    await page.get_by_role("button", name=say(lang, "Log in"), exact=True).click()
    await expect(page).to_have_url(re.compile(f"{lands_on}$"))
    await expect(page.get_by_role("status").first).to_have_text(say(lang, "Connected"))


async def user_tab(ui: Browser, user: str, name: str, *, lang: str = "en", **options: Any) -> Tab:
    tab = await ui.tab(locale=LOCALES[lang], **options)
    await register(tab, user, name, lang=lang)
    return tab


async def admin_tab(
    ui: Browser,
    stack: Stack,
    user: str = "sam",
    name: str = "Sam",
    *,
    lang: str = "en",
    **options: Any,
) -> Tab:
    await stack.register(user, name, admin=True)
    tab = await ui.tab(locale=LOCALES[lang], **options)
    await log_in(tab, user, lands_on="/admin", lang=lang)
    return tab


async def send(tab: Tab, text: str, *, lang: str = "en") -> None:
    """Type into "Message" and press Enter; wait until the server has stored it."""
    page = tab.page
    box = page.get_by_label(say(lang, "Message"), exact=True)
    await box.fill(text)
    await box.press("Enter")
    await expect(box).to_have_value("")
    mine = page.get_by_role("log").locator("li.mine", has_text=text).last
    await expect(mine).to_contain_text(say(lang, "Sent"))


async def open_conversation(tab: Tab, name: str, *, lang: str = "en") -> None:
    page = tab.page
    await page.get_by_role("list").get_by_role("button", name=starts_with(name)).click()
    heading = say(lang, "Conversation with {name}", name=name)
    await expect(page.get_by_role("heading", level=2, name=heading)).to_be_visible()


def assert_clean(*tabs: Tab) -> None:
    for tab in tabs:
        assert tab.errors == [], tab.errors
        assert tab.dialogs == [], tab.dialogs


def timezone_at_hour(hour: int) -> str:
    """A time zone where it is now `hour` o'clock (give or take the minutes left in this hour)."""
    offset = (hour - datetime.now(UTC).hour) % 24
    if offset > 12:
        offset -= 24
    # POSIX-style names: Etc/GMT-3 is three hours ahead of UTC.
    return "UTC" if offset == 0 else f"Etc/GMT{-offset:+d}"
