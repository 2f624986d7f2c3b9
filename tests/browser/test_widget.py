"""The website widget in a browser: a host page on another site (another host name and port)
includes /widget.js; a visitor chats with an admin, reloads and keeps the conversation; an
identified visitor finds the same conversation from a second browser; the unread count on the
closed button; Spanish; a phone-sized screen; and a site not in WIDGET_ORIGINS cannot show it."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import html
import json
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
import tornado.web

from config.settings import Secret
from tests.browser.conftest import Browser, Tab
from tests.browser.helpers import LOCALES, admin_tab, assert_clean, open_conversation, starts_with
from tests.conftest import Stack, StackFactory, free_port

try:
    from playwright.async_api import expect
except ImportError:  # the conftest skips (or fails under REQUIRE_SERVICES) before any test runs
    pass

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("make_stack", ["sqlite"], indirect=True)]

WIDGET_SECRET = "widget-secret-for-the-browser-tests-0123456789"
FRAME = 'iframe[title="Support chat"]'


@dataclass
class HostSite:
    """A company's site: pages that include the widget, on `http://localhost:<port>` (another
    site than the server's `http://127.0.0.1:<port>`, so cookies of the server are third-party)."""

    port: int
    pages: dict[str, str] = field(default_factory=dict)

    @property
    def origin(self) -> str:
        return f"http://localhost:{self.port}"

    def page(
        self, name: str, server: str, *, user: dict[str, str] | None = None, locale: str = ""
    ) -> str:
        """Serve a page that includes the widget from `server`; its URL."""
        config = ""
        if user is not None:
            # As the contract shows it: an inline script before the tag.
            config = f"<script>window.supportchat = {{user: {json.dumps(user)}}};</script>"
        lang = f' data-locale="{html.escape(locale)}"' if locale else ""
        self.pages[name] = (
            "<!doctype html><html><head><meta charset=utf-8>"
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            "<title>Shop</title>"
            # The host page's own styles must not reach the widget, nor the widget's the page.
            "<style>button{background:lime!important;font-size:40px} *{color:red}</style>"
            f"</head><body><h1>Our shop</h1>{config}"
            f'<script src="{server}/widget.js" async{lang}></script></body></html>'
        )
        return f"{self.origin}/{name}"


class _HostPage(tornado.web.RequestHandler):
    def initialize(self, site: HostSite) -> None:
        self.site = site

    def get(self, name: str) -> None:
        if name == "favicon.ico":
            self.set_status(204)  # no icon: no 404 in the console
            return
        if name not in self.site.pages:
            raise tornado.web.HTTPError(404)
        self.finish(self.site.pages[name])


@contextlib.contextmanager
def host_site() -> Iterator[HostSite]:
    """A site served on a port of its own while in the block."""
    site = HostSite(free_port())
    app = tornado.web.Application([(r"/([a-z0-9.-]+)", _HostPage, {"site": site})])
    server = app.listen(site.port, address="127.0.0.1")
    try:
        yield site
    finally:
        server.stop()


@pytest.fixture
def site() -> Iterator[HostSite]:
    """The company's site, in WIDGET_ORIGINS."""
    with host_site() as found:
        yield found


@pytest.fixture
def elsewhere() -> Iterator[HostSite]:
    """Another site, not in WIDGET_ORIGINS."""
    with host_site() as found:
        yield found


@pytest.fixture
async def stack(make_stack: StackFactory, site: HostSite) -> Stack:
    """The server, with the widget on for `site` only."""
    return await make_stack(widget_origins=(site.origin,), widget_secret=Secret(WIDGET_SECRET))


def signed(user_id: str, **more: str) -> dict[str, str]:
    """What the company's backend puts in the page for a logged-in customer."""
    digest = hmac.new(WIDGET_SECRET.encode(), user_id.encode(), hashlib.sha256).hexdigest()
    return {"id": user_id, "hash": digest, **more}


def launcher(tab: Tab, name: str = "Open support chat"):
    return tab.page.get_by_role("button", name=starts_with(name))


def frame(tab: Tab):
    return tab.page.frame_locator(FRAME)


async def open_widget(tab: Tab) -> None:
    await launcher(tab).click()
    box = frame(tab).get_by_role("textbox", name="Message", exact=True)
    await expect(box).to_be_visible()
    await expect(frame(tab).get_by_role("status").first).to_have_text("Connected", timeout=10_000)


async def visitor_sends(tab: Tab, text: str) -> None:
    box = frame(tab).get_by_role("textbox", name="Message", exact=True)
    await box.fill(text)
    await box.press("Enter")
    mine = frame(tab).get_by_role("log").locator("li.mine", has_text=text)
    await expect(mine).to_contain_text("Sent")


async def admin_answers(tab: Tab, text: str) -> None:
    box = tab.page.get_by_label("Message", exact=True)
    await box.fill(text)
    await box.press("Enter")
    await expect(tab.page.get_by_role("log").locator("li.mine", has_text=text)).to_contain_text(
        "Sent"
    )


