"""`Code`, `AppError` and the code -> HTTP status table."""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Protocol

import redis.exceptions
import sqlalchemy.exc


class Code(StrEnum):
    INVALID = "invalid"
    BAD_CREDENTIALS = "bad_credentials"
    UNAUTHENTICATED = "unauthenticated"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    EXISTS = "exists"
    CONFLICT = "conflict"
    TOO_LARGE = "too_large"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    RATE_LIMITED = "rate_limited"
    UNAVAILABLE = "unavailable"


STATUS = {
    Code.INVALID: 400,
    Code.BAD_CREDENTIALS: 401,
    Code.UNAUTHENTICATED: 401,
    Code.FORBIDDEN: 403,
    Code.NOT_FOUND: 404,
    Code.EXISTS: 409,
    Code.CONFLICT: 409,
    Code.TOO_LARGE: 413,
    Code.UNSUPPORTED_MEDIA_TYPE: 415,
    Code.RATE_LIMITED: 429,
    Code.UNAVAILABLE: 503,
}


class Label(str):
    """A word of ours among a message's parameters (a field's name, as the form labels it),
    translated along with the message; other parameters (numbers, what a client sent) are
    shown as they are."""

    __slots__ = ()


class AppError(Exception):
    """An error whose code and message may be shown to the client as they are.

    The message is a template with `%(name)s` placeholders filled from `params`, so that a
    translation words the whole sentence: `message` is the English one (the JSON API, acks,
    the command line), `text(locale.translate)` the one pages show."""

    def __init__(self, code: Code, template: str, /, **params: object) -> None:
        self.code, self.template, self.params = code, template, params
        self.message = self._fill()
        super().__init__(self.message)

    def text(self, translate: Callable[[str], str]) -> str:
        """The message in the language of `translate` (a `tornado.locale.Locale.translate`)."""
        return self.translated(translate).message

    def translated(self, translate: Callable[[str], str]) -> AppError:
        """This error with its message in the language of `translate` (for the error page)."""
        params = {
            k: Label(translate(v)) if isinstance(v, Label) else v for k, v in self.params.items()
        }
        return AppError(self.code, translate(self.template), **params)

    def _fill(self) -> str:
        if not self.params:
            return self.template  # no placeholders: a "%" in it is just a "%"
        return self.template % self.params

    @property
    def status(self) -> int:
        return STATUS[self.code]

    def body(self) -> dict[str, str]:
        return {"error": self.code.value, "message": self.message}

    def ack(self) -> dict[str, object]:
        return {"ok": False, **self.body()}


# A dependency (database, Redis) that is down or unreachable, as opposed to a bug.
OUTAGE: tuple[type[BaseException], ...] = (
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.TimeoutError,
    redis.exceptions.RedisError,
    OSError,
    TimeoutError,
)


class _Someone(Protocol):
    @property
    def is_admin(self) -> bool: ...


def admins_only(me: _Someone) -> None:
    """Refuse (`forbidden`) anyone but an admin: the one check of every service for the team."""
    if not me.is_admin:
        raise AppError(Code.FORBIDDEN, "Admins only.")


def unavailable() -> AppError:
    return AppError(Code.UNAVAILABLE, "The service is temporarily unavailable; try again.")
