"""python-socketio's managers, sending an emit to its recipients without a task for each.

`socketio.AsyncManager.emit` encodes the packet once, then starts one task per recipient and
waits for them all. Handing a packet to a socket only appends it to the socket's queue (its
writer task does the rest), so those tasks cost a task each and, worse, a turn of the event
loop for every emit: a broker listener, which relays one message at a time, then relays one
message per turn of a busy loop, whatever CPU is left. `DirectEmit` hands the packet to each
recipient's queue in place.
"""

from __future__ import annotations

import logging
from typing import Any

import socketio
from engineio import packet as eio_packet
from socketio import packet

log = logging.getLogger("socketio.manager")


class DirectEmit(socketio.AsyncManager):  # type: ignore[misc]
    async def emit(
        self,
        event: str,
        data: Any,
        namespace: str,
        room: Any = None,
        skip_sid: Any = None,
        callback: Any = None,
        to: Any = None,
        **kwargs: Any,
    ) -> None:
        if callback is not None:  # a packet per recipient, each with its ack id
            await super().emit(
                event, data, namespace, room=room, skip_sid=skip_sid, callback=callback, to=to
            )
            return
        room = to or room
        if namespace not in self.rooms:
            return
        if isinstance(data, tuple):  # as python-socketio: a tuple is several arguments
            args = list(data)
        else:
            args = [] if data is None else [data]
        skip = skip_sid if isinstance(skip_sid, list) else [skip_sid]
        encoded = self.server.packet_class(
            packet.EVENT, namespace=namespace, data=[event, *args]
        ).encode()
        frames = [
            eio_packet.Packet(eio_packet.MESSAGE, p)
            for p in (encoded if isinstance(encoded, list) else [encoded])
        ]
        for sid, eio_sid in list(self.get_participants(namespace, room)):
            if sid in skip:
                continue
            for frame in frames:
                try:
                    await self.server._send_eio_packet(eio_sid, frame)
                except Exception as exc:  # a socket closing meanwhile: the others still get it
                    log.debug("emit to %s dropped: %s", sid, type(exc).__name__)
                    break


class LocalManager(DirectEmit):
    """Rooms in this process's memory (one process)."""
