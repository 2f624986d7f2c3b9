"""Attachments in a browser: a user attaches a PNG with "Attach file" and sees its progress, the
admin sees the thumbnail and opens the full image; files dropped on the conversation and pasted
into the message box; other files as links with name and size; the same in the widget, whose
frame has no cookie and fetches its images with its token."""

from __future__ import annotations

import io
import random
from collections.abc import Iterator
from typing import Any

import pytest

from config.settings import Secret
from tests.browser.conftest import Browser, Tab
from tests.browser.helpers import LOCALES, admin_tab, assert_clean, open_conversation, user_tab
from tests.browser.test_widget import WIDGET_SECRET, HostSite, frame, host_site, open_widget
from tests.conftest import Stack, StackFactory

try:
    from playwright.async_api import expect
except ImportError:  # the conftest skips (or fails under REQUIRE_SERVICES) before any test runs
    pass

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("make_stack", ["sqlite"], indirect=True)]

# Records every progress bar the page shows and the highest value it reached.
WATCH_PROGRESS = """
window.__progress = [];
new MutationObserver(() => {
  for (const bar of document.querySelectorAll(".upload progress")) {
    if (!bar.hidden) window.__progress.push(bar.value);
  }
}).observe(document.documentElement, {subtree: true, childList: true, attributes: true});
"""


def png(width: int, height: int, *, noise: bool = False) -> bytes:
    from PIL import Image

    image = Image.new("RGB", (width, height), (36, 86, 199))
    if noise:  # incompressible: a body big enough to show its progress
        rng = random.Random(7)
        image = Image.frombytes("RGB", (width, height), rng.randbytes(width * height * 3))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def file(name: str, mime: str, data: bytes) -> dict[str, Any]:
    return {"name": name, "mimeType": mime, "buffer": data}


async def attach(tab: Tab, *files: dict[str, Any], scope: Any = None) -> None:
    where = scope if scope is not None else tab.page
    await where.locator("#attach-input").set_input_files(list(files))
    uploads = where.get_by_role("list", name="Files to send")
    for f in files:
        await expect(uploads.get_by_role("listitem").filter(has_text=f["name"])).to_contain_text(
            "Ready to send", timeout=15_000
        )


async def send_enter(box: Any) -> None:
    await box.press("Enter")
    await expect(box).to_have_value("")


async def test_a_png_goes_up_with_progress_and_the_admin_opens_it(
    ui: Browser, stack: Stack
) -> None:
    user = await user_tab(ui, "ana", "Ana")
    await user.page.evaluate(WATCH_PROGRESS)
    await expect(user.page.get_by_role("button", name="Attach file")).to_be_visible()
    big = png(900, 900, noise=True)  # about 2.4 MB
    await attach(user, file("screen shot.png", "image/png", big))
    seen = await user.page.evaluate("window.__progress")
    assert seen, "no progress bar was shown"
    box = user.page.get_by_label("Message", exact=True)
    await box.fill("It shows this error")
    await send_enter(box)
    mine = user.page.get_by_role("log").locator("li.mine").last
    await expect(mine).to_contain_text("Sent")
    thumb = mine.get_by_role("img", name="screen shot.png")
    await expect(thumb).to_be_visible()
    await expect(user.page.get_by_role("list", name="Files to send")).to_be_hidden()

    admin = await admin_tab(ui, stack)
    await open_conversation(admin, "Ana")
    theirs = admin.page.get_by_role("log").locator("li.theirs", has_text="It shows this error")
    image = theirs.get_by_role("img", name="screen shot.png")
    await expect(image).to_be_visible()
    assert await image.evaluate("i => i.complete && i.naturalWidth") == 320  # the thumbnail
    await admin.shoot("attachment")
    async with admin.page.context.expect_page() as opened:
        await image.click()
    full = await opened.value
    await full.wait_for_load_state()
    size = await full.evaluate(
        "() => { const i = document.querySelector('img');"
        " return i && [i.naturalWidth, i.naturalHeight]; }"
    )
    assert size == [900, 900]
    assert_clean(user, admin)


