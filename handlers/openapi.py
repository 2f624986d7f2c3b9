"""The OpenAPI 3.0 document describing every `/api/` route, its schemas and its errors.

3.0.3, not 3.1: the Swagger UI at `/api-docs` (4.x, from swagger-ui-bundle) reads 2.0 and
3.0.x only, as do many client generators. So a value that may be null says `nullable: true`,
not a `type` list, and a `$ref` stands alone (3.0 ignores keys beside it)."""

from __future__ import annotations

from functools import cache
from typing import Any

from services.errors import STATUS, Code
from services.inputs import REPORT_MAX_DAYS, USERNAME

TEXT_CHAR = "[^\\u0000-\\u001F\\u007F]"  # any character but a control character
USER_NAME = {"type": "string", "pattern": f"^{USERNAME.pattern}$"}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _errors(*codes: Code) -> dict[str, Any]:
    by_status: dict[int, list[str]] = {}
    for code in (*codes, Code.UNAVAILABLE):
        by_status.setdefault(STATUS[code], []).append(code.value)
    return {
        str(status): {
            "description": " or ".join(names),
            **_json(
                {
                    "allOf": [_ref("Error")],
                    "properties": {"error": {"enum": names}},
                }
            ),
        }
        for status, names in sorted(by_status.items())
    }


def _op(
    summary: str, ok: tuple[int, str, dict[str, Any] | None], *codes: Code, **extra: Any
) -> dict[str, Any]:
    status, description, schema = ok
    response: dict[str, Any] = {"description": description}
    if schema is not None:
        response.update(_json(schema))
    return {"summary": summary, "responses": {str(status): response, **_errors(*codes)}, **extra}


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"requestBody": {"required": True, **_json(schema)}}


_COUNT = {"type": "integer", "minimum": 0}
_SECONDS = {"type": "number", "nullable": True}
_MOMENT = (
    "ISO 8601: a date and time with its offset or `Z` (2026-12-01T09:30:00Z, "
    "2026-12-01T10:30:00+01:00, the `+` encoded as `%2B` or not), or a date alone, meaning its "
    "midnight UTC (2026-12-01)"
)

SECURED: dict[str, Any] = {"security": [{"bearer": []}, {"cookie": []}]}
CHANGES = Code.UNSUPPORTED_MEDIA_TYPE  # every POST must be application/json


