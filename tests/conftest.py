"""Shared fixtures: database URLs from the environment, and the `stack` (a real server on a
free port, driven through real HTTP and Socket.IO clients)."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import aiomysql
import argon2
import httpx
import pytest
import socketio
import tornado.locale
from sqlalchemy import event, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from config.settings import Secret, Settings, Storage, parse_database_url  # noqa: E402
from models import Base  # noqa: E402
from models.db import make_engine, make_sessions, migrate  # noqa: E402
from services import Services  # noqa: E402
from services.auth import Passwords  # noqa: E402
from services.redis import connect_redis  # noqa: E402

PASSWORD = "correct horse battery staple"
REQUIRE = os.environ.get("REQUIRE_SERVICES") == "1"
# Every table a test may fill (the one-row lock tables keep their row).
TABLES = tuple(t.name for t in Base.metadata.sorted_tables if not t.name.endswith("_lock"))

tornado.locale.load_translations(str(ROOT / "locale"))


def service_url(kind: str) -> str:
    """The URL of a service the test needs: skip without it, or fail under REQUIRE_SERVICES."""
    url = os.environ.get(f"TEST_{kind.upper()}_URL")
    if not url:
        message = f"TEST_{kind.upper()}_URL is not set"
        if REQUIRE:
            pytest.fail(f"{message} and REQUIRE_SERVICES=1")
        pytest.skip(message)
    return url


def database_params() -> list[Any]:
    return [
        pytest.param("sqlite", id="sqlite"),
        pytest.param("mariadb", id="mariadb", marks=pytest.mark.mariadb),
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgresql),
    ]


async def _fresh_server_database(kind: str, base_url: str) -> str:
    """Create a database of its own for this test run on a shared server."""
    name = f"sc_test_{os.getpid()}_{secrets.token_hex(3)}"
    url = make_url(parse_database_url(base_url))
    admin = make_engine(url.render_as_string(hide_password=False), isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        if kind == "mariadb":
            await conn.execute(
                text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci")
            )
        else:
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
    await admin.dispose()
    _CREATED.append((kind, base_url, name))
    return url.set(database=name).render_as_string(hide_password=False)


_CREATED: list[tuple[str, str, str]] = []
_DATABASES: dict[str, str] = {}


async def _drop_created() -> None:
    for kind, base_url, name in _CREATED:
        url = parse_database_url(base_url)
        admin = make_engine(url, isolation_level="AUTOCOMMIT")
        async with admin.connect() as conn:
            quoted = f"`{name}`" if kind == "mariadb" else f'"{name}"'
            force = " WITH (FORCE)" if kind == "postgresql" else ""
            await conn.execute(text(f"DROP DATABASE IF EXISTS {quoted}{force}"))
        await admin.dispose()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _CREATED:
        asyncio.run(_drop_created())


async def database_url_for(kind: str, tmp_path: Path) -> str:
    """A clean database of `kind`: a new SQLite file, or emptied tables in this run's database."""
    if kind == "sqlite":
        return parse_database_url(f"sqlite:///{tmp_path / 'chat.db'}")
    if kind not in _DATABASES:
        _DATABASES[kind] = await _fresh_server_database(kind, service_url(kind))
    url = _DATABASES[kind]
    engine = make_engine(url)
    await migrate(engine)
    async with engine.begin() as conn:
        for table in TABLES:
            await conn.execute(text(f"DELETE FROM {table}"))  # noqa: S608 (fixed names)
    await engine.dispose()
    return url


def free_port() -> int:
    """A TCP port nobody listens on now, for a server process of a test."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def forget_redis_prefix(redis_url: str, prefix: str) -> None:
    """Delete every Redis key a test's servers made under their prefix."""
    from redis import asyncio as aioredis

    redis = aioredis.from_url(redis_url)
    try:
        keys = [k async for k in redis.scan_iter(match=f"{prefix}:*")]
        if keys:
            await redis.delete(*keys)
    finally:
        await redis.aclose()


FAST_HASHER = argon2.PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


