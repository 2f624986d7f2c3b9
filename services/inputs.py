"""Parsing at the edge: raw JSON, form fields or event payloads -> frozen, typed values.

Every parser raises `AppError(Code.INVALID, ...)` with a message safe to show; past these
functions code sees only checked values. HTTP and Socket.IO share them. Messages are sentences
with `%(...)s` placeholders (locale/ translates them for the pages); a field is named as its form
labels it, or else by its JSON key in quotes.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import unquote

from models.attachment import ID_CHARS
from models.attachment import NAME_MAX as FILE_NAME_MAX
from models.conversation import SNOOZED, STATUSES
from models.message import ADMINS
from models.user import ADMIN, USER
from models.visitor import EMAIL_MAX, EXTERNAL_ID_MAX
from services.errors import AppError, Code, Label
from services.wire import HISTORY_DEFAULT, HISTORY_LIMIT

USERNAME = re.compile(r"[A-Za-z0-9_.\-]{3,32}")  # always fullmatch: `$` allows a final "\n"
# A canned response's shortcut and a conversation's label: always fullmatch.
TAG = re.compile(r"[a-z0-9_\-]{1,32}")
MAX_ID = 2**63 - 1
CLIENT_MSG_ID_MAX = 64
PASSWORD_MAX = 128
NAME_MAX = 100


# The fields of the pages' forms, named in messages as the forms label them (and translated).
LABELS = {"username": Label("Username"), "name": Label("Name"), "password": Label("Password")}


def invalid(template: str, /, **params: object) -> AppError:
    return AppError(Code.INVALID, template, **params)


def refused(template: str, field: str, **params: object) -> AppError:
    """`invalid` with `%(field)s`: the field's label, or its JSON key in quotes."""
    return invalid(template, field=LABELS.get(field, f"'{field}'"), **params)


def as_object(data: object, what: str = "payload") -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        if what == "body":
            raise invalid("The body must be a JSON object.")
        raise invalid("The payload must be a JSON object.")
    return data


def valid_text(value: object, field: str, *, max_chars: int) -> str:
    """A non-empty string of valid Unicode (no lone surrogates, no U+0000)."""
    if not isinstance(value, str):
        raise refused("%(field)s must be a string.", field)
    if value == "":
        raise refused("%(field)s must not be empty.", field)
    if len(value) > max_chars:
        raise refused("%(field)s must be at most %(max)d characters.", field, max=max_chars)
    if "\x00" in value:
        raise refused("%(field)s must not contain U+0000.", field)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise refused("%(field)s must be valid Unicode.", field) from None
    return value


def user_name(value: object, field: str = "username") -> str:
    """A name that refers to a user: any string of the allowed characters (ASCII case is
    ignored later)."""
    if not isinstance(value, str) or not USERNAME.fullmatch(value):
        raise refused("%(field)s must be 3-32 letters, digits, '_', '.' or '-'.", field)
    return value