async def test_anonymous_visitor_chats_reloads_and_keeps_the_conversation(
    ui: Browser, stack: Stack, site: HostSite
) -> None:
    shop = site.page("shop", stack.url)
    visitor = await ui.tab(locale=LOCALES["en"])
    await visitor.page.goto(shop)
    button = launcher(visitor)
    await expect(button).to_have_accessible_name("Open support chat")
    await expect(visitor.page.locator(FRAME)).to_be_hidden()
    await visitor.shoot("widget-closed", docs=True)

    await open_widget(visitor)
    await visitor_sends(visitor, "Hello, is my order shipped?")
    await visitor.shoot("widget-open", docs=True)

    admin = await admin_tab(ui, stack, "sam", "Sam Agent")
    item = admin.page.get_by_role("list").get_by_role("button", name=starts_with("Visitor "))
    await expect(item).to_be_visible()
    await expect(item).to_contain_text("Visitor")  # the badge
    name = (await item.get_attribute("data-name")) or (await item.inner_text()).split("\n")[0]
    await item.click()
    await expect(admin.page.get_by_role("log")).to_contain_text("Hello, is my order shipped?")
    await admin_answers(admin, "Yes, it left this morning.")

    reply = frame(visitor).get_by_role("log").locator("li.theirs", has_text="left this morning")
    await expect(reply).to_be_visible()
    await expect(reply).to_contain_text("Sam Agent")  # the admin's display name, never the login

    # The host page's styles stay out: the launcher keeps its own colours.
    colour = await visitor.page.locator("supportchat-widget .launcher").evaluate(
        "b => getComputedStyle(b).backgroundColor"
    )
    assert colour == "rgb(36, 86, 199)", colour

    # A reload of the site keeps the visitor and the conversation (its token is in the frame).
    await visitor.page.reload()
    await open_widget(visitor)
    log = frame(visitor).get_by_role("log")
    await expect(log).to_contain_text("Hello, is my order shipped?")
    await expect(log).to_contain_text("Yes, it left this morning.")
    await visitor_sends(visitor, "Thanks!")
    await expect(admin.page.get_by_role("log")).to_contain_text("Thanks!")
    assert name  # the inbox showed the visitor by its generated name
    assert_clean(visitor, admin)


async def test_closed_widget_counts_unread_replies_in_its_name(
    ui: Browser, stack: Stack, site: HostSite
) -> None:
    shop = site.page("shop", stack.url)
    visitor = await ui.tab(locale=LOCALES["en"])
    await visitor.page.goto(shop)
    await open_widget(visitor)
    await visitor_sends(visitor, "Anyone there?")
    # Close from inside the frame, with the keyboard.
    await frame(visitor).get_by_role("textbox", name="Message", exact=True).press("Escape")
    await expect(visitor.page.locator(FRAME)).to_be_hidden()
    await expect(launcher(visitor)).to_be_focused()

    admin = await admin_tab(ui, stack)
    await admin.page.get_by_role("list").get_by_role("button", name=starts_with("Visitor ")).click()
    await admin_answers(admin, "Hi!")
    await admin_answers(admin, "How can we help?")
    await expect(launcher(visitor)).to_have_accessible_name("Open support chat, 2 unread")

    await launcher(visitor).click()
    await expect(frame(visitor).get_by_role("log")).to_contain_text("How can we help?")
    await frame(visitor).get_by_role("button", name="Close", exact=True).click()
    await expect(launcher(visitor)).to_have_accessible_name("Open support chat")
    assert_clean(visitor, admin)


async def test_identified_visitor_finds_the_same_conversation_in_another_browser(
    ui: Browser, stack: Stack, site: HostSite
) -> None:
    ann = signed("42", name="Ann Customer", email="ann@example.com")
    shop = site.page("account", stack.url, user=ann)
    laptop = await ui.tab(locale=LOCALES["en"])
    await laptop.page.goto(shop)
    await open_widget(laptop)
    await visitor_sends(laptop, "Sent from my laptop")

    phone = await ui.tab(locale=LOCALES["en"], width=360, height=740)  # another context
    await phone.page.goto(shop)
    await open_widget(phone)
    await expect(frame(phone).get_by_role("log")).to_contain_text("Sent from my laptop")
    await visitor_sends(phone, "And this from my phone")
    await expect(frame(laptop).get_by_role("log")).to_contain_text("And this from my phone")

    admin = await admin_tab(ui, stack)
    await open_conversation(admin, "Ann Customer")
    thread = admin.page.locator(".thread")
    await expect(thread).to_contain_text("ann@example.com")
    await expect(thread).to_contain_text("Verified")
    await admin.shoot("inbox-verified-visitor")
    assert_clean(laptop, phone, admin)


