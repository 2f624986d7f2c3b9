"""`Services`: the one object that HTTP handlers and the Socket.IO namespace receive."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from config.settings import Settings
from models.db import ping
from services.auth import Auth, Revocations, Tokens
from services.chat import Chat
from services.fanout import Fanout
from services.limits import SlidingWindow, TokenBuckets
from services.presence import Connections


@dataclass
class Services:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    auth: Auth
    chat: Chat
    fanout: Fanout
    connections: Connections

    @classmethod
    def build(
        cls, settings: Settings, engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
    ) -> Services:
        if settings.jwt_secret is None:
            raise ValueError("the JWT secret must be resolved before building services")
        dialect = engine.dialect.name
        connections = Connections()
        fanout = Fanout(connections)
        auth = Auth(
            settings,
            sessions,
            dialect=dialect,
            tokens=Tokens(settings.jwt_secret.reveal(), settings.jwt_ttl_seconds),
            revocations=Revocations(sessions),
            failures=SlidingWindow(settings.login_failures_per_minute, 60.0),
            fanout=fanout,
        )
        chat = Chat(
            settings,
            sessions,
            dialect=dialect,
            limits=TokenBuckets(settings.msg_rate, settings.msg_burst),
            fanout=fanout,
            connections=connections,
        )
        return cls(settings, engine, sessions, auth, chat, fanout, connections)

    async def start(self) -> None:
        await self.auth.revocations.load()

    async def health(self) -> dict[str, str]:
        """Each dependency's state: "ok" or "down"."""
        try:
            await ping(self.engine, timeout=2.0)
            database = "ok"
        except Exception:
            database = "down"
        return {"database": database}