def an_id(value: object, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_ID:
        raise refused("%(field)s must be a whole number of at least 0.", field)
    return value


def query_id(raw: str | None, field: str, *, cap: int = MAX_ID) -> int | None:
    """A non-negative whole number from a query string; above `cap`, `cap` when it is below
    the largest id, else refused."""
    if raw is None or raw == "":
        return None
    if not raw.isascii() or not raw.isdigit():
        raise refused("%(field)s must be a whole number of at least 0.", field)
    if len(raw) > 19:  # past any id; int() of thousands of digits is refused by Python
        if cap < MAX_ID:
            return cap
        raise refused("%(field)s must be a whole number of at least 0.", field)
    return min(an_id(int(raw), field), cap)


def page_size(raw: str | None, *, cap: int) -> int | None:
    """A `limit` query parameter: at least 1, above `cap` taken as `cap`; None when absent."""
    count = query_id(raw, "limit", cap=cap)
    if count is not None and count < 1:
        raise refused("%(field)s must be at least 1.", "limit")
    return count


ATTACHMENT_ID = re.compile(rf"[A-Za-z0-9_\-]{{{ID_CHARS}}}")  # always fullmatch
MAX_ATTACHMENTS = 10


def attachment_ids(value: object) -> tuple[str, ...]:
    """The `attachments` of a message: at most MAX_ATTACHMENTS distinct upload ids."""
    if value is None:
        return ()
    if not isinstance(value, list) or len(value) > MAX_ATTACHMENTS:
        raise refused(
            "%(field)s must be a list of at most %(max)d upload ids.",
            "attachments",
            max=MAX_ATTACHMENTS,
        )
    if not all(isinstance(v, str) and ATTACHMENT_ID.fullmatch(v) for v in value):
        raise refused("%(field)s must hold upload ids given by /api/uploads.", "attachments")
    if len(set(value)) != len(value):
        raise refused("%(field)s must not name an upload twice.", "attachments")
    return tuple(value)


@dataclass(frozen=True)
class Draft:
    """What `mensaje_privado` asks to send. `to` is None when left out; `text` may be empty
    when `attachments` is not."""

    to: str | None
    text: str
    client_msg_id: str | None
    note: bool = False
    attachments: tuple[str, ...] = ()

    @classmethod
    def parse(cls, data: object, *, max_text: int) -> Draft:
        body = as_object(data)
        to = body.get("to")
        if to is not None and to != ADMINS:
            to = user_name(to, "to")
        cid = body.get("client_msg_id")
        if cid is not None and (not isinstance(cid, str) or not 1 <= len(cid) <= CLIENT_MSG_ID_MAX):
            raise refused(
                "%(field)s must be a string of 1-%(max)d characters.",
                "client_msg_id",
                max=CLIENT_MSG_ID_MAX,
            )
        if cid is not None:
            valid_text(cid, "client_msg_id", max_chars=CLIENT_MSG_ID_MAX)
        note = body.get("note", False)
        if not isinstance(note, bool):
            raise refused("%(field)s must be true or false.", "note")
        attachments = attachment_ids(body.get("attachments"))
        text = body.get("text")
        if attachments and text in ("", None):
            return cls(to=to, text="", client_msg_id=cid, note=note, attachments=attachments)
        return cls(
            to=to,
            text=valid_text(text, "text", max_chars=max_text),
            client_msg_id=cid,
            note=note,
            attachments=attachments,
        )


@dataclass(frozen=True)
class Typing:
    to: str | None
    typing: bool

    @classmethod
    def parse(cls, data: object) -> Typing:
        body = as_object(data)
        to = body.get("to")
        if to is not None and to != ADMINS:
            to = user_name(to, "to")
        typing = body.get("typing")
        if not isinstance(typing, bool):
            raise refused("%(field)s must be true or false.", "typing")
        return cls(to=to, typing=typing)


@dataclass(frozen=True)
class ReadUpTo:
    with_: str | None
    up_to: int

    @classmethod
    def parse(cls, data: object) -> ReadUpTo:
        body = as_object(data)
        with_ = body.get("with")
        return cls(
            with_=None if with_ is None else user_name(with_, "with"),
            up_to=an_id(body.get("up_to"), "up_to"),
        )


def sync_after(data: object) -> int:
    return an_id(as_object(data).get("after", 0), "after")


def announcement_text(data: object, *, max_text: int) -> str:
    return valid_text(as_object(data).get("text"), "text", max_chars=max_text)


@dataclass(frozen=True)
class HistoryQuery:
    with_: str | None
    before: int | None
    limit: int

    @classmethod
    def parse(cls, with_: str | None, before: str | None, limit: str | None) -> HistoryQuery:
        count = page_size(limit, cap=HISTORY_LIMIT)
        return cls(
            with_=None if with_ is None else user_name(with_, "with"),
            before=query_id(before, "before"),
            limit=count or HISTORY_DEFAULT,
        )


REPORT_DEFAULT = timedelta(days=7)
REPORT_MAX_DAYS = 366
# The moments a report may name: Python's datetimes end at 9999, and no database of ours keeps
# anything older than this.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
# A "+01:00" offset sent unencoded in a query string arrives as " 01:00".
_SPACED_OFFSET = re.compile(r"(\d\d:\d\d(?::\d\d(?:[.,]\d+)?)?) (\d\d(?::?\d\d)?)$")


def moment(raw: str, field: str) -> datetime:
    """An ISO 8601 date and time with its offset (or `Z`), in UTC; a date alone is its
    midnight UTC."""
    text = raw.strip()
    if len(text) > 64 or not text.isascii():
        text = ""
    text = _SPACED_OFFSET.sub(r"\1+\2", text)
    try:
        value = datetime.combine(date.fromisoformat(text), datetime.min.time(), UTC)
    except ValueError:
        try:
            value = datetime.fromisoformat(text)
        except ValueError:
            value = None
    if value is None or value.tzinfo is None:
        raise refused(
            "%(field)s must be an ISO 8601 date (2026-12-01) or date and time with its time zone "
            "(2026-12-01T09:30:00Z, 2026-12-01T10:30:00+01:00).",
            field,
        )
    try:
        value = value.astimezone(UTC)
    except OverflowError:  # past the year 9999 once in UTC
        value = EARLIEST - timedelta(days=1) if value.year == 1 else None
    if value is None:
        raise refused("%(field)s must be before the year 10000.", field)
    if value < EARLIEST:
        raise refused("%(field)s must not be before 1970.", field)
    return value


@dataclass(frozen=True)
class ReportPeriod:
    """[start, end) of a report: `end` defaults to now, `start` to 7 days before `end`; at most
    REPORT_MAX_DAYS long."""

    start: datetime
    end: datetime

    @classmethod
    def parse(cls, start: str | None, end: str | None, *, now: datetime) -> ReportPeriod:
        end_at = now.astimezone(UTC) if end is None or end == "" else moment(end, "to")
        if start is None or start == "":
            start_at = end_at - REPORT_DEFAULT
        else:
            start_at = moment(start, "from")
        if start_at >= end_at:
            raise refused("%(field)s must be before 'to'.", "from")
        if end_at - start_at > timedelta(days=REPORT_MAX_DAYS):
            raise invalid("A report covers at most %(max)d days.", max=REPORT_MAX_DAYS)
        return cls(start=start_at, end=end_at)


@dataclass(frozen=True)
class Credentials:
    """A login attempt: only the shape is checked, never the rules for new accounts."""

    username: str
    password: str

    @classmethod
    def parse(cls, data: object) -> Credentials:
        body = as_object(data, "body")
        username, password = body.get("username"), body.get("password")
        if not isinstance(username, str) or not 1 <= len(username) <= 255:
            raise invalid("Username and password are required.")
        if not isinstance(password, str) or not 1 <= len(password) <= 1024:
            raise invalid("Username and password are required.")
        # No stored name holds U+0000 or a lone surrogate, and no database can be asked for one.
        valid_text(username, "username", max_chars=255)
        return cls(username=username, password=password)


@dataclass(frozen=True)
class Registration:
    username: str
    name: str
    password: str

    @classmethod
    def parse(cls, data: object, *, min_password: int) -> Registration:
        body = as_object(data, "body")
        name = display_name(body.get("name"))
        password = body.get("password")
        if not isinstance(password, str) or not min_password <= len(password) <= PASSWORD_MAX:
            raise refused(
                "%(field)s must be %(min)d-%(max)d characters.",
                "password",
                min=min_password,
                max=PASSWORD_MAX,
            )
        valid_text(password, "password", max_chars=PASSWORD_MAX)
        return cls(username=user_name(body.get("username")), name=name, password=password)


def display_name(value: object, field: str = "name") -> str:
    """A display name: 1-100 characters of text without control characters, trimmed first."""
    if isinstance(value, str):
        value = value.strip()
    name = valid_text(value, field, max_chars=NAME_MAX)
    if _has_control(name):
        raise refused("%(field)s must not contain control characters.", field)
    return name


def _has_control(text: str) -> bool:
    return any(ord(c) < 32 or ord(c) == 127 for c in text)


def path_id(raw: str) -> int:
    """A record's id from a URL path (digits only, as its route matched). A number past any
    id is kept as one past the largest, which names nothing (`int()` of thousands of digits
    is refused by Python)."""
    digits = raw.lstrip("0") or "0"
    if not digits.isascii() or not digits.isdigit():
        raise refused("%(field)s must be a whole number of at least 0.", "id")
    return int(digits) if len(digits) <= 19 else MAX_ID + 1


def shortcut(value: object) -> str:
    """A canned response's shortcut, compared exactly: lower case is the rule, not folded."""
    if not isinstance(value, str) or not TAG.fullmatch(value):
        raise refused("%(field)s must be 1-32 of a-z, 0-9, '_' or '-'.", "shortcut")
    return value


@dataclass(frozen=True)
class CannedDraft:
    """A canned response to create (both fields), or a change to one (`partial`: either field
    or both; None is left as it is). Other keys are ignored."""

    shortcut: str | None
    text: str | None

    @classmethod
    def parse(cls, data: object, *, max_text: int, partial: bool = False) -> CannedDraft:
        body = as_object(data, "body")
        if partial and "shortcut" not in body and "text" not in body:
            raise invalid("Give 'shortcut', 'text' or both.")
        given_shortcut = not partial or "shortcut" in body
        given_text = not partial or "text" in body
        return cls(
            shortcut=shortcut(body.get("shortcut")) if given_shortcut else None,
            text=valid_text(body.get("text"), "text", max_chars=max_text) if given_text else None,
        )


def role(data: object) -> str:
    rol = as_object(data, "body").get("rol")
    if rol not in (ADMIN, USER):
        raise refused('%(field)s must be "admin" or "user".', "rol")
    return str(rol)


# -- team workflow ---------------------------------------------------------------------------

MAX_LABELS = 10
CONVERSATIONS_DEFAULT = 50
CONVERSATIONS_LIMIT = 200
UNSET: Any = object()  # a key left out of a PATCH (null is a value: "nobody")


def json_moment(value: object, field: str) -> datetime:
    """`moment` of a JSON value, which must be a string."""
    if not isinstance(value, str):
        raise refused("%(field)s must be a string.", field)
    return moment(value, field)


def labels(value: object) -> tuple[str, ...]:
    """A set of labels, in alphabetical order."""
    if not isinstance(value, list) or len(value) > MAX_LABELS:
        raise refused(
            "%(field)s must be a list of at most %(max)d labels.", "labels", max=MAX_LABELS
        )
    for label in value:
        if not isinstance(label, str) or not TAG.fullmatch(label):
            raise refused(
                "%(field)s must each be 1-32 characters of a-z, 0-9, '_' or '-'.", "labels"
            )
    return tuple(sorted(set(value)))


@dataclass(frozen=True)
class ConversationChange:
    """A PATCH of a conversation: each field UNSET when left out."""

    status: Any = UNSET
    assignee: Any = UNSET  # a user name, None (nobody) or UNSET
    labels: Any = UNSET
    snoozed_until: Any = UNSET

    @classmethod
    def parse(cls, data: object) -> ConversationChange:
        body = as_object(data, "body")
        if not any(k in body for k in ("status", "assignee", "labels", "snoozed_until")):
            raise invalid("Give at least one of 'status', 'assignee', 'labels', 'snoozed_until'.")
        status = body.get("status", UNSET)
        if status is not UNSET and status not in STATUSES:
            raise refused(
                "%(field)s must be one of %(choices)s.", "status", choices=", ".join(STATUSES)
            )
        assignee = body.get("assignee", UNSET)
        if assignee is not UNSET and assignee is not None:
            assignee = user_name(assignee, "assignee")
        until = body.get("snoozed_until", UNSET)
        if until is not UNSET and until is not None:
            until = json_moment(until, "snoozed_until")
        if status not in (UNSET, SNOOZED) and until not in (UNSET, None):
            raise refused('%(field)s goes with the status "snoozed" only.', "snoozed_until")
        if status == SNOOZED and until in (UNSET, None):
            raise refused("%(field)s is required to snooze.", "snoozed_until")
        return cls(
            status=SNOOZED if status is UNSET and until not in (UNSET, None) else status,
            assignee=assignee,
            labels=labels(body["labels"]) if "labels" in body else UNSET,
            snoozed_until=until,
        )


@dataclass(frozen=True)
class ConversationQuery:
    """The filters and page of `GET /api/conversations`. `assignee`: "me", "none", a user
    name or None (anyone); `before`: the cursor (the activity id to list below)."""

    statuses: tuple[str, ...]
    assignee: str | None
    label: str | None
    limit: int
    before: int | None

    @classmethod
    def parse(
        cls,
        status: str | None,
        assignee: str | None,
        label: str | None,
        limit: str | None,
        before: str | None,
    ) -> ConversationQuery:
        statuses: tuple[str, ...] = ()
        if status:
            statuses = tuple(dict.fromkeys(status.split(",")))
            if any(s not in STATUSES for s in statuses):
                raise refused(
                    "%(field)s must be one or more of %(choices)s, separated by commas.",
                    "status",
                    choices=", ".join(STATUSES),
                )
        # An empty parameter is no filter (as a form's empty field sends it).
        assignee, label, before = assignee or None, label or None, before or None
        if assignee is not None and assignee not in ("me", "none"):
            assignee = user_name(assignee, "assignee")
        if label is not None and not TAG.fullmatch(label):
            raise refused("%(field)s must be 1-32 characters of a-z, 0-9, '_' or '-'.", "label")
        count = page_size(limit, cap=CONVERSATIONS_LIMIT)
        cursor = None
        if before is not None:
            if not before.isascii() or not before.isdigit() or len(before) > 19:
                raise refused("%(field)s must be a cursor given by 'next'.", "before")
            cursor = int(before)
        return cls(
            statuses=statuses,
            assignee=assignee,
            label=label,
            limit=count or CONVERSATIONS_DEFAULT,
            before=cursor,
        )


def availability(data: object) -> bool:
    available = as_object(data, "body").get("available")
    if not isinstance(available, bool):
        raise refused("%(field)s must be true or false.", "available")
    return available


# -- website visitors ------------------------------------------------------------------------

# Something that looks like an address: a local part, "@", a domain with a dot inside; no
# spaces, no second "@". Whether it receives mail is not this server's business.
EMAIL = re.compile(r"[^@\s]+@[^@\s.]+(\.[^@\s.]+)+")


def email_address(value: object) -> str:
    if not isinstance(value, str) or len(value) > EMAIL_MAX or not EMAIL.fullmatch(value):
        raise refused("%(field)s must be an e-mail address.", "email")
    valid_text(value, "email", max_chars=EMAIL_MAX)
    if _has_control(value):
        raise refused("%(field)s must be an e-mail address.", "email")
    return value


@dataclass(frozen=True)
class VisitorProfile:
    """What a visitor may say about itself; None: not given (left out or null)."""

    name: str | None
    email: str | None

    @classmethod
    def parse(cls, body: Mapping[str, Any]) -> VisitorProfile:
        name, email = body.get("name"), body.get("email")
        return cls(
            name=None if name is None else display_name(name),
            email=None if email is None else email_address(email),
        )


@dataclass(frozen=True)
class NewVisitor:
    """`POST /api/visitors` `{name?, email?}`: an anonymous visitor."""

    profile: VisitorProfile


@dataclass(frozen=True)
class IdentifiedVisitor:
    """`POST /api/visitors` `{id, name?, email?, hash}`. `hash` is kept as sent (None when not
    a string): its check is the service's, and a bad one is `bad_credentials`, not `invalid`."""

    external_id: str
    hash: str | None
    profile: VisitorProfile


@dataclass(frozen=True)
class VisitorRefresh:
    """`POST /api/visitors` `{token}`: a fresh token for the visitor of this one."""

    token: str


def visitor_request(data: object) -> NewVisitor | IdentifiedVisitor | VisitorRefresh:
    """Which of the three requests of `POST /api/visitors` this is: `token` asks for a
    refresh, `id` or `hash` for an identified visitor (never an anonymous one), else a new
    anonymous visitor."""
    body = as_object(data, "body")
    if "token" in body:
        if any(k in body for k in ("id", "hash", "name", "email")):
            raise invalid("Send 'token' alone to refresh it.")
        token = body["token"]
        if not isinstance(token, str) or not token:
            raise refused("%(field)s must be a non-empty string.", "token")
        return VisitorRefresh(token=token)
    if "id" in body or "hash" in body:
        external_id = body.get("id")
        if not isinstance(external_id, str):
            raise refused("%(field)s must be a string.", "id")
        valid_text(external_id, "id", max_chars=EXTERNAL_ID_MAX)
        given = body.get("hash")
        return IdentifiedVisitor(
            external_id=external_id,
            hash=given if isinstance(given, str) else None,
            profile=VisitorProfile.parse(body),
        )
    return NewVisitor(profile=VisitorProfile.parse(body))


# -- uploads -------------------------------------------------------------------------------

_PATH_SEPARATORS = ("/", "\\")


def upload_name(raw: str | None) -> str:
    """A file's name from the percent-encoded `Upload-Name` header: valid UTF-8, no control or
    formatting characters (no right-to-left override making `exe.txt` of `txt.exe`), no path
    separators, not `.` or `..`, 1-255 characters once decoded. It is shown, never a path."""
    if raw is None:
        raise invalid("Send the file's name, percent-encoded, in the Upload-Name header.")
    if not raw.isascii() or not raw.isprintable():
        raise invalid("Upload-Name must be percent-encoded ASCII.")
    try:
        name = unquote(raw, errors="strict").strip()
    except UnicodeDecodeError:
        raise invalid("Upload-Name must be percent-encoded UTF-8.") from None
    if not name or len(name) > FILE_NAME_MAX:
        raise invalid("The file's name must be 1-%(max)d characters.", max=FILE_NAME_MAX)
    if any(unicodedata.category(c) in ("Cc", "Cf", "Cs", "Zl", "Zp") for c in name):
        raise invalid("The file's name must not contain control characters.")
    if any(sep in name for sep in _PATH_SEPARATORS) or name in (".", ".."):
        raise invalid("The file's name must not be a path.")
    return name


def upload_id(raw: str) -> str | None:
    """An upload id from a URL path; None for anything no upload can have."""
    return raw if ATTACHMENT_ID.fullmatch(raw) else None


def declared_length(raw: str | None) -> int | None:
    """`Content-Length` (Tornado has checked its form), or None for a chunked body."""
    return None if raw is None else int(raw)


def media_type(raw: str | None) -> str:
    """The media type of a `Content-Type` header, in lower case, without its parameters."""
    return (raw or "").split(";", 1)[0].strip().lower()
