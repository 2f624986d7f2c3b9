"""`Code`, `AppError` and the code -> HTTP status table."""

from __future__ import annotations

from enum import StrEnum

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
    Code.UNSUPPORTED_MEDIA_TYPE: 415,
    Code.RATE_LIMITED: 429,
    Code.UNAVAILABLE: 503,
}


class AppError(Exception):
    """An error whose code and message may be shown to the client as they are."""

    def __init__(self, code: Code, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message

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


def unavailable() -> AppError:
    return AppError(Code.UNAVAILABLE, "The service is temporarily unavailable; try again.")
