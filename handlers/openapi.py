"""The OpenAPI 3.0 document describing every `/api/` route, its schemas and its errors.

3.0.3, not 3.1: the Swagger UI at `/api-docs` (4.x, from swagger-ui-bundle) reads 2.0 and
3.0.x only, as do many client generators. So a value that may be null says `nullable: true`,
not a `type` list, and a `$ref` stands alone (3.0 ignores keys beside it)."""

from __future__ import annotations

from functools import cache
from typing import Any

from config.settings import Settings
from models.conversation import STATUSES
from services.canned import CANNED_MAX
from services.errors import STATUS, Code
from services.inputs import ATTACHMENT_ID, MAX_ATTACHMENTS, REPORT_MAX_DAYS, TAG, USERNAME

TEXT_CHAR = "[^\\u0000-\\u001F\\u007F]"  # any character but a control character
USER_NAME = {"type": "string", "pattern": f"^{USERNAME.pattern}$"}
SHORTCUT_SCHEMA = {
    "type": "string",
    "pattern": f"^{TAG.pattern}$",
    "description": "1-32 of a-z 0-9 _ - (upper case is refused, not folded); unique",
}
CANNED_TEXT = {
    "type": "string",
    "minLength": 1,
    "maxLength": 4000,
    "description": "Text as for a message: at most MSG_MAX_CHARS (default 4,000) characters. "
    "`{{name}}` stands for the user's display name when the inbox inserts it.",
}


DISPLAY_NAME = {
    "type": "string",
    "minLength": 1,
    "maxLength": 100,
    # some character other than white space, and no control characters
    "pattern": f"^{TEXT_CHAR}*[^\\s\\u0000-\\u001F\\u007F]{TEXT_CHAR}*$",
    "description": "Display name; spaces around it are dropped",
}


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


STATUS_SCHEMA = {"type": "string", "enum": list(STATUSES)}
_ONE = f"({'|'.join(STATUSES)})"
STATUS_LIST = f"^({_ONE}(,{_ONE})*)?$"
LABEL_SCHEMA = {"type": "string", "pattern": f"^{TAG.pattern}$"}
LABELS = {"type": "array", "maxItems": 10, "items": LABEL_SCHEMA, "uniqueItems": True}
CONVERSATION_PROPERTIES: dict[str, Any] = {
    "user": {"type": "string"},
    "name": {"type": "string"},
    "rol": {"type": "string", "enum": ["admin", "user"]},
    "online": {"type": "boolean"},
    "unread": {"type": "integer", "minimum": 0},
    "last_message": _ref("Message"),
    "status": STATUS_SCHEMA,
    "assignee": {"type": "string", "nullable": True},
    "labels": {**LABELS, "description": "In alphabetical order"},
    "snoozed_until": {"type": "string", "format": "date-time", "nullable": True},
    "visitor": {"type": "boolean"},
    "email": {"type": "string", "nullable": True},
    "verified": {"type": "boolean"},
}
_COUNT = {"type": "integer", "minimum": 0}
_SECONDS = {"type": "number", "nullable": True}
_MOMENT = (
    "ISO 8601: a date and time with its offset or `Z` (2026-12-01T09:30:00Z, "
    "2026-12-01T10:30:00+01:00, the `+` encoded as `%2B` or not), or a date alone, meaning its "
    "midnight UTC (2026-12-01)"
)

ATTACHMENT_PROPERTIES: dict[str, Any] = {
    "id": {"type": "string", "pattern": f"^{ATTACHMENT_ID.pattern}$"},
    "name": {"type": "string", "minLength": 1, "maxLength": 255},
    "size": {"type": "integer", "minimum": 1, "description": "Bytes, as stored"},
    "content_type": {"type": "string", "description": "A media type of UPLOAD_TYPES"},
    "url": {"type": "string", "description": "`/api/uploads/<id>`: the bytes"},
    "thumbnail_url": {
        "type": "string",
        "nullable": True,
        "description": "`/api/uploads/<id>/thumbnail` (images only): at most 320 px a side",
    },
    "width": {"type": "integer", "nullable": True, "minimum": 1},
    "height": {"type": "integer", "nullable": True, "minimum": 1},
}
_UPLOAD_ID = {
    "name": "id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": f"^{ATTACHMENT_ID.pattern}$"},
}


