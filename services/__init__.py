"""`Services`: the one object that HTTP handlers and the Socket.IO namespace receive."""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass

from redis import asyncio as aioredis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from config.settings import Settings
from models.db import ping
from services.auth import Auth, Revocations, Tokens
from services.canned import CannedResponses
from services.chat import Chat
from services.cluster import Cluster, Control, LocalCluster, RedisCluster
from services.fanout import Emitter, Fanout, NoSockets
from services.limits import (
    AttemptWindow,
    MessageLimit,
    RedisSlidingWindow,
    RedisTokenBuckets,
    SlidingWindow,
    TokenBuckets,
)
from services.presence import Connections
from services.relay import LagSource, RelayGate
from services.replay import stored_since
from services.reports import Reports
from services.storage import make_store
from services.team import Team
from services.uploads import Uploads
from services.visitors import Visitors
from services.writer import GroupWriter

log = logging.getLogger(__name__)


@dataclass
class Services:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    auth: Auth
    chat: Chat
    fanout: Fanout
    connections: Connections
    cluster: Cluster
    relay: RelayGate
    team: Team
    canned: CannedResponses
    reports: Reports
    visitors: Visitors
    uploads: Uploads

    @classmethod
    def build(
        cls,
        settings: Settings,
        engine: AsyncEngine,
        sessions: async_sessionmaker[AsyncSession],
        redis: aioredis.Redis | None = None,
        *,
        emitter: Emitter | None = None,
    ) -> Services:
        """`emitter`: the Socket.IO server whose sockets this process serves (none for the
        command line)."""
        if emitter is None:
            emitter = NoSockets()
        if settings.jwt_secret is None:
            raise ValueError("the JWT secret must be resolved before building services")
        dialect = engine.dialect.name
        prefix = settings.redis_prefix
        cluster: Cluster
        limits: MessageLimit
        failures: AttemptWindow
        registrations: AttemptWindow
        arrivals: AttemptWindow
        uploads: AttemptWindow
        if redis is None:
            cluster = LocalCluster()
            limits = TokenBuckets(settings.msg_rate, settings.msg_burst)
            failures = SlidingWindow(settings.login_failures_per_minute, 60.0)
            registrations = SlidingWindow(settings.registrations_per_hour, 3600.0)
            arrivals = SlidingWindow(settings.visitors_per_hour, 3600.0)
            uploads = SlidingWindow(settings.uploads_per_minute, 60.0)
        else:
            cluster = RedisCluster(redis, prefix)
            limits = RedisTokenBuckets(redis, prefix, settings.msg_rate, settings.msg_burst)
            failures = RedisSlidingWindow(redis, prefix, settings.login_failures_per_minute, 60.0)
            registrations = RedisSlidingWindow(
                redis, prefix, settings.registrations_per_hour, 3600.0, kind="registrations"
            )
            arrivals = RedisSlidingWindow(
                redis, prefix, settings.visitors_per_hour, 3600.0, kind="visitors"
            )
            uploads = RedisSlidingWindow(
                redis, prefix, settings.uploads_per_minute, 60.0, kind="uploads"
            )
        connections = Connections()
        broker = getattr(emitter, "manager", None)
        lag_source = broker if isinstance(broker, LagSource) else None
        relay = RelayGate(cluster, lag_source)
        fanout = Fanout(
            connections,
            cluster,
            server=emitter,
            stored_since=functools.partial(stored_since, sessions),
            broker=broker,
        )
        auth = Auth(
            settings,
            sessions,
            dialect=dialect,
            tokens=Tokens(settings.jwt_secret.reveal(), settings.jwt_ttl_seconds),
            revocations=Revocations(sessions, cluster),
            failures=failures,
            registrations=registrations,
            fanout=fanout,
        )
        team = Team(settings, sessions, dialect=dialect, cluster=cluster, fanout=fanout)
        chat = Chat(
            settings,
            sessions,
            dialect=dialect,
            limits=limits,
            fanout=fanout,
            cluster=cluster,
            relay=relay,
            writer=GroupWriter(engine, sessions),
            team=team,
        )
        canned = CannedResponses(sessions)
        return cls(
            settings,
            engine,
            sessions,
            auth,
            chat,
            fanout,
            connections,
            cluster,
            relay,
            team,
            canned,
            Reports(sessions),
            Visitors(settings, sessions, auth=auth, arrivals=arrivals),
            Uploads(settings, sessions, store=make_store(settings), window=uploads),
        )

    async def start(self) -> None:
        await self.auth.revocations.load()
        await self.cluster.start(self.on_control)
        self.relay.start()
        self.team.start()
        self.uploads.start()

    async def close(self) -> None:
        await self.uploads.close()
        await self.team.close()
        await self.chat.writer.close()
        await self.relay.close()
        await self.cluster.close()

    async def on_control(self, message: Control) -> None:
        """News from any process of the deployment (this one included)."""
        op = message.get("op")
        if op == "revoked":
            self.auth.revocations.remember(str(message["jti"]), float(message["exp"]))
        elif op == "relay":
            self.relay.on_news(message)
        elif op == "resync":  # the channel was down: news was missed, Redis may be new
            await self.auth.revocations.load()
            await self.cluster.restore(self.connections.pairs())
        else:
            await self.fanout.on_control(message)

    async def health(self) -> dict[str, str]:
        """Each dependency's state: "ok" or "down"."""
        try:
            await ping(self.engine, timeout=2.0)
            database = "ok"
        except Exception:
            database = "down"
        return {"database": database, **await self.cluster.health()}
