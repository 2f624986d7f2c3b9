"""python-socketio's managers (rooms, and the fan-out across processes) for this server.

`DirectEmit`: `socketio.AsyncManager.emit` encodes the packet once, then starts one task per
recipient and waits for them all. Handing a packet to a socket only appends it to the
socket's queue (its writer task does the rest), so those tasks cost a task each and, worse,
a turn of the event loop for every emit: a broker listener, which relays one message at a
time, then relays one message per turn of a busy loop, whatever CPU is left. `DirectEmit`
hands the packet to each recipient's Engine.IO socket in place (`AsyncServer.send_packet`).

`RedisManager`: python-socketio's `AsyncPubSubManager` through its two documented hooks,
`_publish` and `_listen`, on Redis's pub/sub: pipelined publishing, a bounded connection
pool, a listener that resubscribes within a second (python-socketio's Redis manager backs off
up to a minute), that drops its own process's messages, and that times probes to tell how
far behind it is (`services.relay`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import socketio
from engineio import packet as eio_packet
from redis import asyncio as aioredis
from socketio import packet
from socketio.async_pubsub_manager import AsyncPubSubManager

from services import json_input
from services.redis import connect_redis

log = logging.getLogger("socketio.manager")

# After the listener was cut off, messages stored from this long before the last one it read
# are delivered again to this process's sockets (commit-to-publish time, clocks of workers).
GAP_MARGIN_SECONDS = 5.0
# Emits published in one pipelined round trip at most.
PUBLISH_BATCH = 200
# A probe on the Socket.IO channel (see `RedisManager.probe`): python-socketio ignores a
# method it does not know, and ours never reach it.
PROBE = "probe"


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
        send = self.server.eio.send_packet  # python-engineio's public "send a raw packet"
        for sid, eio_sid in list(self.get_participants(namespace, room)):
            if sid in skip:
                continue
            for frame in frames:
                try:
                    await send(eio_sid, frame)
                except Exception as exc:  # a socket closing meanwhile: the others still get it
                    log.debug("emit to %s dropped: %s", sid, type(exc).__name__)
                    break


class LocalManager(DirectEmit):
    """Rooms in this process's memory (one process)."""


class AioPikaManager(socketio.AsyncAioPikaManager, DirectEmit):  # type: ignore[misc]
    """Rooms across processes on RabbitMQ (`BROKER_URL=amqp://`)."""