@dataclass
class Stack:
    """A running server and helpers to drive it from outside."""

    settings: Settings
    services: Services
    port: int
    clients: list[socketio.AsyncClient] = field(default_factory=list)
    http: httpx.AsyncClient | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def register(self, user: str, name: str | None = None, *, admin: bool = False) -> str:
        """Create a user (an admin through the service, as `adduser` does) and return a token."""
        assert self.http is not None
        if admin:
            await self.services.auth.add_user(user, name or user, PASSWORD, admin=True)
        else:
            r = await self.http.post(
                "/api/register", json={"username": user, "name": name or user, "password": PASSWORD}
            )
            assert r.status_code == 201, r.text
        return await self.login(user)

    async def login(self, user: str, password: str = PASSWORD) -> str:
        assert self.http is not None
        r = await self.http.post("/api/login", json={"username": user, "password": password})
        assert r.status_code == 200, r.text
        self.http.cookies.clear()
        return str(r.json()["token"])

    async def connect(self, token: str | None = None, **kwargs: Any) -> Client:
        client = Client()
        kwargs.setdefault("transports", ["websocket"])
        await client.sio.connect(
            self.url, auth={"token": token} if token else None, wait_timeout=5, **kwargs
        )
        self.clients.append(client.sio)
        return client

    async def try_connect(self, **kwargs: Any) -> str | None:
        """Connect and disconnect; the connect_error message, or None when it connected."""
        client = Client()
        kwargs.setdefault("transports", ["websocket"])
        try:
            await client.sio.connect(self.url, wait_timeout=5, **kwargs)
        except socketio.exceptions.ConnectionError as exc:
            http = client.sio.eio.http
            if http is not None and not http.closed:
                await http.close()  # python-engineio leaves it open after a failed transport
            return client.refusal or str(exc)
        await client.sio.disconnect()
        return None


@contextlib.contextmanager
def statements(stack: Stack) -> Iterator[list[str]]:
    """Every SQL statement the stack's engine sends meanwhile, in order. On MariaDB they are
    read at the driver, which also sees what the message writer sends there without
    SQLAlchemy (one query may hold several statements)."""
    seen: list[str] = []
    engine = stack.services.engine.sync_engine
    if engine.dialect.driver != "aiomysql":

        def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
            seen.append(statement)

        event.listen(engine, "before_cursor_execute", record)
        try:
            yield seen
        finally:
            event.remove(engine, "before_cursor_execute", record)
        return
    execute, executemany = aiomysql.Cursor.execute, aiomysql.Cursor.executemany
    many: contextvars.ContextVar[bool] = contextvars.ContextVar("many", default=False)

    async def recorded(cursor: Any, query: str, args: Any = None) -> Any:
        if not many.get():  # not executemany's own call for each row
            seen.append(query)
        return await execute(cursor, query, args)

    async def recorded_many(cursor: Any, query: str, args: Any) -> Any:
        seen.append(query)
        token = many.set(True)
        try:
            return await executemany(cursor, query, args)
        finally:
            many.reset(token)

    aiomysql.Cursor.execute, aiomysql.Cursor.executemany = recorded, recorded_many
    try:
        yield seen
    finally:
        aiomysql.Cursor.execute, aiomysql.Cursor.executemany = execute, executemany


