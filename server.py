"""supportchat: pages, JSON API and Socket.IO on one port.

python server.py [--port 3000] [--host 127.0.0.1]
python server.py adduser USER --name NAME [--admin]      # password on stdin
python server.py setrole USER admin|user
python server.py nginx-config --listen 8080 --upstream a=127.0.0.1:3001 [--upstream ...]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import getpass
import json
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import tornado.locale
from sqlalchemy.ext.asyncio import AsyncEngine

from config import nginx
from config.settings import Secret, Settings, SettingsError, load_settings, sqlite_path
from models.db import make_engine, make_sessions, migrate, ping
from services import Services
from services.errors import AppError
from services.redis import connect_redis
from sockets.libraries import UntestedLibrary, check_libraries

log = logging.getLogger("supportchat")
ROOT = Path(__file__).resolve().parent

_STANDARD = set(vars(logging.makeLogRecord({})))


class JsonLines(logging.Formatter):
    """One JSON object a line, with the `extra` fields (user, sid, ...) of the record."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update(
            {k: v for k, v in vars(record).items() if k not in _STANDARD and k != "message"}
        )
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLines())
    logging.basicConfig(level=level, handlers=[handler], force=True)
    logging.getLogger("tornado.access").setLevel(logging.WARNING)


def resolve_secret(settings: Settings) -> Settings:
    """Without JWT_SECRET (only allowed on SQLite), keep a random one in a 0600 file."""
    if settings.jwt_secret is not None:
        return settings
    db_file = sqlite_path(settings.database_url)
    if db_file is None:
        log.warning("JWT_SECRET is not set: using a random secret for this run only")
        return replace(settings, jwt_secret=Secret(secrets.token_urlsafe(48)))
    path = db_file.with_name(db_file.name + ".jwt-secret")
    if tracked_by_git(path):
        raise SecretInGit(
            f"{path} is tracked by git: whoever has the repository can sign tokens; "
            f"remove it (git rm --cached {path.name}), delete it so that a new one is made, "
            "or set JWT_SECRET"
        )
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(48))
    log.warning("JWT_SECRET is not set: using the secret kept in %s", path)
    return replace(settings, jwt_secret=Secret(path.read_text().strip()))


class SecretInGit(RuntimeError):
    """The secret file is in a git repository's index."""


def tracked_by_git(path: Path) -> bool:
    """Whether `path` is tracked by the git work tree it lies in (False without git)."""
    git = shutil.which("git")
    if git is None or not path.exists():
        return False
    found = subprocess.run(  # noqa: S603 (git, a fixed command, our own path)
        [git, "-C", str(path.parent.resolve()), "ls-files", "--error-unmatch", "--", path.name],
        capture_output=True,
        check=False,
        timeout=10,
    )
    return found.returncode == 0


async def wait_until_up(
    what: str, check: Callable[[], Awaitable[object]], stop: asyncio.Event
) -> bool:
    """Retry `check` once a second, one log line each time, until it passes or stop is set."""
    while not stop.is_set():
        try:
            await check()
            return True
        except Exception as exc:
            reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
            log.warning("%s unreachable (%s); retrying in 1 s", what, reason)
        try:
            await asyncio.wait_for(stop.wait(), 1.0)
        except TimeoutError:
            pass
    return False


def stop_event() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def open_database(settings: Settings, stop: asyncio.Event) -> AsyncEngine | None:
    engine = make_engine(settings.database_url)
    if not await wait_until_up("database", lambda: ping(engine), stop):
        await engine.dispose()
        return None
    await migrate(engine)
    return engine


async def serve(settings: Settings) -> None:
    from handlers import make_app
    from handlers.listen import listen
    from sockets import drain, make_sio, serve_chat
    from sockets.transport import make_transport_handler

    stop = stop_event()
    engine = await open_database(settings, stop)
    if engine is None:
        return
    redis = None
    if settings.redis_url:
        redis = connect_redis(settings.redis_url)
        if not await wait_until_up("redis", redis.ping, stop):
            await engine.dispose()
            return
    sio = make_sio(settings)
    services = Services.build(settings, engine, make_sessions(engine), redis, emitter=sio)
    await services.start()
    serve_chat(sio, services)
    transport = make_transport_handler(sio, settings)
    server = listen(
        make_app(settings, services, transport), settings, port=settings.port, host=settings.host
    )
    # What start-up made (modules, the ORM's mappings, compiled templates: nearly all of the
    # heap) lives as long as the process: out of the collector's sight, so that its full
    # collections, which stop the event loop, scan only what came later. Measured under load:
    # 43-117 ms each, several times a minute, before; 8-17 ms after (bench/README.md).
    gc.collect()
    gc.freeze()
    log.info(
        "listening on http://%s:%d",
        settings.host,
        settings.port,
        extra={"worker": settings.worker_id, "database": engine.dialect.name},
    )
    try:
        await stop.wait()
        log.info("shutting down")
    finally:
        server.stop()
        await drain(sio, transport)
        await server.close_all_connections()
        await services.close()
        await engine.dispose()
        log.info("stopped")