class RedisManager(AsyncPubSubManager, DirectEmit):  # type: ignore[misc]
    name = "redis"

    def __init__(
        self, url: str, *, channel: str, logger: logging.Logger | None = None, json: Any = None
    ) -> None:
        super().__init__(channel=channel, logger=logger, json=json)
        self.url = url
        self.redis: aioredis.Redis | None = None  # publishing and probes
        self._listener: aioredis.Redis | None = None
        self._probe_seq = 0
        self._probes: dict[int, float] = {}  # probes published, not yet read back: seq -> when
        self._roundtrip: float | None = None  # the last probe's; None while not subscribed
        # Called after the listener resubscribed, with the wall-clock time from which what was
        # published may never have reached it (`Fanout.relay_gap`).
        self.on_gap: Callable[[float], Awaitable[None]] | None = None
        self._last_read = time.time()  # when the listener last read a message
        self._gap_since: float | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._outbox: list[tuple[str, asyncio.Future[None]]] = []
        self._publisher: asyncio.Task[None] | None = None

    # -- publishing ----------------------------------------------------------------------

    async def _publish(self, data: Any) -> None:
        """Publish on the Socket.IO channel and return once Redis has it: the emits of many
        callers at once share one pipelined round trip instead of one each."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._outbox.append((self.json.dumps(data), done))
        if self._publisher is None or self._publisher.done():
            self._publisher = asyncio.ensure_future(self._publish_all())
        await done  # a cancelled caller cancels only its own future, which is then skipped

    async def _publish_all(self) -> None:
        while self._outbox:
            batch, self._outbox = self._outbox[:PUBLISH_BATCH], self._outbox[PUBLISH_BATCH:]
            try:
                await self._publish_batch([message for message, _ in batch])
            finally:  # like python-socketio's, a failed publish is logged, not raised
                for _, done in batch:
                    if not done.done():
                        done.set_result(None)

    async def _publish_batch(self, messages: list[str]) -> None:
        for attempt in (1, 2):
            try:
                if self.redis is None:
                    self.redis = connect_redis(self.url)
                async with self.redis.pipeline(transaction=False) as pipe:
                    for message in messages:
                        pipe.publish(self.channel, message)
                    await pipe.execute()
                return
            except Exception as exc:
                self._get_logger().error(
                    "Cannot publish to redis (%s)%s",
                    type(exc).__name__,
                    "; retrying" if attempt == 1 else ": giving up",
                )
                self._drop_client()

    def _drop_client(self) -> None:
        """Forget the publishing client (a new one connects at the next publish)."""
        if self.redis is not None:
            self._later(self.redis.aclose())
            self.redis = None

    # -- listening -----------------------------------------------------------------------

    async def _listen(self) -> AsyncIterator[dict[str, Any]]:
        """What python-socketio's listener handles: other processes' messages, and callbacks
        for this one. What this process published comes back to it too; python-socketio
        would drop it, this drops it first (and the probes, which are this module's)."""
        async for data in self._subscribed():
            try:
                message = json_input.loads_ours(data)
            except ValueError:
                log.warning("undecodable message on the Socket.IO channel")
                continue
            if not isinstance(message, dict):
                continue
            method = message.get("method")
            if method == PROBE:
                self._probe_read(message)
            elif method == "callback" or message.get("host_id") != self.host_id:
                yield message

    async def _subscribed(self) -> AsyncIterator[bytes]:
        """Every message published on the channel, subscribing again within about a second
        whenever the subscription is lost."""
        while True:
            try:
                self._roundtrip = None
                self._probes.clear()  # published before: lost, or in the old connection
                await self._close_listener()
                self._listener = connect_redis(self.url)
                pubsub = self._listener.pubsub(ignore_subscribe_messages=True)
                await pubsub.subscribe(self.channel)
                self._roundtrip = 0.0
                self._get_logger().info("subscribed to %s", self.channel)
                if self._gap_since is not None:
                    self._gap_closed(self._gap_since)
                    self._gap_since = None
                channel = self.channel.encode()
                async for message in pubsub.listen():
                    if message["channel"] == channel and message["type"] == "message":
                        self._last_read = time.time()
                        yield message["data"]
            except Exception as exc:
                self._get_logger().warning(
                    "Socket.IO channel lost (%s); resubscribing", type(exc).__name__
                )
                if self._gap_since is None:  # what was published after this may be lost
                    self._gap_since = self._last_read - (self.lag() or 0.0) - GAP_MARGIN_SECONDS
                self._roundtrip = None
                await asyncio.sleep(0.5 + secrets.randbelow(500) / 1000)

    def _gap_closed(self, since: float) -> None:
        if self.on_gap is not None:
            self._later(self.on_gap(since))

    # -- probes (services.relay.LagSource) -----------------------------------------------

    async def probe(self) -> None:
        """Publish a probe that this process's listener times when it reads it back."""
        if self._roundtrip is None:
            raise ConnectionError("the Socket.IO channel is not subscribed")
        if self.redis is None:
            self.redis = connect_redis(self.url)
        self._probe_seq += 1
        seq = self._probe_seq
        self._probes[seq] = time.monotonic()
        message = self.json.dumps({"method": PROBE, "host_id": self.host_id, "seq": seq})
        try:
            await self.redis.publish(self.channel, message)
        except BaseException:
            self._probes.pop(seq, None)
            raise

    def lag(self) -> float | None:
        """Seconds behind: the oldest unanswered probe's age, else the last round trip."""
        if self._roundtrip is None:
            return None
        if self._probes:
            return max(self._roundtrip, time.monotonic() - min(self._probes.values()))
        return self._roundtrip

    def _probe_read(self, probe: dict[str, Any]) -> None:
        if probe.get("host_id") != self.host_id:
            return
        seq = probe.get("seq")
        if not isinstance(seq, int):
            return
        sent = self._probes.pop(seq, None)
        if sent is not None:
            self._roundtrip = time.monotonic() - sent
        for earlier in [s for s in self._probes if s < seq]:  # lost with a reconnect
            del self._probes[earlier]

    # -- lifetime ------------------------------------------------------------------------

    def _later(self, work: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _close_listener(self) -> None:
        if self._listener is not None:
            listener, self._listener = self._listener, None
            with contextlib.suppress(Exception):
                await listener.aclose()

    async def close(self) -> None:
        """Stop listening and close the connections (python-socketio has no such call)."""
        self._roundtrip = None  # no more probes
        for task in [*self._tasks, self._publisher]:
            if task is not None:
                task.cancel()
        for _, done in self._outbox:
            if not done.done():
                done.set_result(None)
        self._outbox.clear()
        thread = getattr(self, "thread", None)
        if thread is not None:
            thread.cancel()
            with contextlib.suppress(BaseException):
                await thread
        await self._close_listener()
        if self.redis is not None:
            await self.redis.aclose()
            self.redis = None
