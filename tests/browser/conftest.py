"""Headless Chromium (Debian's package, driven by Playwright) against a real server: the `ui`
fixture opens browser tabs that record console errors, CSP violations and dialogs."""

from __future__ import annotations

import asyncio
import importlib.util
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REQUIRE, ROOT, Stack

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",  # CI runs as root
    "--disable-gpu",
    # Chromium phones home at start; the test machines have no network to reach.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
DOCS_SCREENSHOTS = ROOT / "docs" / "screenshots"
# The committed README screenshots change only on request: message times differ on every run.
UPDATE_DOCS = os.environ.get("UPDATE_SCREENSHOTS") == "1"
TIMEOUT_MS = 5000

# Runs in every page before its own scripts; Chromium also logs violations to the console,
# this makes sure each one is seen with its directive.
REPORT_CSP = """
document.addEventListener("securitypolicyviolation", (e) => {
  console.error(`CSP violation: ${e.violatedDirective} blocked ${e.blockedURI || "inline"}`);
});
"""


def _missing() -> str | None:
    if not os.access(CHROMIUM, os.X_OK):
        return f"{CHROMIUM} is missing (apt-get install chromium)"
    if importlib.util.find_spec("playwright") is None:
        return "playwright is not installed (pip install -r requirements-dev.txt)"
    return None


@pytest.fixture(autouse=True)
def _browser_prerequisites() -> None:
    """Before any server starts: Chromium and Playwright present."""
    missing = _missing()
    if missing:
        if REQUIRE:
            pytest.fail(f"{missing} and REQUIRE_SERVICES=1")
        pytest.skip(missing)


@dataclass
class Tab:
    """A page plus what went wrong in it: console errors, uncaught exceptions, dialogs."""

    page: Any
    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    async def shoot(self, name: str, *, docs: bool = False) -> None:
        """A viewport screenshot in artifacts/ (and docs/screenshots/ when asked to update)."""
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        # No focus ring or hover highlight left over from the test's own clicks.
        await self.page.evaluate("document.activeElement?.blur()")
        await self.page.mouse.move(0, 0)
        await self.page.screenshot(path=SCREENSHOTS / f"{name}.png")
        if docs and UPDATE_DOCS:
            DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            await self.page.screenshot(path=DOCS_SCREENSHOTS / f"{name}.png")


class Browser:
    """Opens tabs, each in its own context (its own cookies), on the stack's server."""

    def __init__(self, browser: Any, stack: Stack) -> None:
        self.browser = browser
        self.stack = stack
        self.tabs: list[Tab] = []

    async def tab(
        self, *, locale: str = "en-US", width: int = 1200, height: int = 800, **options: Any
    ) -> Tab:
        headers = {"Accept-Language": f"{locale},{locale.split('-')[0]};q=0.9"}
        context = await self.browser.new_context(
            base_url=self.stack.url,
            locale=locale,
            extra_http_headers=headers,
            viewport={"width": width, "height": height},
            **options,
        )
        context.set_default_timeout(TIMEOUT_MS)
        await context.add_init_script(REPORT_CSP)
        page = await context.new_page()
        tab = Tab(page)

        def on_console(message: Any) -> None:
            if message.type == "error":
                tab.errors.append(f"{page.url}: {message.text}")

        def on_dialog(dialog: Any) -> None:
            tab.dialogs.append(f"{dialog.type}: {dialog.message}")
            asyncio.ensure_future(dialog.dismiss())  # noqa: RUF006 (fire and forget)

        page.on("console", on_console)
        page.on("pageerror", lambda exc: tab.errors.append(f"{page.url}: {exc}"))
        page.on("dialog", on_dialog)
        self.tabs.append(tab)
        return tab


@pytest.fixture
async def ui(stack: Stack) -> AsyncIterator[Browser]:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        try:
            yield Browser(browser, stack)
        finally:
            await browser.close()