async def add_user(settings: Settings, username: str, name: str, password: str, admin: bool) -> int:
    stop = stop_event()
    engine = await open_database(settings, stop)
    if engine is None:
        return 1
    try:
        services = Services.build(settings, engine, make_sessions(engine))
        user = await services.auth.add_user(username, name, password, admin=admin)
    except AppError as exc:
        sys.stderr.write(f"adduser: {exc.message}\n")
        return 1
    finally:
        await engine.dispose()
    sys.stderr.write(f"adduser: created {user.rol} {user.user!r}\n")
    return 0


async def set_role(settings: Settings, username: str, rol: str) -> int:
    """As `POST /api/users/<user>/role`: the user's sockets are closed on every worker (through
    Redis, when the workers share one), and the last admin is not demoted."""
    stop = stop_event()
    engine = await open_database(settings, stop)
    if engine is None:
        return 1
    redis = connect_redis(settings.redis_url) if settings.redis_url else None
    services = Services.build(settings, engine, make_sessions(engine), redis)
    try:
        user = await services.auth.set_role(username, rol)
    except AppError as exc:
        sys.stderr.write(f"setrole: {exc.message}\n")
        return 1
    finally:
        await services.close()
        if redis is not None:
            await redis.aclose()
        await engine.dispose()
    sys.stderr.write(f"setrole: {user.user!r} is now {user.rol}\n")
    return 0


def read_password() -> str:
    if sys.stdin.isatty():
        first = getpass.getpass("Password: ")
        if first != getpass.getpass("Repeat password: "):
            raise SystemExit("adduser: the passwords do not match")
        return first
    return sys.stdin.readline().rstrip("\r\n")


def print_nginx_config(listen: str, upstreams: list[str], prefix: str) -> int:
    try:
        settings = load_settings(require_secret=False)  # UPLOAD_MAX_BYTES, as the workers'
    except SettingsError as exc:
        sys.stderr.write(f"nginx-config: {exc}\n")
        return 2
    try:
        text = nginx.render(
            nginx.parse_listen(listen),
            [nginx.Upstream.parse(u) for u in upstreams],
            Path(prefix),
            upload_max_bytes=settings.upload_max_bytes,
        )
    except ValueError as exc:
        sys.stderr.write(f"nginx-config: {exc}\n")
        return 2
    sys.stdout.write(text)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="server.py", description="supportchat server")
    parser.add_argument("--port", type=int, help="listen on this port (default PORT or 3000)")
    parser.add_argument("--host", help="listen on this address (default HOST or 127.0.0.1)")
    commands = parser.add_subparsers(dest="command")
    add = commands.add_parser("adduser", help="create a user; the password is read from stdin")
    add.add_argument("username")
    add.add_argument("--name", required=True)
    add.add_argument("--admin", action="store_true", help="make the user an admin")
    add.add_argument("--verbose", action="store_true", help="print the log lines too")
    setrole = commands.add_parser("setrole", help="give a user the role admin or user")
    setrole.add_argument("username")
    setrole.add_argument("rol", choices=("admin", "user"))
    setrole.add_argument("--verbose", action="store_true", help="print the log lines too")
    conf = commands.add_parser("nginx-config", help="print an nginx.conf for several workers")
    conf.add_argument("--listen", required=True, help="PORT or HOST:PORT for nginx")
    conf.add_argument(
        "--upstream",
        action="append",
        required=True,
        metavar="NAME=HOST:PORT",
        help="a worker started with WORKER_ID=NAME (repeat for each worker)",
    )
    conf.add_argument("--prefix", default=".", help="directory for nginx's pid, logs, temp files")
    args = parser.parse_args(argv)
    if args.command == "nginx-config":
        return print_nginx_config(args.listen, args.upstream, args.prefix)

    try:
        settings = load_settings(require_secret=args.command is None)  # commands sign nothing
    except SettingsError as exc:
        sys.stderr.write(f"supportchat: {exc}\n")
        return 2
    overrides = {k: v for k, v in (("port", args.port), ("host", args.host)) if v is not None}
    if "port" in overrides and not 1 <= overrides["port"] <= 65535:
        sys.stderr.write("supportchat: --port: expected a number from 1 to 65535\n")
        return 2
    settings = replace(settings, **overrides)
    # a command prints one line of result, or of error
    quiet = args.command in ("adduser", "setrole") and not args.verbose
    setup_logging("WARNING" if quiet else settings.log_level)
    if args.command is None:  # serving: sockets/ patches these libraries' private parts
        try:
            for line in check_libraries(allow_untested=settings.allow_untested_libraries):
                log.warning("%s; started anyway (ALLOW_UNTESTED_LIBRARIES=1)", line)
        except UntestedLibrary as exc:
            sys.stderr.write(f"supportchat: {exc}\n")
            return 2
    tornado.locale.load_translations(str(ROOT / "locale"))
    if args.command is not None and settings.jwt_secret is None:
        # adduser and setrole issue no token: any secret will do
        settings = replace(settings, jwt_secret=Secret(secrets.token_urlsafe(48)))
    if args.command == "adduser":
        password = read_password()
        return asyncio.run(add_user(settings, args.username, args.name, password, args.admin))
    if args.command == "setrole":
        return asyncio.run(set_role(settings, args.username, args.rol))
    try:
        settings = resolve_secret(settings)
    except SecretInGit as exc:
        sys.stderr.write(f"supportchat: {exc}\n")
        return 2
    asyncio.run(serve(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
