"""Settings: the only reader of the environment and `.env`, parsed and validated once."""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

import filetype
from dotenv import dotenv_values

T = TypeVar("T")

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

DEFAULT_DATABASE_URL = "sqlite:///supportchat.db"
_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
_WORKER_ID = re.compile(r"[A-Za-z0-9]{1,32}")
_PREFIX = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
_HIDDEN = ("JWT_SECRET", "METRICS_TOKEN", "WIDGET_SECRET", "AWS_SECRET_ACCESS_KEY")
_REGION = re.compile(r"[a-z0-9-]{1,32}")
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]")
_MEDIA_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+\-]*/[a-z0-9][a-z0-9!#$&^_.+\-]*")
MIB = 1024 * 1024
DEFAULT_UPLOAD_TYPES = (
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "application/pdf",
    "text/plain",
)
_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "mysql": "mysql+aiomysql",
    "mariadb": "mysql+aiomysql",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
}


class SettingsError(ValueError):
    """A malformed setting; its text is the one line printed at start-up."""


class Secret:
    """A string that never shows itself in a repr, a log line or a traceback."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class Storage:
    """Where attachments' bytes go: `kind` "file" with `location` a directory (relative to the
    SQLite database's directory, else to the working directory), or "s3" with `location` the
    bucket and `prefix` the start of every key."""

    kind: str
    location: str
    prefix: str = ""


@dataclass(frozen=True)
class Settings:
    port: int = 3000
    host: str = "127.0.0.1"
    trusted_proxies: tuple[IpNetwork, ...] = (
        ipaddress.ip_network("127.0.0.1/32"),
        ipaddress.ip_network("::1/128"),
    )
    worker_id: str | None = None
    database_url: str = field(
        default="sqlite+aiosqlite:///supportchat.db", repr=False
    )  # may hold a password
    redis_url: str | None = field(default=None, repr=False)  # may hold a password
    broker_url: str | None = field(default=None, repr=False)  # may hold a password
    jwt_secret: Secret | None = field(default=None, repr=False)
    jwt_ttl_seconds: float = 8 * 3600.0
    allowed_origins: tuple[str, ...] = ()
    cookie_secure: bool = False
    msg_rate: float = 20.0
    msg_burst: int = 40
    password_min_length: int = 12
    msg_max_chars: int = 4000
    max_packet_chars: int = 65536
    login_failures_per_minute: int = 10
    log_level: str = "INFO"
    redis_prefix: str = "supportchat"
    admin_ui: bool = False
    registrations_per_hour: int = 20
    max_connections: int = 10_000
    metrics_token: Secret | None = field(default=None, repr=False)
    allow_untested_libraries: bool = False
    auto_assign: str = "off"  # or "round_robin"
    agent_capacity: int = 0  # open and pending conversations per admin; 0: no cap
    widget_origins: tuple[str, ...] = ()  # sites that may embed the widget; none: widget off
    widget_secret: Secret | None = field(default=None, repr=False)  # HMAC key of visitor ids
    widget_identity: str = "optional"  # or "required": no anonymous visitors
    visitor_ttl_seconds: float = 30 * 86400.0
    visitors_per_hour: int = 20  # new anonymous visitors per client address
    storage: Storage = field(default_factory=lambda: Storage("file", "uploads"))
    upload_max_bytes: int = 10 * MIB
    upload_types: tuple[str, ...] = DEFAULT_UPLOAD_TYPES
    uploads_per_minute: int = 30  # per user
    s3_endpoint_url: str | None = None  # another S3-compatible store than AWS
    aws_access_key_id: str | None = field(default=None, repr=False)
    aws_secret_access_key: Secret | None = field(default=None, repr=False)
    aws_region: str | None = None

    @property
    def widget(self) -> bool:
        """The widget is served (`WIDGET_ORIGINS` is set)."""
        return bool(self.widget_origins)


def load_settings(
    environ: Mapping[str, str] | None = None,
    *,
    dotenv_path: str | Path | None = ".env",
    require_secret: bool = True,
) -> Settings:
    """Build `Settings` from `environ` (default: the process environment) over `.env`.
    `require_secret=False` for commands that sign no token (`adduser`).

    Raises `SettingsError` whose text names the variable and what was wrong with it.
    """
    values: dict[str, str] = {}
    if dotenv_path is not None and Path(dotenv_path).is_file():
        values.update({k: v for k, v in dotenv_values(dotenv_path).items() if v is not None})
    values.update(os.environ if environ is None else environ)

    def get(name: str, parse: Callable[[str], T], default: T) -> T:
        raw = values.get(name)
        if raw is None or raw.strip() == "":
            return default
        try:
            return parse(raw.strip())
        except ValueError as exc:
            shown = "(hidden)" if name in _HIDDEN else repr(redact_url(raw))
            raise SettingsError(f"{name}: {exc}, got {shown}") from None

    database_url = get("DATABASE_URL", parse_database_url, parse_database_url(DEFAULT_DATABASE_URL))
    redis_url = get("REDIS_URL", _url_parser("redis", "rediss", "redis+sentinel"), None)
    broker_url = get("BROKER_URL", _url_parser("redis", "rediss", "amqp", "amqps"), None)
    if broker_url is not None and redis_url is None:
        raise SettingsError("BROKER_URL: needs REDIS_URL too (Redis holds presence and limits)")
    secret = get("JWT_SECRET", Secret, None)
    if require_secret and secret is None and (redis_url or not database_url.startswith("sqlite")):
        raise SettingsError(
            "JWT_SECRET: required (at least 32 bytes) when REDIS_URL or a non-SQLite "
            "DATABASE_URL is set"
        )
    if secret is not None and len(secret.reveal().encode()) < 32:
        raise SettingsError("JWT_SECRET: must be at least 32 bytes long")
    widget_secret = get("WIDGET_SECRET", Secret, None)
    if widget_secret is not None and len(widget_secret.reveal().encode()) < 32:
        raise SettingsError("WIDGET_SECRET: must be at least 32 bytes long")
    widget_identity = get("WIDGET_IDENTITY", _one_of("optional", "required"), "optional")
    if widget_identity == "required" and widget_secret is None:
        raise SettingsError("WIDGET_IDENTITY: required needs WIDGET_SECRET (at least 32 bytes)")
    storage = get("STORAGE_URL", _storage, Storage("file", "uploads"))
    return Settings(
        port=get("PORT", _int_in(1, 65535), 3000),
        host=get("HOST", _host, "127.0.0.1"),
        trusted_proxies=get("TRUSTED_PROXIES", _networks, Settings.trusted_proxies),
        worker_id=get("WORKER_ID", _worker_id, None),
        database_url=database_url,
        redis_url=redis_url,
        broker_url=broker_url,
        jwt_secret=secret,
        jwt_ttl_seconds=get("JWT_TTL", _duration, 8 * 3600.0),
        allowed_origins=get("ALLOWED_ORIGINS", _origins, ()),
        cookie_secure=get("COOKIE_SECURE", _bool, False),
        msg_rate=get("MSG_RATE", _float_at_least(0.0), 20.0),
        msg_burst=get("MSG_BURST", _int_in(1, 1_000_000), 40),
        password_min_length=get("PASSWORD_MIN_LENGTH", _int_in(1, 128), 12),
        msg_max_chars=get("MSG_MAX_CHARS", _int_in(1, 1_000_000), 4000),
        max_packet_chars=get("MAX_PACKET_CHARS", _int_in(1024, 100_000_000), 65536),
        login_failures_per_minute=get("LOGIN_FAILURES_PER_MINUTE", _int_in(1, 1_000_000), 10),
        log_level=get("LOG_LEVEL", _log_level, "INFO"),
        redis_prefix=get("REDIS_PREFIX", _prefix, "supportchat"),
        admin_ui=get("ADMIN_UI", _bool, False),
        registrations_per_hour=get("REGISTRATIONS_PER_HOUR", _int_in(0, 1_000_000), 20),
        max_connections=get("MAX_CONNECTIONS", _int_in(1, 1_000_000), 10_000),
        metrics_token=get("METRICS_TOKEN", _token, None),
        allow_untested_libraries=get("ALLOW_UNTESTED_LIBRARIES", _bool, False),
        auto_assign=get("AUTO_ASSIGN", _one_of("off", "round_robin"), "off"),
        agent_capacity=get("AGENT_CAPACITY", _int_in(0, 1_000_000), 0),
        widget_origins=get("WIDGET_ORIGINS", _origins, ()),
        widget_secret=widget_secret,
        widget_identity=widget_identity,
        visitor_ttl_seconds=get("VISITOR_TTL", _duration, 30 * 86400.0),
        visitors_per_hour=get("VISITORS_PER_HOUR", _int_in(0, 1_000_000), 20),
        storage=storage,
        upload_max_bytes=get("UPLOAD_MAX_BYTES", _size, 10 * MIB),
        upload_types=get("UPLOAD_TYPES", _media_types, DEFAULT_UPLOAD_TYPES),
        uploads_per_minute=get("UPLOADS_PER_MINUTE", _int_in(0, 1_000_000), 30),
        s3_endpoint_url=get("S3_ENDPOINT_URL", _url_parser("http", "https"), None),
        aws_access_key_id=get("AWS_ACCESS_KEY_ID", _key_id, None),
        aws_secret_access_key=get("AWS_SECRET_ACCESS_KEY", _secret_key, None),
        aws_region=get("AWS_REGION", _region, None),
    )


def parse_database_url(raw: str) -> str:
    """Map the contract's URL schemes to SQLAlchemy async drivers."""
    scheme, sep, rest = raw.partition("://")
    base = scheme.split("+", 1)[0].lower()
    if not sep or base not in _DRIVERS:
        raise ValueError("expected sqlite:///path, mysql://user:pass@host/db or postgresql://...")
    if base == "sqlite":
        if not rest.startswith("/") or rest == "/":
            raise ValueError("expected sqlite:///relative/path or sqlite:////absolute/path")
    else:
        parts = urlsplit(raw)
        if not parts.hostname or not parts.path.strip("/"):
            raise ValueError("expected a host and a database name")
    return f"{_DRIVERS[base]}://{rest}"