@cache
def openapi_document() -> dict[str, Any]:
    schemas = {
        "Error": {
            "type": "object",
            "required": ["error", "message"],
            "properties": {
                "error": {"type": "string", "enum": [c.value for c in Code]},
                "message": {"type": "string"},
            },
        },
        "User": {
            "type": "object",
            "required": ["user", "name", "rol"],
            "properties": {
                "user": {"type": "string"},
                "name": {"type": "string"},
                "rol": {"type": "string", "enum": ["admin", "user"]},
            },
        },
        "Message": {
            "type": "object",
            "required": ["id", "from", "to", "text", "created_at", "client_msg_id"],
            "properties": {
                "id": {"type": "integer", "minimum": 1},
                "from": {"type": "string"},
                "to": {"type": "string", "description": 'A user name, or "admins"'},
                "text": {"type": "string"},
                "created_at": {"type": "string", "format": "date-time"},
                "client_msg_id": {"type": "string", "nullable": True, "maxLength": 64},
            },
        },
        "Conversation": {
            "type": "object",
            "required": ["user", "name", "online", "unread", "last_message"],
            "properties": {
                "user": {"type": "string"},
                "name": {"type": "string"},
                "online": {"type": "boolean"},
                "unread": {"type": "integer", "minimum": 0},
                "last_message": _ref("Message"),
            },
        },
        "Report": {
            "type": "object",
            "required": [
                "from",
                "to",
                "conversations_opened",
                "conversations_resolved",
                "messages_received",
                "replies_sent",
                "first_response_seconds",
                "resolution_seconds",
                "by_admin",
                "by_day",
            ],
            "properties": {
                "from": {"type": "string", "format": "date-time"},
                "to": {"type": "string", "format": "date-time"},
                "conversations_opened": _COUNT,
                "conversations_resolved": _COUNT,
                "messages_received": _COUNT,
                "replies_sent": _COUNT,
                "first_response_seconds": _ref("Durations"),
                "resolution_seconds": _ref("Durations"),
                "by_admin": {
                    "type": "array",
                    "description": "Every admin with replies, resolutions or first responses in "
                    "the period, by name",
                    "items": {
                        "type": "object",
                        "required": ["admin", "replies", "resolved", "first_response_seconds"],
                        "properties": {
                            "admin": {"type": "string"},
                            "replies": _COUNT,
                            "resolved": _COUNT,
                            "first_response_seconds": {
                                "type": "object",
                                "required": ["median"],
                                "properties": {"median": _SECONDS},
                            },
                        },
                    },
                },
                "by_day": {
                    "type": "array",
                    "description": "One entry per UTC date the period touches, oldest first, "
                    "zeros included",
                    "items": {
                        "type": "object",
                        "required": ["date", "received", "replied", "resolved"],
                        "properties": {
                            "date": {"type": "string", "format": "date"},
                            "received": _COUNT,
                            "replied": _COUNT,
                            "resolved": _COUNT,
                        },
                    },
                },
            },
        },
        "Durations": {
            "type": "object",
            "description": "Median and 90th percentile in seconds (interpolated between the two "
            "nearest values, rounded to the millisecond); null when nothing was measured",
            "required": ["median", "p90"],
            "properties": {"median": _SECONDS, "p90": _SECONDS},
        },
        "Credentials": {
            "type": "object",
            "required": ["username", "password"],
            "properties": {
                "username": {"type": "string", "minLength": 1, "maxLength": 255},
                "password": {"type": "string", "minLength": 1, "maxLength": 1024},
            },
        },
        "Registration": {
            "type": "object",
            "required": ["username", "name", "password"],
            "properties": {
                "username": USER_NAME,
                "name": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": 100,
                    # some character other than white space, and no control characters
                    "pattern": f"^{TEXT_CHAR}*[^\\s\\u0000-\\u001F\\u007F]{TEXT_CHAR}*$",
                    "description": "Display name; spaces around it are dropped",
                },
                "password": {
                    "type": "string",
                    "minLength": 12,
                    "maxLength": 128,
                    "description": "At least PASSWORD_MIN_LENGTH (default 12) characters",
                },
            },
        },
    }
    paths = {
        "/api/login": {
            "post": _op(
                "Log in: returns a token and sets the `token` cookie",
                (
                    200,
                    "Logged in",
                    {
                        "type": "object",
                        "required": ["token", "expires_at", "user"],
                        "properties": {
                            "token": {"type": "string"},
                            "expires_at": {"type": "string", "format": "date-time"},
                            "user": _ref("User"),
                        },
                    },
                ),
                Code.INVALID,
                Code.BAD_CREDENTIALS,
                CHANGES,
                Code.RATE_LIMITED,
                **_body(_ref("Credentials")),
            )
        },
        "/api/logout": {
            "post": _op(
                "Revoke the calling token and close the sockets that used it",
                (204, "Logged out", None),
                Code.UNAUTHENTICATED,
                CHANGES,
                **_body({"type": "object", "description": "Empty: {}"}),
                **SECURED,
            )
        },
        "/api/register": {
            "post": _op(
                "Create a user (no cookie: log in next)",
                (
                    201,
                    "Created",
                    {"type": "object", "required": ["user"], "properties": {"user": _ref("User")}},
                ),
                Code.INVALID,
                Code.EXISTS,
                CHANGES,
                Code.RATE_LIMITED,
                **_body(_ref("Registration")),
            )
        },
        "/api/me": {
            "get": _op(
                "The calling user", (200, "The user", _ref("User")), Code.UNAUTHENTICATED, **SECURED
            )
        },
        "/api/messages": {
            "get": _op(
                "A conversation's messages, oldest first, paging backwards with `before`",
                (
                    200,
                    "Messages",
                    {
                        "type": "object",
                        "required": ["messages"],
                        "properties": {"messages": {"type": "array", "items": _ref("Message")}},
                    },
                ),
                Code.INVALID,
                Code.UNAUTHENTICATED,
                Code.FORBIDDEN,
                Code.NOT_FOUND,
                parameters=[
                    {
                        "name": "with",
                        "in": "query",
                        "schema": USER_NAME,
                        "description": "The user whose conversation to read (required for admins)",
                    },
                    {"name": "before", "in": "query", "schema": {"type": "integer", "minimum": 0}},
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "default": 50},
                        "description": "At most 200; a larger value is treated as 200",
                    },
                ],
                **SECURED,
            )
        },
        "/api/conversations": {
            "get": _op(
                "Admins: every conversation, newest activity first",
                (
                    200,
                    "Conversations",
                    {
                        "type": "object",
                        "required": ["conversations"],
                        "properties": {
                            "conversations": {"type": "array", "items": _ref("Conversation")}
                        },
                    },
                ),
                Code.UNAUTHENTICATED,
                Code.FORBIDDEN,
                **SECURED,
            )
        },
        "/api/reports": {
            "get": _op(
                "Admins: the team's figures over the period [from, to)",
                (200, "The report", _ref("Report")),
                Code.INVALID,
                Code.UNAUTHENTICATED,
                Code.FORBIDDEN,
                parameters=[
                    {
                        "name": "from",
                        "in": "query",
                        "schema": {"type": "string"},
                        "description": f"Start, included. {_MOMENT}. Default: 7 days before `to`",
                        "example": "2026-12-01",
                    },
                    {
                        "name": "to",
                        "in": "query",
                        "schema": {"type": "string"},
                        "description": f"End, left out. {_MOMENT}. Default: now. After `from`, "
                        f"and at most {REPORT_MAX_DAYS} days after it",
                        "example": "2026-12-08",
                    },
                ],
                **SECURED,
            )
        },
        "/api/users/{user}/role": {
            "post": _op(
                "Admins: change a user's role; its live sockets reconnect with the new role",
                (
                    200,
                    "The changed user",
                    {"type": "object", "required": ["user"], "properties": {"user": _ref("User")}},
                ),
                Code.INVALID,
                Code.UNAUTHENTICATED,
                Code.FORBIDDEN,
                Code.NOT_FOUND,
                Code.CONFLICT,
                CHANGES,
                parameters=[
                    {"name": "user", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
                **_body(
                    {
                        "type": "object",
                        "required": ["rol"],
                        "properties": {"rol": {"type": "string", "enum": ["admin", "user"]}},
                    }
                ),
                **SECURED,
            )
        },
    }
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "supportchat",
            "version": "1.0.0",
            "description": "JSON API of the support chat. Every error is `{error, message}`. "
            "Requests that change state must be `Content-Type: application/json` (their CSRF "
            "protection). Strings must be valid Unicode (no lone surrogates) without U+0000.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "cookie": {"type": "apiKey", "in": "cookie", "name": "token"},
            },
        },
    }
