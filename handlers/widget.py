"""The website widget: `/widget.js` (the loader that sites of `WIDGET_ORIGINS` include) and
`/widget` (the chat in its frame). Both answer 404 while `WIDGET_ORIGINS` is unset."""

from __future__ import annotations

import functools

import tornado.escape
import tornado.locale
import tornado.web

from handlers.base import CSP
from handlers.pages import HtmlHandler
from services.forwarding import normalize_origin

LANGUAGES = ("en", "es")
# What the loader shows on the host page, in each language (locale/es.csv translates them).
LOADER_STRINGS = {
    "open": "Open support chat",
    "close": "Close support chat",
    "unread": "{count} unread",
    "title": "Support chat",
}
LOADER_MAX_AGE = 300  # seconds a browser may keep /widget.js: a new release reaches sites soon


def frame_csp(pages: str, origins: tuple[str, ...]) -> str:
    """The pages' policy, framed by exactly the sites of WIDGET_ORIGINS."""
    return pages.replace("frame-ancestors 'none'", "frame-ancestors " + " ".join(origins))


@functools.cache
def loader_config(identity: str) -> str:
    """The loader's settings and its texts in each language, as JSON: the same for every page
    view of every site, so made once."""
    strings = {
        lang: {k: tornado.locale.get(lang).translate(v) for k, v in LOADER_STRINGS.items()}
        for lang in LANGUAGES
    }
    return tornado.escape.json_encode({"identity": identity, "strings": strings})


class WidgetScript(HtmlHandler):
    """The loader, for any site to include (no Cross-Origin-Resource-Policy on it); only the
    sites of WIDGET_ORIGINS can show its frame."""

    def get(self) -> None:
        settings = self.services.settings
        if not settings.widget:
            raise tornado.web.HTTPError(404)
        self.set_header("Content-Type", "text/javascript; charset=UTF-8")
        self.set_header("Cache-Control", f"public, max-age={LOADER_MAX_AGE}")
        self.render("widget.js", config=loader_config(settings.widget_identity))


class WidgetPage(HtmlHandler):
    """The chat inside the frame, for a site of WIDGET_ORIGINS named by `origin`."""

    def get_user_locale(self) -> tornado.locale.Locale | None:
        asked = self.get_query_argument("locale", "")
        return tornado.locale.get(asked) if asked in LANGUAGES else None  # None: the browser's

    def get(self) -> None:
        settings = self.services.settings
        if not settings.widget:
            raise tornado.web.HTTPError(404)
        host = normalize_origin(self.get_query_argument("origin", ""))
        if host not in {normalize_origin(o) for o in settings.widget_origins}:
            raise tornado.web.HTTPError(404)
        # Framed by those sites only; an error page (headers reset) keeps 'none'.
        pages = self.application.settings.get("page_csp", CSP)
        self.set_header("Content-Security-Policy", frame_csp(pages, settings.widget_origins))
        self.clear_header("X-Frame-Options")  # frame-ancestors says who may frame it
        self.set_header("Cache-Control", "no-store")
        self.render(
            "widget.html",
            host=host,
            identity=settings.widget_identity,
            max_chars=settings.msg_max_chars,
            team=False,
        )