class Client:
    """A python-socketio client that records what the server sends it."""

    def __init__(self) -> None:
        self.sio = socketio.AsyncClient(reconnection=False)
        self.events: dict[str, list[Any]] = {}
        self.refusal: str | None = None
        self.disconnected = asyncio.Event()
        self.disconnect_reason: Any = None  # "server disconnect", "transport close", ...
        self._arrived = asyncio.Condition()

        @self.sio.on("connect_error")
        async def _refused(data: Any) -> None:
            self.refusal = data.get("message") if isinstance(data, dict) else str(data)

        @self.sio.on("disconnect")
        async def _gone(reason: Any = None, *_: Any) -> None:
            self.disconnect_reason = reason
            self.disconnected.set()

        @self.sio.on("*")
        async def _any(event: str, data: Any = None) -> None:
            async with self._arrived:
                self.events.setdefault(event, []).append(data)
                self._arrived.notify_all()

    async def call(self, event: str, data: Any = None, timeout: float = 10) -> Any:
        return await self.sio.call(event, data, timeout=timeout)

    async def wait_for(self, event: str, count: int = 1, timeout: float = 5) -> list[Any]:
        async def enough() -> None:
            async with self._arrived:
                await self._arrived.wait_for(lambda: len(self.events.get(event, [])) >= count)

        await asyncio.wait_for(enough(), timeout)
        return self.events[event]

    def got(self, event: str) -> list[Any]:
        return self.events.get(event, [])

    async def upgraded(self, timeout: float = 5) -> None:
        """Wait until a client that started on polling has moved to WebSocket."""
        deadline = asyncio.get_running_loop().time() + timeout
        while self.sio.transport() != "websocket":
            assert asyncio.get_running_loop().time() < deadline, "no upgrade to WebSocket"
            await asyncio.sleep(0.05)


StackFactory = Callable[..., Awaitable[Stack]]


@pytest.fixture(params=database_params())
async def make_stack(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StackFactory]:
    """Start servers on the parametrised database; each call gives a new server (on the same
    database and JWT secret, like the workers of one deployment)."""
    from handlers import make_app
    from handlers.listen import listen
    from sockets import drain, make_sio, serve_chat
    from sockets.transport import make_transport_handler

    kind = request.param
    url = await database_url_for(kind, tmp_path)
    running: list[tuple[Stack, Any, Any, Any]] = []
    secret = Secret(secrets.token_urlsafe(40))  # shared, as every worker of one deployment
    prefix = f"test{secrets.token_hex(4)}"  # this test's own Redis keys and channels

    async def start(**overrides: Any) -> Stack:
        settings = replace(
            Settings(
                database_url=url,
                jwt_secret=secret,
                port=0,
                redis_prefix=prefix,
                storage=Storage("file", str(tmp_path / "uploads")),  # shared by its workers
            ),
            **overrides,
        )
        engine = make_engine(settings.database_url)
        await migrate(engine)
        redis = connect_redis(settings.redis_url) if settings.redis_url else None
        sio = make_sio(settings)
        services = Services.build(settings, engine, make_sessions(engine), redis, emitter=sio)
        services.auth.passwords = Passwords(FAST_HASHER)
        await services.start()
        serve_chat(sio, services)
        transport = make_transport_handler(sio, settings)
        app = make_app(settings, services, transport)
        server = listen(app, settings, port=0, host="127.0.0.1")
        port = next(iter(server._sockets.values())).getsockname()[1]
        stack = Stack(settings, services, port)
        stack.http = httpx.AsyncClient(base_url=stack.url, timeout=10)
        running.append((stack, server, sio, transport))
        return stack

    yield start

    for stack, server, sio, transport in running:
        # The server closes first: python-engineio leaves a polling client's own disconnect
        # waiting for its pending long-poll until the ping timeout.
        server.stop()
        await drain(sio, transport, timeout=2)
        for client in stack.clients:
            if client.connected:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(client.disconnect(), 2)
        assert stack.http is not None
        await stack.http.aclose()
        await server.close_all_connections()
        await stack.services.close()
        await stack.services.engine.dispose()


@pytest.fixture
async def stack(make_stack: StackFactory) -> Stack:
    return await make_stack()


class OwnRedis:
    """A redis-server of the test's own on a free port, to stop and start at will."""

    def __init__(self, binary: str) -> None:
        self.port = free_port()
        self.binary = binary
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        import redis

        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port)
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        client.close()

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


@pytest.fixture
def own_redis() -> Iterator[OwnRedis]:
    binary = shutil.which("redis-server")
    if binary is None:
        if REQUIRE:
            pytest.fail("redis-server is not installed and REQUIRE_SERVICES=1")
        pytest.skip("redis-server is not installed")
    server = OwnRedis(binary)
    server.start()
    yield server
    server.stop()
