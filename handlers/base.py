"""`BaseHandler` and `ApiHandler`: services, the current user, bodies, security headers and
`write_error`, the one place where exceptions become responses."""

from __future__ import annotations

import json
import logging
from typing import Any

import tornado.web

from models.user import User
from services import Services, json_input
from services.auth import Claims
from services.errors import OUTAGE, AppError, Code, unavailable
from services.forwarding import client_address
from services.metrics import HTTP_REQUESTS
from services.wire import TOKEN_COOKIE

log = logging.getLogger(__name__)


def page_csp(link_origins: tuple[str, ...] = ()) -> str:
    """The pages' policy. `link_origins`: where an attachment's `GET url` may redirect (an S3
    store), for its images and the widget's fetches."""
    extra = "".join(f" {origin}" for origin in link_origins)
    return (
        "default-src 'self'; script-src 'self'; style-src 'self'; "
        f"img-src 'self' data: blob:{extra}; connect-src 'self'{extra}; "
        "font-src 'self'; object-src 'none'; base-uri 'self'; "
        "form-action 'self'; frame-ancestors 'none'"
    )


CSP = page_csp()


def security_headers(handler: tornado.web.RequestHandler, csp: str) -> None:
    """The headers every response of ours carries, vendored static files included."""
    handler.set_header("Content-Security-Policy", csp)
    handler.set_header("X-Content-Type-Options", "nosniff")
    # same-origin, not no-referrer: under no-referrer browsers send `Origin: null` with every
    # form post, our own included, and the pages' origin check would refuse them all.
    handler.set_header("Referrer-Policy", "same-origin")
    handler.set_header("X-Frame-Options", "DENY")
    handler.set_header("Cross-Origin-Opener-Policy", "same-origin")
    if handler.application.settings.get("hsts"):  # set before initialize() runs
        handler.set_header("Strict-Transport-Security", "max-age=15552000; includeSubDomains")


# Tornado's refusals as the contract's codes; what pages say for them.
_TORNADO_CODES = {
    401: Code.UNAUTHENTICATED,
    403: Code.FORBIDDEN,
    404: Code.NOT_FOUND,
    415: Code.UNSUPPORTED_MEDIA_TYPE,
    429: Code.RATE_LIMITED,
}
_PAGE_MESSAGES = {403: "Forbidden", 404: "Not found"}
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")  # that a handler of ours may have


