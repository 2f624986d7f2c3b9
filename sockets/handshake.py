"""Cookie or `auth.token` -> user, or one of the contract's refusal texts."""

from __future__ import annotations

import logging
from typing import Any

from socketio.exceptions import ConnectionRefusedError as Refused
from tornado.httputil import parse_cookie

from models.user import Identity
from services.auth import Auth, Claims
from services.errors import AppError, Code
from services.wire import BAD_TOKEN, NO_TOKEN, NOT_AUTHENTICATED, REFUSED_UNAVAILABLE, TOKEN_COOKIE

log = logging.getLogger(__name__)


def token_from(environ: dict[str, Any], auth: object) -> str:
    """The handshake's token: a non-empty `auth.token`, else the `token` cookie."""
    if isinstance(auth, dict):
        token = auth.get("token")
        if isinstance(token, str) and token:
            return token
    cookie_header = environ.get("HTTP_COOKIE")
    if cookie_header is None:
        raise Refused(NOT_AUTHENTICATED)
    token = parse_cookie(cookie_header).get(TOKEN_COOKIE, "")
    if not token:
        raise Refused(NO_TOKEN)
    return token


def claims_of(auth_service: Auth, token: str) -> Claims:
    """The token's claims, before anything is awaited (refused when it is not valid)."""
    try:
        return auth_service.tokens.verify(token)
    except AppError:
        raise Refused(BAD_TOKEN) from None


async def authenticate(auth_service: Auth, token: str) -> tuple[Identity, Claims]:
    """Who the token speaks for, from the database (`Auth.identify`), or a refusal text."""
    try:
        return await auth_service.identify(token)
    except AppError as exc:
        if exc.code is Code.UNAVAILABLE:
            raise Refused(REFUSED_UNAVAILABLE) from None
        raise Refused(BAD_TOKEN) from None
    except Exception as exc:
        log.warning("handshake refused, database unavailable: %s", type(exc).__name__)
        raise Refused(REFUSED_UNAVAILABLE) from None
