"""Delivery to sockets: which rooms each event reaches. One process, through the Socket.IO
server's manager (which a broker-backed manager extends across processes)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from models.message import Message, StoredMessage
from models.user import Person
from services.cluster import Cluster, Control
from services.presence import Connections
from services.wire import (
    EV_ANNOUNCEMENT,
    EV_CONVERSATION,
    EV_MESSAGE,
    EV_PRESENCE,
    EV_TYPING,
    ROOM_ADMINS,
    conversation_to_wire,
    message_to_wire,
    user_room,
)

if TYPE_CHECKING:
    from services.team import Conversation

log = logging.getLogger(__name__)


class Emitter(Protocol):
    """What fan-out needs of `socketio.AsyncServer`."""

    async def emit(
        self,
        event: str,
        data: Any = None,
        *,
        to: Any = None,
        skip_sid: Any = None,
        ignore_queue: bool = False,
    ) -> None: ...

    async def disconnect(self, sid: str, namespace: str | None = None) -> None: ...


class NoSockets:
    """The `Emitter` of a process that serves no sockets (the command line): what it changes
    reaches the workers' sockets through the cluster's news, not through emits of its own."""

    async def emit(self, event: str, data: Any = None, **_: Any) -> None:
        pass

    async def disconnect(self, sid: str, namespace: str | None = None) -> None:
        pass


def rooms_of(message: StoredMessage) -> list[str]:
    """The rooms a stored message goes to: a private note to the team only."""
    if message.note:
        return [ROOM_ADMINS]
    return [ROOM_ADMINS, user_room(message.conversation)]


StoredSince = Callable[[datetime], AsyncIterator[list[Message]]]


class Fanout:
    def __init__(
        self,
        connections: Connections,
        cluster: Cluster,
        *,
        server: Emitter,
        stored_since: StoredSince,
        broker: object = None,
    ) -> None:
        """`stored_since` reads back what was stored since a time (`services.replay`);
        `broker`, the Socket.IO manager, when it can tell that its listener was cut off
        (`on_gap`), gets `relay_gap` as its handler."""
        self.connections, self.cluster, self.server = connections, cluster, server
        self.stored_since = stored_since
        if broker is not None and hasattr(broker, "on_gap"):
            broker.on_gap = self.relay_gap

    async def message(self, message: StoredMessage, *, skip_sid: str | None) -> None:
        """user -> admins: room admins and the sender's other sockets;
        admin -> user: the user's room and room admins; a note: room admins only; never the
        sending socket."""
        await self.server.emit(
            EV_MESSAGE, message_to_wire(message), to=rooms_of(message), skip_sid=skip_sid
        )

    async def relay_gap(self, since: float) -> None:
        """This process's broker listener was cut off (Redis restarted, or dropped it) and has
        subscribed again: what other processes published meanwhile never reached this
        process's sockets. Deliver again, to this process's sockets only, every message stored
        since shortly before the cut; clients drop the ones they have by id."""
        delivered = 0
        try:
            async for page in self.stored_since(datetime.fromtimestamp(since, UTC)):
                for message in page:
                    await self.server.emit(
                        EV_MESSAGE,
                        message_to_wire(message),
                        to=rooms_of(message),
                        ignore_queue=True,
                    )
                delivered += len(page)
        except Exception:
            log.exception(
                "messages of the broker outage not delivered again; clients sync",
                extra={"messages": delivered},
            )
            return
        log.info("delivered again after a broker outage", extra={"messages": delivered})

    async def typing(self, sender: Person, to: str, typing: bool) -> None:
        rooms = [ROOM_ADMINS] if to == ROOM_ADMINS else [ROOM_ADMINS, user_room(to)]
        payload = {"from": sender.user, "from_name": sender.name, "to": to, "typing": typing}
        skip = await self.cluster.sids_of(sender.user)  # on every process
        await self.server.emit(EV_TYPING, payload, to=rooms, skip_sid=skip)

    async def presence(self, user: str, online: bool) -> None:
        await self.server.emit(EV_PRESENCE, {"user": user, "online": online}, to=ROOM_ADMINS)

    async def conversation(self, conversation: Conversation) -> None:
        """A conversation's new state, to every admin."""
        await self.server.emit(EV_CONVERSATION, conversation_to_wire(conversation), to=ROOM_ADMINS)

    async def announcement(self, payload: dict[str, str]) -> None:
        await self.server.emit(EV_ANNOUNCEMENT, payload)

    async def disconnect_user(self, user: str) -> None:
        """Close the user's sockets on every process (a Socket.IO disconnect)."""
        await self.cluster.publish({"op": "disconnect_user", "user": user})

    async def disconnect_token(self, jti: str) -> None:
        await self.cluster.publish({"op": "disconnect_token", "jti": jti})

    async def on_control(self, message: Control) -> None:
        op = message.get("op")
        if op == "disconnect_user":
            sids = self.connections.close_user(str(message["user"]))
        elif op == "disconnect_token":
            sids = self.connections.close_token(str(message["jti"]))
        elif op == "offline":  # the last socket of a user was on a process that died
            await self.presence(str(message["user"]), False)
            return
        else:
            log.warning("unknown control message", extra={"op": op})
            return
        if sids:
            for sid in sids:
                await self.server.disconnect(sid)
