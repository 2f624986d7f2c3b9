"""/admin/reports in a real browser, in English and Spanish: reached from the inbox's "Reports"
link, it shows the totals, the medians in words, the chart of the daily volume (a canvas, under
the page's CSP) and its figures as a table, and refuses a backwards period."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from models.conversation import FIRST_REPLY, OPENED, RESOLVED_EVENT, ConversationEvent
from models.message import ADMINS, Message
from tests.browser.conftest import Browser
from tests.browser.helpers import admin_tab, assert_clean, say
from tests.conftest import Stack

try:
    from playwright.async_api import expect
except ImportError:  # the conftest skips (or fails under REQUIRE_SERVICES) before any test runs
    pass

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("make_stack", ["sqlite"], indirect=True)]

# The page's own words in Spanish, written out here: a wrong or missing translation fails.
REPORTS_SPANISH = {
    "Reports": "Informes",
    "Inbox": "Bandeja de entrada",
    "From": "Desde",
    "To": "Hasta",
    "Show": "Mostrar",
    "Totals": "Totales",
    "Volume by day": "Volumen por día",
    "Daily figures": "Cifras diarias",
    "By admin": "Por administrador",
    "Median: {time}": "Mediana: {time}",
    "90% within {time}": "El 90 %, en {time} o menos",
    "Nothing to measure": "Nada que medir",
    "The first day must not be after the last.": "El primer día no puede ser posterior al último.",
}
# Durations as Chromium words them in each language (Intl.NumberFormat, unit style, short).
DURATIONS = {
    "en": {"2 min 5 s": "2 min 5 sec", "1 h 30 min": "1 hr 30 min"},
    "es": {"2 min 5 s": "2 min 5 s", "1 h 30 min": "1 h 30 min"},
}


def words(lang: str, english: str, **values: object) -> str:
    text = english if lang == "en" else REPORTS_SPANISH[english]
    for key, value in values.items():
        text = text.replace("{" + key + "}", str(value))
    return text


async def some_work(stack: Stack) -> None:
    """Today: two messages from ana and one reply from sam (and a note, not counted); ana's
    conversation opened, answered in 2 min 5 s and resolved by sam after 1 h 30 min."""
    now = datetime.now(UTC)
    rows = [
        Message(sender="ana", recipient=ADMINS, conversation="ana", text="a", created_at=now),
        Message(sender="ana", recipient=ADMINS, conversation="ana", text="b", created_at=now),
        Message(sender="sam", recipient="ana", conversation="ana", text="c", created_at=now),
        Message(
            sender="sam", recipient="ana", conversation="ana", text="n", created_at=now, note=True
        ),
        ConversationEvent(conversation="ana", kind=OPENED, at=now - timedelta(seconds=1)),
        ConversationEvent(conversation="ana", kind=FIRST_REPLY, at=now, admin="sam", seconds=125.0),
        ConversationEvent(
            conversation="ana", kind=RESOLVED_EVENT, at=now, admin="sam", seconds=5400.0
        ),
    ]
    async with stack.services.sessions() as db:
        db.add_all(rows)
        await db.commit()


@pytest.mark.parametrize("lang", ["en", "es"])
async def test_the_reports_page_shows_totals_medians_the_chart_and_its_table(
    ui: Browser, stack: Stack, lang: str
) -> None:
    admin = await admin_tab(ui, stack, lang=lang)
    await some_work(stack)
    page = admin.page
    await page.get_by_role("link", name=words(lang, "Reports"), exact=True).click()
    await expect(page).to_have_url(re.compile(r"/admin/reports"))
    await expect(page.get_by_role("heading", level=1)).to_have_text(words(lang, "Reports"))
    await expect(page.get_by_role("link", name=words(lang, "Inbox"), exact=True)).to_be_visible()

    today = datetime.now(UTC).date()
    await expect(page.get_by_label(words(lang, "From"), exact=True)).to_have_value(
        (today - timedelta(days=6)).isoformat()
    )
    await expect(page.get_by_label(words(lang, "To"), exact=True)).to_have_value(today.isoformat())
    await expect(page.locator("#received")).to_have_text("2")
    await expect(page.locator("#replies")).to_have_text("1")
    await expect(page.locator("#opened")).to_have_text("1")
    await expect(page.locator("#resolved")).to_have_text("1")
    first = words(lang, "Median: {time}", time=DURATIONS[lang]["2 min 5 s"])
    await expect(page.locator("#first-response")).to_contain_text(first)
    resolution = words(lang, "90% within {time}", time=DURATIONS[lang]["1 h 30 min"])
    await expect(page.locator("#resolution")).to_contain_text(resolution)

    chart = page.get_by_role("img")
    await expect(chart).to_be_visible()
    canvas = page.locator("#chart canvas")
    await expect(canvas).to_be_visible()
    box = await canvas.bounding_box()
    assert box is not None and box["width"] > 200 and box["height"] > 100

    await admin.shoot("reports" if lang == "en" else "reports-es", docs=lang == "en")

    # The chart's figures, day by day, behind "Daily figures": seven rows, today's last.
    await page.get_by_text(words(lang, "Daily figures"), exact=True).click()
    rows = page.locator("#days tbody tr")
    await expect(rows).to_have_count(7)
    await expect(rows.last.locator("td")).to_have_text(["2", "1", "1"])
    await expect(rows.first.locator("td")).to_have_text(["0", "0", "0"])
    admins = page.locator("#admins tbody tr")
    await expect(admins).to_have_count(1)
    await expect(admins.first).to_contain_text("sam")

    # A period before all of it: zeros, nothing to measure; a backwards one is refused.
    await page.get_by_label(words(lang, "From"), exact=True).fill("2020-01-01")
    await page.get_by_label(words(lang, "To"), exact=True).fill("2020-01-03")
    await page.get_by_role("button", name=words(lang, "Show"), exact=True).click()
    await expect(page.locator("#received")).to_have_text("0")
    await expect(page.locator("#first-response")).to_have_text(words(lang, "Nothing to measure"))
    await expect(rows).to_have_count(3)
    await expect(page).to_have_url(re.compile(r"from=2020-01-01&to=2020-01-03$"))
    await page.reload()  # the period is in the address: a reload or a link shows it again
    await expect(page.get_by_label(words(lang, "From"), exact=True)).to_have_value("2020-01-01")
    await expect(page.locator("#days tbody tr")).to_have_count(3)
    await page.get_by_label(words(lang, "From"), exact=True).fill("2020-01-05")
    await page.get_by_role("button", name=words(lang, "Show"), exact=True).click()
    await expect(page.get_by_role("alert")).to_have_text(
        words(lang, "The first day must not be after the last.")
    )
    await expect(page.get_by_role("button", name=say(lang, "Log out"))).to_be_visible()
    assert_clean(admin)