async def test_phone_sized_screen_and_spanish(ui: Browser, stack: Stack, site: HostSite) -> None:
    shop = site.page("tienda", stack.url, locale="es")
    visitor = await ui.tab(locale=LOCALES["en"], width=360, height=740)  # the tag's locale wins
    await visitor.page.goto(shop)
    button = launcher(visitor, "Abrir chat de soporte")
    await expect(button).to_have_accessible_name("Abrir chat de soporte")
    await button.click()
    spanish = visitor.page.frame_locator('iframe[title="Chat de soporte"]')
    box = spanish.get_by_role("textbox", name="Mensaje", exact=True)
    await expect(box).to_be_visible()
    await expect(spanish.get_by_role("button", name="Enviar", exact=True)).to_be_visible()
    # The frame takes the whole width of a phone, and nothing scrolls sideways.
    width = await visitor.page.locator(FRAME.replace("Support chat", "Chat de soporte")).evaluate(
        "f => f.getBoundingClientRect().width"
    )
    assert width == 360
    assert await visitor.page.evaluate("document.documentElement.scrollWidth") <= 360
    await box.fill("Hola")
    await box.press("Enter")
    await expect(spanish.get_by_role("log").locator("li.mine", has_text="Hola")).to_contain_text(
        "Enviado"
    )
    await visitor.shoot("widget-phone", docs=True)
    assert_clean(visitor)


async def test_a_site_not_in_widget_origins_cannot_show_the_widget(
    ui: Browser, stack: Stack, elsewhere: HostSite
) -> None:
    tab = await ui.tab(locale=LOCALES["en"])
    await tab.page.goto(elsewhere.page("elsewhere", stack.url))
    # The loader runs (it loads from any site), but the server refuses to be framed there.
    await launcher(tab).click()
    await expect(tab.page.locator(FRAME)).to_be_visible()
    box = frame(tab).get_by_role("textbox", name="Message", exact=True)
    await tab.page.wait_for_timeout(1500)
    assert await box.count() == 0
    assert any("frame" in e.lower() for e in tab.errors), tab.errors


async def test_the_launcher_believes_only_its_own_frame(
    ui: Browser, stack: Stack, site: HostSite
) -> None:
    """A script of the host page (or of any other frame) posting what the widget's frame would
    post changes nothing: the launcher checks the sender's window and origin."""
    shop = site.page("shop", stack.url)
    tab = await ui.tab(locale=LOCALES["en"])
    await tab.page.goto(shop)
    await expect(launcher(tab)).to_have_accessible_name("Open support chat")
    await tab.page.evaluate(
        "window.postMessage({supportchat: 1, type: 'unread', count: 5}, '*');"
        "window.postMessage({supportchat: 1, type: 'close'}, '*');"
    )
    await tab.page.wait_for_timeout(300)
    await expect(launcher(tab)).to_have_accessible_name("Open support chat")
    assert_clean(tab)


async def test_the_frame_refuses_to_be_framed_by_another_site_even_when_asked_for(
    ui: Browser, stack: Stack, site: HostSite, elsewhere: HostSite
) -> None:
    """A page elsewhere that frames /widget naming an allowed site as `origin` is still
    refused: frame-ancestors is checked against the real parent."""
    target = f"{stack.url}/widget?origin={site.origin}"
    elsewhere.pages["frames"] = (
        f'<iframe title="Support chat" src="{html.escape(target)}"></iframe>'
    )
    tab = await ui.tab(locale=LOCALES["en"])
    await tab.page.goto(f"{elsewhere.origin}/frames")
    await tab.page.wait_for_timeout(1500)
    assert await frame(tab).get_by_role("textbox", name="Message", exact=True).count() == 0
    assert any("frame" in e.lower() for e in tab.errors), tab.errors


async def test_an_identified_visitor_with_a_malformed_email_still_gets_in(
    ui: Browser, stack: Stack, site: HostSite
) -> None:
    """The site's e-mail is refused (not an address); its id and hash still say who it is."""
    bob = signed("7", name="Bob", email="not an address")
    tab = await ui.tab(locale=LOCALES["en"])
    await tab.page.goto(site.page("account", stack.url, user=bob))
    await open_widget(tab)
    await visitor_sends(tab, "Hi from Bob")
    tab.errors[:] = [e for e in tab.errors if "400" not in e]  # the refused first try
    assert_clean(tab)


async def test_with_required_identity_only_identified_customers_see_the_widget(
    ui: Browser, make_stack: StackFactory, site: HostSite
) -> None:
    stack = await make_stack(
        widget_origins=(site.origin,),
        widget_secret=Secret(WIDGET_SECRET),
        widget_identity="required",
    )
    anonymous = await ui.tab(locale=LOCALES["en"])
    await anonymous.page.goto(site.page("shop", stack.url))
    await anonymous.page.wait_for_timeout(1000)  # the loader has run by now
    assert await anonymous.page.locator("supportchat-widget").count() == 0
    assert await launcher(anonymous).count() == 0

    customer = await ui.tab(locale=LOCALES["en"])
    await customer.page.goto(site.page("account", stack.url, user=signed("42", name="Ann")))
    await open_widget(customer)
    await visitor_sends(customer, "Signed in and writing")
    assert_clean(anonymous, customer)
