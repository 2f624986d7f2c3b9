"""Pages and form posts: login, register, logout, the user's chat, the admins' inbox and reports."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import tornado.web

from handlers.base import BaseHandler
from models.user import User
from services.errors import AppError, Code
from services.forwarding import normalize_origin, own_origin
from services.inputs import NAME_MAX, PASSWORD_MAX, USERNAME, Credentials, Registration


def posted_from(headers: Any) -> str | None:
    """The origin a browser says a form post came from: `Origin`, else that of `Referer`
    (sent to our own origin only: `Referrer-Policy: same-origin`), else None (not a
    browser). A page under `no-referrer` sends `Origin: null`, refused."""
    origin: str | None = headers.get("Origin")
    if origin is not None:
        return origin
    referer = headers.get("Referer")
    if not referer:
        return None
    try:
        parts = urlsplit(referer)
    except ValueError:
        return "null"
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


class HtmlHandler(BaseHandler):
    """A handler whose errors are the error page, in the browser's language."""

    def error_of(self, status: int, exc: BaseException | None) -> tuple[int, AppError]:
        status, error = super().error_of(status, exc)
        return status, error.translated(self.locale.translate)


class PageHandler(HtmlHandler):
    async def prepare(self) -> None:
        await self.load_user()

    def check_xsrf_cookie(self) -> None:
        """Tornado calls this before every form post. The `_xsrf` pair alone is not enough:
        cookies are not isolated by port, so a page on another port of this host can plant
        the cookie. A browser also says where the post comes from, and it must be us."""
        source = posted_from(self.request.headers)
        if source is not None and normalize_origin(source) != own_origin(
            self.request, self.services.settings.trusted_proxies
        ):
            raise tornado.web.HTTPError(403, "form post from another origin")
        super().check_xsrf_cookie()

    def render_form(self, template: str, status: int, **values: Any) -> None:
        self.set_status(status)
        self.set_header("Cache-Control", "no-store")
        values.setdefault("error", None)
        values.setdefault("username", "")
        values.setdefault("name", "")
        values.setdefault("username_pattern", USERNAME.pattern)
        values.setdefault("password_min", self.services.settings.password_min_length)
        values.setdefault("password_max", PASSWORD_MAX)
        values.setdefault("name_max", NAME_MAX)
        self.render(template, **values)

    def home_of(self) -> str:
        return "/admin" if self.me is not None and self.me.is_admin else "/chat"


class HomePage(PageHandler):
    def get(self) -> None:
        self.redirect(self.home_of() if self.me else "/login")


class LoginPage(PageHandler):
    def get(self) -> None:
        if self.me is not None:
            self.redirect(self.home_of())
            return
        self.render_form("login.html", 200)

    async def post(self) -> None:
        username = self.get_body_argument("username", "")
        try:
            creds = Credentials.parse(
                {"username": username, "password": self.get_body_argument("password", "")}
            )
            user, issued = await self.services.auth.login(creds, address=self.client_ip)
        except AppError as exc:
            if exc.code is Code.UNAVAILABLE:
                raise
            if exc.code is not Code.RATE_LIMITED:  # one message, whichever field was wrong
                exc = AppError(Code.BAD_CREDENTIALS, "Wrong user name or password.")
            self.render_form(
                "login.html", exc.status, error=exc.text(self.locale.translate), username=username
            )
            return
        self.set_token_cookie(issued.token, issued.expires_at)
        self.redirect("/admin" if user.is_admin else "/chat")


class RegisterPage(PageHandler):
    def get(self) -> None:
        self.render_form("register.html", 200)

    async def post(self) -> None:
        values = {k: self.get_body_argument(k, "") for k in ("username", "name", "password")}
        try:
            form = Registration.parse(
                values, min_password=self.services.settings.password_min_length
            )
            user = await self.services.auth.register(form, address=self.client_ip)
        except AppError as exc:
            if exc.code is Code.UNAVAILABLE:
                raise
            self.render_form(
                "register.html",
                exc.status,
                error=exc.text(self.locale.translate),
                username=values["username"],
                name=values["name"],
            )
            return
        issued = self.services.auth.tokens.issue(user)
        self.set_token_cookie(issued.token, issued.expires_at)
        self.redirect("/chat")


class LogoutPage(PageHandler):
    async def post(self) -> None:
        if self.claims is not None:
            await self.services.auth.logout(self.claims)
        self.clear_token_cookie()
        self.redirect("/login")


class ChatPage(PageHandler):
    def get(self) -> None:
        if self.me is None:
            self.redirect("/login")
            return
        self.set_header("Cache-Control", "no-store")
        self.render(
            "chat.html", me=self.me, max_chars=self.services.settings.msg_max_chars, team=False
        )


class AdminOnlyPage(PageHandler):
    """A page of the team: 302 to the login without a token, 403 for a user, never cached."""

    def admin(self) -> User | None:
        if self.me is None:
            self.redirect("/login")
            return None
        if not self.me.is_admin:
            raise tornado.web.HTTPError(403)
        self.set_header("Cache-Control", "no-store")
        return self.me


class AdminPage(AdminOnlyPage):
    def get(self) -> None:
        if (me := self.admin()) is not None:
            max_chars = self.services.settings.msg_max_chars
            self.render("admin.html", me=me, max_chars=max_chars, team=True)


class ReportsPage(AdminOnlyPage):
    """The team's report over a period: the figures come from `GET /api/reports`."""

    def get(self) -> None:
        if (me := self.admin()) is not None:
            self.render("reports.html", me=me)