async def test_files_dropped_or_pasted_and_a_file_link(ui: Browser, stack: Stack) -> None:
    admin = await admin_tab(ui, stack)
    user = await user_tab(ui, "ana", "Ana")
    await user.page.evaluate(
        """([bytes]) => {
          const drop = new DataTransfer();
          drop.items.add(new File([new Uint8Array(bytes)], "dropped.png", {type: "image/png"}));
          document.querySelector(".thread").dispatchEvent(
            new DragEvent("drop", {dataTransfer: drop, bubbles: true, cancelable: true}));
          const paste = new DataTransfer();
          paste.items.add(new File(["error log\\nline 2\\n"], "log.txt", {type: "text/plain"}));
          document.getElementById("message").dispatchEvent(
            new ClipboardEvent("paste", {clipboardData: paste, bubbles: true, cancelable: true}));
        }""",
        [list(png(40, 30))],
    )
    uploads = user.page.get_by_role("list", name="Files to send")
    for name in ("dropped.png", "log.txt"):
        item = uploads.get_by_role("listitem").filter(has_text=name)
        await expect(item).to_contain_text("Ready to send")
    # Files alone: the text may stay empty.
    await send_enter(user.page.get_by_label("Message", exact=True))
    mine = user.page.get_by_role("log").locator("li.mine").last
    await expect(mine).to_contain_text("Sent")

    await open_conversation(admin, "Ana")
    theirs = admin.page.get_by_role("log").locator("li.theirs").last
    await expect(theirs.get_by_role("img", name="dropped.png")).to_be_visible()
    link = theirs.get_by_role("link", name="log.txt (17 bytes)")
    await expect(link).to_be_visible()
    async with admin.page.expect_download() as got:
        await link.click()
    download = await got.value
    assert download.suggested_filename == "log.txt"
    assert_clean(user, admin)


async def test_a_refused_file_says_why_and_is_not_sent(ui: Browser, stack: Stack) -> None:
    user = await user_tab(ui, "ana", "Ana")
    await user.page.locator("#attach-input").set_input_files(
        [file("fake.png", "image/png", b"this is not a png at all")]
    )
    item = user.page.get_by_role("list", name="Files to send").get_by_role("listitem")
    await expect(item).to_contain_text("Not sent")
    await item.get_by_role("button", name="Remove fake.png").click()
    await expect(user.page.get_by_role("list", name="Files to send")).to_be_hidden()
    user.errors.clear()  # the refused upload's 415 is in the console
    assert_clean(user)


@pytest.fixture
def shop() -> Iterator[HostSite]:
    with host_site() as found:
        yield found


async def test_the_widget_attaches_and_shows_images_with_its_token(
    ui: Browser, make_stack: StackFactory, shop: HostSite
) -> None:
    stack = await make_stack(widget_origins=(shop.origin,), widget_secret=Secret(WIDGET_SECRET))
    visitor = await ui.tab(locale=LOCALES["en"])
    await visitor.page.goto(shop.page("shop", stack.url))
    await open_widget(visitor)
    chat = frame(visitor)
    await expect(chat.get_by_role("button", name="Attach file")).to_be_visible()
    await attach(visitor, file("photo.png", "image/png", png(600, 400)), scope=chat)
    box = chat.get_by_role("textbox", name="Message", exact=True)
    await box.fill("From the widget")
    await send_enter(box)
    image = chat.get_by_role("log").locator("li.mine").last.get_by_role("img", name="photo.png")
    await expect(image).to_be_visible()
    # Fetched with the token (the frame sends no cookie), shown from a blob: URL.
    assert (await image.get_attribute("src") or "").startswith("blob:")
    assert await image.evaluate("i => i.complete && i.naturalWidth") == 320

    admin = await admin_tab(ui, stack)
    visitor_item = admin.page.get_by_role("list").get_by_role("button")
    await visitor_item.filter(has_text="Visitor").first.click()
    seen = admin.page.get_by_role("log").get_by_role("img", name="photo.png")
    await expect(seen).to_be_visible()
    assert_clean(visitor, admin)