def redact_url(raw: str) -> str:
    """The URL with its password replaced by ***, for messages and logs."""
    parts = urlsplit(raw)
    if parts.password is None:
        return raw
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def sqlite_path(database_url: str) -> Path | None:
    """The file of a SQLite database URL, or None for another database or `:memory:`."""
    if not database_url.startswith("sqlite"):
        return None
    path = database_url.split(":///", 1)[1].split("?", 1)[0]
    return None if path in ("", ":memory:") else Path(path)


def _one_of(*choices: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if raw not in choices:
            raise ValueError(f"expected {' or '.join(choices)}")
        return raw

    return parse


def _url_parser(*schemes: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        parts = urlsplit(raw)
        if parts.scheme.lower() not in schemes or not (parts.hostname or parts.netloc):
            raise ValueError(
                f"expected a URL starting with {' or '.join(s + '://' for s in schemes)}"
            )
        return raw

    return parse


def _int_in(low: int, high: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise ValueError("expected a whole number") from None
        if not low <= value <= high:
            raise ValueError(f"expected a number from {low} to {high}")
        return value

    return parse


def _float_at_least(low: float) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        try:
            value = float(raw)
        except ValueError:
            raise ValueError("expected a number") from None
        if not value >= low or value == float("inf"):
            raise ValueError(f"expected a finite number of at least {low:g}")
        return value

    return parse


def _duration(raw: str) -> float:
    match = _DURATION.fullmatch(raw.lower())
    if not match or float(match.group(1)) * _UNITS[match.group(2)] < 1:
        raise ValueError("expected a duration of at least 1s, such as 8h, 30m or 3600s")
    return float(match.group(1)) * _UNITS[match.group(2)]


def _bool(raw: str) -> bool:
    lowered = raw.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false")


def _host(raw: str) -> str:
    if any(c.isspace() for c in raw) or "/" in raw:
        raise ValueError("expected a host name or an IP address")
    return raw


def _networks(raw: str) -> tuple[IpNetwork, ...]:
    if raw.lower() == "none":
        return ()
    try:
        return tuple(
            ipaddress.ip_network(p.strip(), strict=False) for p in raw.split(",") if p.strip()
        )
    except ValueError:
        raise ValueError("expected comma-separated IP addresses or networks") from None


def _worker_id(raw: str) -> str:
    if not _WORKER_ID.fullmatch(raw):
        raise ValueError("expected 1-32 letters and digits")
    return raw


def _origins(raw: str) -> tuple[str, ...]:
    origins = []
    for item in (p.strip() for p in raw.split(",")):
        if not item:
            continue
        parts = urlsplit(item)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/"):
            raise ValueError("expected comma-separated origins such as https://example.com")
        origins.append(f"{parts.scheme}://{parts.netloc.lower()}")
    return tuple(origins)


def _prefix(raw: str) -> str:
    if not _PREFIX.fullmatch(raw):
        raise ValueError("expected 1-64 letters, digits, '_', '.', ':' or '-'")
    return raw


def _token(raw: str) -> Secret:
    if len(raw) < 16 or any(c.isspace() or not c.isprintable() for c in raw):
        raise ValueError("expected at least 16 printable characters without spaces")
    return Secret(raw)


def _log_level(raw: str) -> str:
    level = raw.upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ValueError("expected DEBUG, INFO, WARNING or ERROR")
    return level


def _storage(raw: str) -> Storage:
    if raw.startswith("file:"):
        directory = raw[len("file:") :]
        if directory.startswith("//"):  # file:///srv/uploads
            directory = directory[2:]
        if not directory or "\x00" in directory:
            raise ValueError("expected file:<directory> or s3://<bucket>/<prefix>")
        return Storage("file", directory)
    parts = urlsplit(raw)
    if parts.scheme == "s3" and _BUCKET.fullmatch(parts.netloc or ""):
        prefix = parts.path.strip("/")
        if not parts.query and not parts.fragment and "//" not in prefix:
            return Storage("s3", parts.netloc, f"{prefix}/" if prefix else "")
    raise ValueError("expected file:<directory> or s3://<bucket>/<prefix>")


_SIZE = re.compile(r"(\d+)\s*(b|kib|mib|gib|kb|mb|gb|k|m|g)?", re.IGNORECASE)
_SIZE_UNITS = {
    None: 1,
    "b": 1,
    "k": 1024,
    "kib": 1024,
    "kb": 1000,
    "m": MIB,
    "mib": MIB,
    "mb": 1000**2,
    "g": 1024 * MIB,
    "gib": 1024 * MIB,
    "gb": 1000**3,
}


def _size(raw: str) -> int:
    """A number of bytes, alone or with a unit: 10485760, 10MiB, 10M (binary), 10MB."""
    match = _SIZE.fullmatch(raw)
    value = (
        None
        if match is None
        else int(match.group(1)) * _SIZE_UNITS[(match.group(2) or "").lower() or None]
    )
    if value is None or not 1 <= value <= 4 * 1024 * MIB:
        raise ValueError("expected a size from 1 byte to 4GiB, such as 10485760, 10MiB or 20MB")
    return value


def recognised_types() -> frozenset[str]:
    """The media types whose content the server can tell from its bytes (`UPLOAD_TYPES`)."""
    return frozenset({t.mime for t in filetype.types} | {"text/plain"})


def _media_types(raw: str) -> tuple[str, ...]:
    types = tuple(dict.fromkeys(t.strip().lower() for t in raw.split(",") if t.strip()))
    if not types or not all(_MEDIA_TYPE.fullmatch(t) for t in types):
        raise ValueError("expected comma-separated media types such as image/png,text/plain")
    unknown = [t for t in types if t not in recognised_types()]
    if unknown:
        raise ValueError(f"cannot recognise {', '.join(unknown)} from a file's bytes")
    return types


def _key_id(raw: str) -> str:
    if not 1 <= len(raw) <= 128 or any(c.isspace() or not c.isprintable() for c in raw):
        raise ValueError("expected 1-128 printable characters without spaces")
    return raw


def _secret_key(raw: str) -> Secret:
    return Secret(_key_id(raw))


def _region(raw: str) -> str:
    if not _REGION.fullmatch(raw):
        raise ValueError("expected a region name such as eu-west-1")
    return raw
