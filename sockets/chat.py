"""`ChatNamespace`: one `on_<event>` per contract event; the return value is the ack."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import socketio

from models.user import Identity
from services import Services
from services.errors import OUTAGE, AppError, Code, unavailable
from services.inputs import Draft, ReadUpTo, Typing, announcement_text, invalid, sync_after
from services.metrics import ACKS, CONNECTED_SOCKETS, DELIVERY_SECONDS
from services.presence import Connection
from services.wire import EV_MESSAGE, ROOM_ADMINS, message_to_wire, user_room
from sockets.handshake import authenticate, claims_of, token_from

log = logging.getLogger(__name__)

Ack = dict[str, Any]
# Events of one socket received and not yet acked, at most (more are acked `rate_limited`):
# a client resending its outbox sends hundreds at once, in one polling POST or in a row of
# frames; each waiting one holds a suspended task (~3 KB).
MAX_QUEUED_EVENTS = 1_000
# A client repeating the same `typing` news faster than this is not relayed each time
# (clients send it every 2 s or so while typing; receivers drop it after 5 s).
TYPING_REPEAT_SECONDS = 1.0
# `typing` news relayed from one socket in any second; the excess is acked and dropped.
TYPING_PER_SECOND = 5


class TypingNews:
    """What a socket last said about its typing, and how much it said this second."""

    __slots__ = ("count", "last", "last_at", "second")

    def __init__(self) -> None:
        self.last: Typing | None = None
        self.last_at = self.second = float("-inf")
        self.count = 0

    def relay(self, typing: Typing, now: float) -> bool:
        """Whether to relay this news: not the same news as the last within
        `TYPING_REPEAT_SECONDS` (relayed already), and not past `TYPING_PER_SECOND` relayed
        in the current second."""
        if typing == self.last and now - self.last_at < TYPING_REPEAT_SECONDS:
            return False
        if now - self.second >= 1.0:
            self.second, self.count = now, 0
        if self.count >= TYPING_PER_SECOND:
            return False
        self.count += 1
        self.last, self.last_at = typing, now
        return True


class Turn:
    """One event's turn in its socket's order: the socket's next event starts once this one
    is over, or once the handler says so earlier (`over()`), when what must happen in order
    is done (a message has its place in the commit order) and only waiting is left."""

    __slots__ = ("_lock", "_over")

    def __init__(self, lock: asyncio.Lock) -> None:
        self._lock, self._over = lock, False

    def over(self) -> None:
        if not self._over:
            self._over = True
            self._lock.release()


Handler = Callable[["ChatNamespace", str, Any, Turn], Awaitable[Ack]]


def acked(handler: Handler) -> Callable[..., Awaitable[Ack]]:
    """Run one event of a socket after the ones it sent before (per-socket order), and turn
    its outcome into the ack: `AppError` as its own code, anything else `unavailable`. The
    handler gets its `Turn`, to let the next event start before its own ack."""
    event = handler.__name__.removeprefix("on_")
    acks: dict[str, Any] = {}  # the ACKS counter of each outcome (`labels` is a lookup)

    def count(outcome: str) -> None:
        counter = acks.get(outcome)
        if counter is None:
            counter = acks[outcome] = ACKS.labels(event, outcome)
        counter.inc()

    @functools.wraps(handler)
    async def wrapper(self: ChatNamespace, sid: str, *args: Any) -> Ack:
        lock = self.locks.get(sid)
        if lock is None or self.draining:  # racing the disconnect, or shutting down
            return unavailable().ack()
        waiting = self.waiting.get(sid, 0)
        if waiting >= MAX_QUEUED_EVENTS:  # one client may not pile up unbounded work
            count("rate_limited")
            return AppError(Code.RATE_LIMITED, "Too many events waiting; slow down.").ack()
        self.waiting[sid] = waiting + 1
        received = time.perf_counter()
        self.in_flight += 1
        self.idle.clear()
        try:
            if len(args) != 1:
                raise invalid("Send exactly one argument: a JSON object.")
            await lock.acquire()
            turn = Turn(lock)
            try:
                result = await handler(self, sid, args[0], turn)
            finally:
                turn.over()
            if event == EV_MESSAGE:  # from its arrival to the hand-off to its recipients
                DELIVERY_SECONDS.observe(time.perf_counter() - received)
            count("ok")
            return result
        except AppError as exc:
            count(exc.code.value)
            return exc.ack()
        except OUTAGE as exc:
            log.warning("%s refused: %s unavailable", event, type(exc).__name__, extra={"sid": sid})
            count("unavailable")
            return unavailable().ack()
        except Exception:
            log.exception("%s failed", event, extra={"sid": sid})
            count("unavailable")
            return unavailable().ack()
        finally:
            if sid in self.waiting:
                self.waiting[sid] -= 1
            self.in_flight -= 1
            if not self.in_flight:
                self.idle.set()

    wrapper.acked = True  # type: ignore[attr-defined]
    return wrapper


class ChatNamespace(socketio.AsyncNamespace):  # type: ignore[misc]
    def __init__(self, services: Services) -> None:
        super().__init__("/")
        self.services = services
        self.locks: dict[str, asyncio.Lock] = {}
        self.waiting: dict[str, int] = {}  # events of each socket received and not yet acked
        self.typing_news: dict[str, TypingNews] = {}
        self.expiry: dict[str, asyncio.TimerHandle] = {}
        self.in_flight = 0
        self.draining = False
        self.idle = asyncio.Event()  # set while no event is in flight
        self.idle.set()
        self._tasks: set[asyncio.Task[None]] = set()
        # The contract's client events: each `on_<event>` made by `acked`.
        self._events: dict[str, Callable[..., Awaitable[Ack]]] = {
            name.removeprefix("on_"): getattr(self, name)
            for name in dir(type(self))
            if name.startswith("on_") and getattr(getattr(self, name), "acked", False)
        }

    async def trigger_event(self, event: str, *args: Any) -> Any:
        """python-socketio's documented dispatch hook: the contract's events go straight to
        their `acked` handler (found once, not looked up and inspected for each event);
        connect and disconnect go python-socketio's way."""
        handler = self._events.get(event)
        if handler is not None:
            return await handler(*args)
        if not hasattr(self, f"on_{event}"):
            return invalid("Unknown event.").ack()  # acked, so a client never waits for it
        return await super().trigger_event(event, *args)

    def user_of(self, sid: str) -> Identity:
        conn = self.services.connections.get(sid)
        if conn is None:
            raise unavailable()
        return conn.identity

    # -- lifecycle ----------------------------------------------------------------------

    async def on_connect(self, sid: str, environ: dict[str, Any], auth: object = None) -> None:
        token = token_from(environ, auth)
        claims = claims_of(self.services.auth, token)
        # From here until the socket is registered, a logout or role change finds no socket
        # to close: it marks the handshake instead, and the socket is closed once connected.
        connections = self.services.connections
        handshake = connections.begin_handshake(claims.user, claims.jti)
        try:
            await self._connect(sid, token)
        finally:
            if connections.end_handshake(handshake) and sid in self.locks:
                self._later(self._disconnect_once_connected(sid))

    async def _connect(self, sid: str, token: str) -> None:
        user, claims = await authenticate(self.services.auth, token)
        await self.enter_room(sid, user_room(user.user))
        if user.is_admin:
            await self.enter_room(sid, ROOM_ADMINS)
        self.locks[sid] = asyncio.Lock()
        self.services.connections.add(Connection(sid, user, claims.jti, claims.exp))
        first = await self._presence_changes(self.services.cluster.socket_opened, user.user, sid)
        loop = asyncio.get_running_loop()
        self.expiry[sid] = loop.call_later(max(0.0, claims.exp - time.time()), self._expire, sid)
        CONNECTED_SOCKETS.inc()
        log.info("socket connected", extra={"user": user.user, "sid": sid})
        if first:
            await self.services.fanout.presence(user.user, True)
            if user.is_admin:  # conversations may wait for someone online
                self.services.team.assign_soon()

    async def _disconnect_once_connected(self, sid: str) -> None:
        """A Socket.IO disconnect of a socket whose handshake is ending: python-socketio
        ignores one before it has marked the socket connected, just after `on_connect`."""
        for _ in range(200):
            if self.server.manager.is_connected(sid, "/"):
                log.info("closed at its handshake's end (logout or role change)")
                await self.disconnect(sid)
                return
            if sid not in self.locks:  # gone meanwhile
                return
            await asyncio.sleep(0.01)

    async def on_disconnect(self, sid: str, reason: object = None) -> None:
        self.locks.pop(sid, None)
        self.waiting.pop(sid, None)
        self.typing_news.pop(sid, None)
        timer = self.expiry.pop(sid, None)
        if timer is not None:
            timer.cancel()
        conn = self.services.connections.remove(sid)
        if conn is None:
            return
        CONNECTED_SOCKETS.dec()
        log.info("socket disconnected", extra={"user": conn.name, "sid": sid})
        if await self._presence_changes(self.services.cluster.socket_closed, conn.name, sid):
            await self.services.fanout.presence(conn.name, False)

    @staticmethod
    async def _presence_changes(
        record: Callable[[str, str], Awaitable[bool]], user: str, sid: str
    ) -> bool:
        """Record a socket coming or going; whether that was the user's first or last. With the
        shared store down the socket still works: presence catches up by the heartbeat sweep."""
        try:
            return await record(user, sid)
        except Exception as exc:
            log.warning("presence not recorded (%s)", type(exc).__name__, extra={"user": user})
            return False

    def _expire(self, sid: str) -> None:
        """The token's exp has passed: a Socket.IO disconnect, so the client does not retry."""
        log.info("token expired", extra={"sid": sid})
        self._later(self.disconnect(sid))

    def _later(self, work: Coroutine[Any, Any, None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- events -------------------------------------------------------------------------

    @acked
    async def on_mensaje_privado(self, sid: str, data: Any, turn: Turn) -> Ack:
        me = self.user_of(sid)
        draft = Draft.parse(data, max_text=self.services.settings.msg_max_chars)
        placed = await self.services.chat.place(me, draft)
        # The socket's next message may go now that this one has its place in the commit
        # order: it is stored after this one, and shares its commit when they come together.
        turn.over()
        message = await placed.stored(from_sid=sid)
        return {"ok": True, "message": message_to_wire(message)}

    @acked
    async def on_sync(self, sid: str, data: Any, turn: Turn) -> Ack:
        messages, more = await self.services.chat.sync(self.user_of(sid), sync_after(data))
        return {"ok": True, "messages": [message_to_wire(m) for m in messages], "more": more}

    @acked
    async def on_read(self, sid: str, data: Any, turn: Turn) -> Ack:
        await self.services.chat.mark_read(self.user_of(sid), ReadUpTo.parse(data))
        return {"ok": True}

    @acked
    async def on_typing(self, sid: str, data: Any, turn: Turn) -> Ack:
        typing = Typing.parse(data)
        news = self.typing_news.get(sid)
        if news is None:
            news = self.typing_news[sid] = TypingNews()
        if news.relay(typing, time.monotonic()):
            await self.services.chat.typing(self.user_of(sid), typing)
        return {"ok": True}

    @acked
    async def on_announcement(self, sid: str, data: Any, turn: Turn) -> Ack:
        me = self.user_of(sid)
        text = announcement_text(data, max_text=self.services.settings.msg_max_chars)
        return {"ok": True, "announcement": await self.services.chat.announce(me, text)}