def _served(summary: str) -> dict[str, Any]:
    """A GET that answers with stored bytes, or with a redirect to the store."""
    return {
        "summary": summary,
        "parameters": [_UPLOAD_ID],
        "responses": {
            "200": {
                "description": "The bytes (a directory store), with the stored Content-Type, "
                "`Content-Disposition` (`inline` for images, else `attachment`), "
                "`Cache-Control: private` and `Content-Security-Policy: default-src 'none'`",
                "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
            },
            "302": {
                "description": "An S3 store: `Location` is a URL signed for 60 s that serves "
                "the bytes with the same Content-Type and Content-Disposition"
            },
            **_errors(Code.NOT_FOUND),
        },
        **SECURED,
    }


SECURED: dict[str, Any] = {"security": [{"bearer": []}, {"cookie": []}]}
CHANGES = Code.UNSUPPORTED_MEDIA_TYPE  # every POST and PATCH must be application/json


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
            "required": [
                "id",
                "from",
                "from_name",
                "to",
                "text",
                "created_at",
                "client_msg_id",
                "note",
                "attachments",
            ],
            "properties": {
                "id": {"type": "integer", "minimum": 1},
                "from": {"type": "string"},
                "from_name": {"type": "string", "description": "The sender's display name"},
                "to": {"type": "string", "description": 'A user name, or "admins"'},
                "text": {"type": "string"},
                "created_at": {"type": "string", "format": "date-time"},
                "client_msg_id": {"type": "string", "nullable": True, "maxLength": 64},
                "note": {
                    "type": "boolean",
                    "description": "A private note of the team (admins only ever see one)",
                },
                "attachments": {
                    "type": "array",
                    "maxItems": MAX_ATTACHMENTS,
                    "items": _ref("Attachment"),
                    "description": "Files of the message, oldest upload first; [] when none",
                },
            },
        },
        "Attachment": {
            "type": "object",
            "required": list(ATTACHMENT_PROPERTIES),
            "properties": ATTACHMENT_PROPERTIES,
        },
        "Conversation": {
            "type": "object",
            "required": list(CONVERSATION_PROPERTIES),
            "properties": CONVERSATION_PROPERTIES,
        },
        "Admin": {
            "type": "object",
            "required": ["user", "name", "online", "available", "open_assigned"],
            "properties": {
                "user": {"type": "string"},
                "name": {"type": "string"},
                "online": {"type": "boolean"},
                "available": {"type": "boolean"},
                "open_assigned": {
                    "type": "integer",
                    "minimum": 0,
                    "description": "Open and pending conversations assigned to this admin",
                },
            },
        },
        "ConversationChange": {
            "type": "object",
            "minProperties": 1,
            "properties": {
                "status": STATUS_SCHEMA,
                "assignee": {**USER_NAME, "nullable": True, "description": "An admin, or null"},
                "labels": LABELS,
                "snoozed_until": {
                    "type": "string",
                    "format": "date-time",
                    "nullable": True,
                    "description": 'In the future; with status "snoozed" (given alone, it '
                    "snoozes the conversation)",
                },
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
                "name": DISPLAY_NAME,
                "password": {
                    "type": "string",
                    "minLength": 12,
                    "maxLength": 128,
                    "description": "At least PASSWORD_MIN_LENGTH (default 12) characters",
                },
            },
        },
        "VisitorUser": {
            "type": "object",
            "required": ["user", "name", "rol", "visitor", "verified", "email"],
            "properties": {
                "user": {"type": "string", "description": "Generated: `v_` and 16 of a-z 0-9"},
                "name": {"type": "string"},
                "rol": {"type": "string", "enum": ["user"]},
                "visitor": {"type": "boolean", "enum": [True]},
                "verified": {
                    "type": "boolean",
                    "description": "Identified by the site (`id` and `hash`)",
                },
                "email": {"type": "string", "nullable": True},
            },
        },
        "VisitorAdmitted": {
            "type": "object",
            "required": ["token", "expires_at", "user"],
            "properties": {
                "token": {
                    "type": "string",
                    "description": "A JWT with the claims of any token and `vis: true`; it "
                    "lives VISITOR_TTL (default 30d)",
                },
                "expires_at": {"type": "string", "format": "date-time"},
                "user": _ref("VisitorUser"),
            },
        },
        "VisitorRequest": {
            "type": "object",
            "description": "One of three: `{name?, email?}` a new anonymous visitor; "
            "`{id, name?, email?, hash}` the visitor the site identifies, `hash` being the "
            "lowercase hex HMAC-SHA256 of `id` under WIDGET_SECRET; `{token}` alone, a fresh "
            "token for the visitor of a visitor token (expired at most 7 days ago). `null` "
            "counts as left out.",
            "properties": {
                "name": {**DISPLAY_NAME, "nullable": True},
                "email": {
                    "type": "string",
                    "maxLength": 254,
                    "pattern": "^[^@\\s]+@[^@\\s.]+(\\.[^@\\s.]+)+$",
                    "nullable": True,
                },
                "id": {"type": "string", "minLength": 1, "maxLength": 255},
                "hash": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                "token": {"type": "string", "minLength": 1},
            },
        },
        "CannedResponse": {
            "type": "object",
            "required": ["id", "shortcut", "text"],
            "properties": {
                "id": {"type": "integer", "minimum": 1},
                "shortcut": SHORTCUT_SCHEMA,
                "text": {"type": "string"},
            },
        },
        "CannedResponseDraft": {
            "type": "object",
            "required": ["shortcut", "text"],
            "properties": {"shortcut": SHORTCUT_SCHEMA, "text": CANNED_TEXT},
        },
        "CannedResponseChange": {
            "type": "object",
            "description": "Either field or both; what is left out stays as it is",
            "anyOf": [{"required": ["shortcut"]}, {"required": ["text"]}],
            "properties": {"shortcut": SHORTCUT_SCHEMA, "text": CANNED_TEXT},
        },
    }
    one_canned = {
        "type": "object",
        "required": ["canned_response"],
        "properties": {"canned_response": _ref("CannedResponse")},
    }
    canned_id = {
        "name": "id",
        "in": "path",
        "required": True,
        "schema": {"type": "integer", "minimum": 1},
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
        "/api/visitors": {
            "post": _op(
                "The website widget's visitors: a new anonymous one, the one the site "
                "identifies, or a fresh token (404 while WIDGET_ORIGINS is unset; no cookie)",
                (
                    200,
                    "A fresh token for a known visitor (a refresh, or an `id` seen before)",
                    _ref("VisitorAdmitted"),
                ),
                Code.INVALID,
                Code.BAD_CREDENTIALS,
                Code.FORBIDDEN,
                Code.NOT_FOUND,
                CHANGES,
                Code.RATE_LIMITED,
                **_body(_ref("VisitorRequest")),
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
                "Admins: conversations, newest activity (notes included) first, a page at a time",
                (
                    200,
                    "Conversations",
                    {
                        "type": "object",
                        "required": ["conversations", "next"],
                        "properties": {
                            "conversations": {"type": "array", "items": _ref("Conversation")},
                            "next": {
                                "type": "string",
                                "nullable": True,
                                "description": "Give it as `before` for the next page; null "
                                "on the last page",
                            },
                        },
                    },
                ),
                Code.INVALID,
                Code.UNAUTHENTICATED,
                Code.FORBIDDEN,
                parameters=[
                    {
                        "name": "status",
                        "in": "query",
                        "schema": {"type": "string", "pattern": STATUS_LIST},
                        "description": "One or more of open, pending, snoozed, resolved, "
                        "separated by commas (default: every status)",
                    },
                    {
                        "name": "assignee",
                        "in": "query",
                        "schema": {"type": "string", "pattern": f"^(|me|none|{USERNAME.pattern})$"},
                        "description": "`me`, `none`, or an admin's user name",
                    },
                    {
                        "name": "label",
                        "in": "query",
                        "schema": {"type": "string", "pattern": f"^({TAG.pattern})?$"},
                        "description": "Only conversations with this label (empty: any)",
                    },
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "default": 50},
                        "description": "At most 200; a larger value is treated as 200",
                    },
                    {
                        "name": "before",
                        "in": "query",
                        "schema": {"type": "string", "pattern": "^[0-9]{0,19}$"},
                        "description": "The `next` of the previous page",
                    },
                ],
                **SECURED,
            )
        },
        "/api/conversations/{user}": {
            "patch": _op(
                "Admins: change a conversation's status, assignee, labels or snooze; every "
                "admin gets the `conversation` event",
                (
                    200,
                    "The changed conversation",
                    {
                        "type": "object",
                        "required": ["conversation"],
                        "properties": {"conversation": _ref("Conversation")},
                    },
                ),
                Code.INVALID,
                Code.UNAUTHENTICATED,
                Code.FORBIDDEN,
                Code.NOT_FOUND,
                CHANGES,
                parameters=[
                    {"name": "user", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
                **_body(_ref("ConversationChange")),
                **SECURED,
            )
        },
        "/api/me/availability": {
            "put": _op(
                "Admins: whether auto-assignment gives me new conversations",
                (
                    200,
                    "The availability",
                    {
                        "type": "object",
                        "required": ["available"],
                        "properties": {"available": {"type": "boolean"}},
                    },
                ),
                Code.INVALID,
                Code.UNAUTHENTICATED,
                Code.FORBIDDEN,
                CHANGES,
                **_body(
                    {
                        "type": "object",
                        "required": ["available"],
                        "properties": {"available": {"type": "boolean"}},
                    }
                ),
                **SECURED,
            )
        },
        "/api/admins": {
            "get": _op(
                "Admins: the team, with presence, availability and open conversations",
                (
                    200,
                    "The admins",
                    {
                        "type": "object",
                        "required": ["admins"],
                        "properties": {"admins": {"type": "array", "items": _ref("Admin")}},
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
        "/api/uploads": {
            "post": _op(
                "Upload a file (then name its id in a message's `attachments`)",
                (
                    201,
                    "Stored",
                    {
                        "type": "object",
                        "required": ["attachment"],
                        "properties": {"attachment": _ref("Attachment")},
                    },
                ),
                Code.INVALID,
                Code.UNAUTHENTICATED,
                Code.TOO_LARGE,
                Code.UNSUPPORTED_MEDIA_TYPE,
                Code.RATE_LIMITED,
                description="The body is the file's bytes (not JSON), its media type the "
                "`Content-Type` (one of UPLOAD_TYPES; the bytes must be of that type), at most "
                "UPLOAD_MAX_BYTES (default 10 MiB), refused with 413 as soon as that is known. "
                "The `Upload-Name` header, which no cross-site form can send, stands in for "
                "the JSON rule as the CSRF protection. At most UPLOADS_PER_MINUTE (default "
                "30) a user. An upload in no message 24 hours later is deleted.",
                parameters=[
                    {
                        "name": "Upload-Name",
                        "in": "header",
                        "required": True,
                        "description": "The file's name, percent-encoded UTF-8: 1-255 "
                        "characters, no control characters, no `/` or `\\`",
                        "schema": {"type": "string", "minLength": 1},
                    }
                ],
                requestBody={
                    "required": True,
                    "content": {
                        t: {"schema": {"type": "string", "format": "binary"}}
                        for t in Settings().upload_types
                    },
                },
                **SECURED,
            )
        },
        "/api/uploads/{id}": {
            "get": _served(
                "The bytes of an upload: for its uploader, and once in a message for that "
                "conversation's user (not a private note's) and every admin; 404 for anyone "
                "else and without a token, as for no such id"
            )
        },
        "/api/uploads/{id}/thumbnail": {
            "get": _served(
                "An image's thumbnail (at most 320 px a side, WebP), for the same people; 404 "
                "for an upload that is no image"
            )
        },
        "/api/canned-responses": {
            "get": _op(
                "Admins: the team's canned responses, by shortcut",
                (
                    200,
                    "Canned responses",
                    {
                        "type": "object",
                        "required": ["canned_responses"],
                        "properties": {
                            "canned_responses": {
                                "type": "array",
                                "items": _ref("CannedResponse"),
                                "maxItems": CANNED_MAX,
                            }
                        },
                    },
                ),
                Code.UNAUTHENTICATED,
                Code.FORBIDDEN,
                **SECURED,
            ),
            "post": _op(
                f"Admins: add a canned response (the team keeps at most {CANNED_MAX:,})",
                (201, "Created", one_canned),
                Code.INVALID,
                Code.UNAUTHENTICATED,
                Code.FORBIDDEN,
                Code.EXISTS,
                CHANGES,
                **_body(_ref("CannedResponseDraft")),
                **SECURED,
            ),
        },
        "/api/canned-responses/{id}": {
            "patch": _op(
                "Admins: change a canned response's shortcut, text or both",
                (200, "The changed canned response", one_canned),
                Code.INVALID,
                Code.UNAUTHENTICATED,
                Code.FORBIDDEN,
                Code.NOT_FOUND,
                Code.EXISTS,
                CHANGES,
                parameters=[canned_id],
                **_body(_ref("CannedResponseChange")),
                **SECURED,
            ),
            "delete": _op(
                "Admins: delete a canned response (no body needed)",
                (204, "Deleted", None),
                Code.UNAUTHENTICATED,
                Code.FORBIDDEN,
                Code.NOT_FOUND,
                parameters=[canned_id],
                **SECURED,
            ),
        },
    }
    paths["/api/visitors"]["post"]["responses"]["201"] = {
        "description": "A new visitor (anonymous, or an `id` seen for the first time)",
        **_json(_ref("VisitorAdmitted")),
    }
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "supportchat",
            "version": "1.0.0",
            "description": "JSON API of the support chat. Every error is `{error, message}`. "
            "Requests that change state must be `Content-Type: application/json` (their CSRF "
            "protection); a DELETE needs no body. Strings must be valid Unicode (no lone "
            "surrogates) without U+0000.",
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