class BaseHandler(tornado.web.RequestHandler):
    services: Services
    me: User | None = None
    claims: Claims | None = None
    csp = CSP
    speaks_json = False  # errors as JSON (True), or as the error page
    challenge: str | None = None  # WWW-Authenticate of a 401

    def initialize(self, services: Services) -> None:
        self.services = services

    def set_default_headers(self) -> None:
        csp = self.csp
        if csp is CSP:  # the pages' own, with the attachments' store (`make_app`)
            csp = self.application.settings.get("page_csp", CSP)
        security_headers(self, csp)

    @property
    def client_ip(self) -> str:
        return client_address(self.request, self.services.settings.trusted_proxies)

    def bearer_or_cookie(self) -> str | None:
        header = self.request.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
        return self.get_cookie(TOKEN_COOKIE) or None

    async def load_user(self) -> None:
        """Who is calling, from the database; a bad token is simply no user."""
        token = self.bearer_or_cookie()
        if token is None:
            return
        try:
            self.me, self.claims = await self.services.auth.authenticate(token)
        except AppError as exc:
            if exc.code is not Code.UNAUTHENTICATED:
                raise

    def set_token_cookie(self, token: str, expires: Any) -> None:
        self.set_cookie(
            TOKEN_COOKIE,
            token,
            expires=expires,
            path="/",
            httponly=True,
            samesite="Lax",
            secure=self.services.settings.cookie_secure,
        )

    def clear_token_cookie(self) -> None:
        self.clear_cookie(
            TOKEN_COOKIE,
            path="/",
            httponly=True,
            samesite="Lax",
            secure=self.services.settings.cookie_secure,
        )

    def allow_header(self, status_code: int) -> None:
        """RFC 9110: a 405 says which methods the resource has (send_error cleared headers)."""
        if status_code == 405:
            methods = [m for m in METHODS if m.lower() in type(self).__dict__]
            self.set_header("Allow", ", ".join(methods))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """The one place where an exception becomes a response: `{"error", "message"}` JSON
        from handlers that speak JSON (the API, operations), the error page from pages."""
        exc = kwargs.get("exc_info", (None, None, None))[1]
        status, error = self.error_of(status_code, exc)
        self.allow_header(status)
        if status == 401 and self.challenge is not None:
            self.set_header("WWW-Authenticate", self.challenge)
        if self.speaks_json:
            self.send_json(error.body(), status)
            return
        self.set_status(status)
        self.render("error.html", status=status, message=error.message)

    def error_of(self, status: int, exc: BaseException | None) -> tuple[int, AppError]:
        """The status and the error shown for `exc` (or for Tornado's own `status`)."""
        if isinstance(exc, AppError):
            return exc.status, exc
        if status < 500:  # Tornado's own refusals (404, 405, a missing argument) keep theirs
            code = _TORNADO_CODES.get(status, Code.INVALID)
            if self.speaks_json:
                return status, AppError(code, self._reason)
            # in English: pages (`HtmlHandler`) translate whatever they show
            return status, AppError(code, _PAGE_MESSAGES.get(status, "Something went wrong."))
        if isinstance(exc, OUTAGE):
            return 503, unavailable()
        return 503, AppError(Code.UNAVAILABLE, "Something went wrong on our side.")

    def send_json(self, body: dict[str, Any], status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(body, ensure_ascii=False))

    def on_finish(self) -> None:
        route = type(self).__name__
        HTTP_REQUESTS.labels(route, str(self.get_status())).inc()

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        if isinstance(value, AppError | tornado.web.HTTPError):
            return  # expected: answered with its own status
        if isinstance(value, OUTAGE):
            log.warning(
                "%s %s: database unavailable (%s)",
                self.request.method,
                self.request.path,
                type(value).__name__,
            )
            return
        super().log_exception(typ, value, tb)


class ApiHandler(BaseHandler):
    """JSON in and out. State changes must be `application/json`, which a cross-site form
    cannot send: with the SameSite=Lax cookie, that is the API's CSRF protection. A DELETE
    needs no body, hence no type: no form sends that method, and a cross-site script must
    first pass a CORS preflight that this server never grants."""

    speaks_json = True

    def check_xsrf_cookie(self) -> None:
        """No `_xsrf` on the API: `prepare` requires JSON bodies instead."""

    async def prepare(self) -> None:
        method = (self.request.method or "").lower()
        if method not in ("get", "head", "options"):
            if method not in type(self).__dict__:
                raise tornado.web.HTTPError(405)  # before the body is judged
            media = self.request.headers.get("Content-Type", "").split(";")[0].strip().lower()
            bodiless_delete = method == "delete" and not self.request.body
            if media != "application/json" and not bodiless_delete:
                raise AppError(Code.UNSUPPORTED_MEDIA_TYPE, "Send the body as application/json.")
        await self.load_user()

    def json_body(self) -> object:
        try:
            return json_input.loads(self.request.body or b"null")
        except json_input.TooDeep:
            raise AppError(Code.INVALID, "The body is nested too deeply.") from None
        except (ValueError, UnicodeDecodeError):
            raise AppError(Code.INVALID, "The body is not valid JSON.") from None

    def require_user(self) -> User:
        if self.me is None:
            raise AppError(Code.UNAUTHENTICATED, "Log in first.")
        return self.me

    def require_claims(self) -> Claims:
        """The verified claims of the calling token."""
        self.require_user()
        if self.claims is None:
            raise AppError(Code.UNAUTHENTICATED, "Log in first.")
        return self.claims

    def require_admin(self) -> User:
        me = self.require_user()
        if not me.is_admin:
            raise AppError(Code.FORBIDDEN, "Admins only.")
        return me
