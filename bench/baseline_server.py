"""The straightforward hot path, kept runnable as the benchmark's baseline.

A minimal Tornado + python-socketio server implementing only the subset of the contract the
load generator uses: the handshake with `auth.token` (a JWT issued by the real server, same
`JWT_SECRET`, user looked up in the same `usuarios` table) and `mensaje_privado` with an ack.
Each message is one ORM insert and one commit (no commit-lock row, no in-process write lock,
no per-socket ordering: python-socketio's defaults), acked after the commit, then emitted to
room `admins` and room `user:<conversation>`, skipping the sending socket.

It reads the schema the real server created (run `server.py adduser ...` or the server once
first) and the same settings: DATABASE_URL, JWT_SECRET, PORT, REDIS_URL, REDIS_PREFIX.

    python bench/baseline_server.py [--port 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
from datetime import UTC, datetime
from typing import Any

import jwt
import socketio
import tornado.web
from sqlalchemy import DateTime, String, Text, event, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

DRIVERS = {"sqlite": "sqlite+aiosqlite", "mysql": "mysql+aiomysql", "mariadb": "mysql+aiomysql"}
DRIVERS["postgresql"] = "postgresql+asyncpg"


class Base(DeclarativeBase):
    pass


class Message(Base):
    __tablename__ = "messages"
    id: Mapped[int] = mapped_column(primary_key=True)
    sender: Mapped[str] = mapped_column(String(32))
    recipient: Mapped[str] = mapped_column(String(32))
    conversation: Mapped[str] = mapped_column(String(32))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime)  # naive UTC, as the server stores it
    client_msg_id: Mapped[str | None] = mapped_column(String(64), nullable=True)


class UserRow(Base):
    __tablename__ = "usuarios"
    user: Mapped[str] = mapped_column(String(32), primary_key=True)
    rol: Mapped[str] = mapped_column(String(10))


def engine_for(url: str) -> Any:
    scheme, _, rest = url.partition("://")
    engine = create_async_engine(f"{DRIVERS[scheme]}://{rest}")
    if scheme == "sqlite":

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(conn: Any, _record: Any) -> None:
            for pragma in ("journal_mode=WAL", "busy_timeout=10000", "synchronous=NORMAL"):
                conn.execute(f"PRAGMA {pragma}")

    return engine


def wire(m: Message) -> dict[str, Any]:
    return {
        "id": m.id,
        "from": m.sender,
        "to": m.recipient,
        "text": m.text,
        "created_at": m.created_at.replace(tzinfo=UTC).isoformat().replace("+00:00", "Z"),
        "client_msg_id": m.client_msg_id,
    }


def make_server() -> tuple[socketio.AsyncServer, Any]:
    secret = os.environ["JWT_SECRET"]
    engine = engine_for(os.environ["DATABASE_URL"])
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    manager = None
    if os.environ.get("REDIS_URL"):
        channel = os.environ.get("REDIS_PREFIX", "supportchat") + ":socketio"
        manager = socketio.AsyncRedisManager(os.environ["REDIS_URL"], channel=channel)
    sio = socketio.AsyncServer(async_mode="tornado", client_manager=manager)
    users: dict[str, tuple[str, bool]] = {}  # sid -> (user, is_admin)

    @sio.event
    async def connect(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        try:
            claims = jwt.decode(auth["token"], secret, algorithms=["HS256"])
        except Exception:
            raise socketio.exceptions.ConnectionRefusedError("Token inválido") from None
        async with sessions() as db:
            row = await db.get(UserRow, claims["user"])
        if row is None:
            raise socketio.exceptions.ConnectionRefusedError("Token inválido")
        users[sid] = (row.user, row.rol == "admin")
        await sio.enter_room(sid, f"user:{row.user}")
        if row.rol == "admin":
            await sio.enter_room(sid, "admins")

    @sio.event
    async def disconnect(sid: str, reason: Any = None) -> None:
        users.pop(sid, None)

    @sio.event
    async def mensaje_privado(sid: str, data: Any) -> dict[str, Any]:
        me, admin = users[sid]
        text = data.get("text") if isinstance(data, dict) else None
        if not isinstance(text, str) or not text:
            return {"ok": False, "error": "invalid", "message": "text is required"}
        if admin:
            async with sessions() as db:
                target = await db.get(UserRow, data.get("to"))
            if target is None:
                return {"ok": False, "error": "not_found", "message": "No such user."}
            recipient = conversation = target.user
        else:
            recipient, conversation = "admins", me
        message = Message(
            sender=me,
            recipient=recipient,
            conversation=conversation,
            text=text,
            created_at=datetime.now(UTC).replace(tzinfo=None),
            client_msg_id=data.get("client_msg_id"),
        )
        try:
            async with sessions.begin() as db:
                db.add(message)
        except IntegrityError:
            async with sessions() as db:
                query = select(Message).where(
                    Message.sender == me, Message.client_msg_id == message.client_msg_id
                )
                earlier = (await db.execute(query)).scalar()
            if earlier is None:
                raise
            return {"ok": True, "message": wire(earlier)}
        payload = wire(message)
        await sio.emit(
            "mensaje_privado", payload, to=["admins", f"user:{conversation}"], skip_sid=sid
        )
        return {"ok": True, "message": payload}

    return sio, engine


class Health(tornado.web.RequestHandler):
    def get(self) -> None:
        self.write({"status": "ok"})


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "3000")))
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args()
    sio, engine = make_server()
    app = tornado.web.Application(
        [(r"/socket.io/", socketio.get_tornado_handler(sio)), (r"/healthz", Health)]
    )
    server = app.listen(args.port, args.host)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.stop()
    await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main())
