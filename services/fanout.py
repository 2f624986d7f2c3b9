"""Delivery to sockets: which rooms each event reaches. One process, through the Socket.IO
server's manager (which a broker-backed manager extends across processes)."""

from __future__ import annotations

import logging
from typing import Any, Protocol

from models.message import Message
from services.presence import Connections
from services.wire import (
    EV_ANNOUNCEMENT,
    EV_MESSAGE,
    EV_PRESENCE,
    EV_TYPING,
    ROOM_ADMINS,
    message_to_wire,
    user_room,
)

log = logging.getLogger(__name__)


class SocketServer(Protocol):
    """What fan-out needs of `socketio.AsyncServer`."""

    async def emit(
        self, event: str, data: Any = None, *, to: Any = None, skip_sid: Any = None
    ) -> None: ...

    async def disconnect(self, sid: str, namespace: str | None = None) -> None: ...


class Fanout:
    def __init__(self, connections: Connections) -> None:
        self.connections = connections
        self._server: SocketServer | None = None

    def attach(self, server: SocketServer) -> None:
        self._server = server

    @property
    def server(self) -> SocketServer:
        if self._server is None:
            raise RuntimeError("fan-out used before a Socket.IO server was attached")
        return self._server

    async def message(self, message: Message, *, skip_sid: str | None) -> None:
        """user -> admins: room admins and the sender's other sockets;
        admin -> user: the user's room and room admins; never the sending socket."""
        rooms = [ROOM_ADMINS, user_room(message.conversation)]
        await self.server.emit(EV_MESSAGE, message_to_wire(message), to=rooms, skip_sid=skip_sid)

    async def typing(self, sender: str, to: str, typing: bool) -> None:
        rooms = [ROOM_ADMINS] if to == ROOM_ADMINS else [ROOM_ADMINS, user_room(to)]
        payload = {"from": sender, "to": to, "typing": typing}
        skip = self.connections.of_user(sender)
        await self.server.emit(EV_TYPING, payload, to=rooms, skip_sid=skip)

    async def presence(self, user: str, online: bool) -> None:
        await self.server.emit(EV_PRESENCE, {"user": user, "online": online}, to=ROOM_ADMINS)

    async def announcement(self, payload: dict[str, str]) -> None:
        await self.server.emit(EV_ANNOUNCEMENT, payload)

    async def disconnect_user(self, user: str) -> None:
        for sid in self.connections.of_user(user):
            await self.server.disconnect(sid)

    async def disconnect_token(self, jti: str) -> None:
        for sid in self.connections.of_token(jti):
            await self.server.disconnect(sid)
