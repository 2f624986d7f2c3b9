"""Back-pressure for delivery across processes.

An acked message is stored, then published once on the broker; every process's listener
decodes what every process publishes and hands it to its own sockets. The ack does not wait
for the other processes' listeners, so senders can outrun them: on a busy host a listener
gets a slice of its event loop while hundreds of sockets' events take the rest, its backlog
grows without limit (seconds, then minutes of delivery delay), and once Redis holds more
than `client-output-buffer-limit pubsub` for it, Redis cuts it off and what was published
meanwhile never reaches its sockets.

`RelayGate` bounds that backlog. Each process measures how far behind its own listener is
(a probe it publishes every `PROBE_SECONDS`, timed until its own listener reads it back);
a process whose lag passes `MAX_LAG_SECONDS` says so on the control channel, and while any
live process lags, every process holds new messages before storing them (`admit`), for at
most `WAIT_SECONDS`, then refuses them with `unavailable` (nothing stored; the client
resends with the same client_msg_id). The listeners then catch up, since the senders' work
is what starves them. With the relay down (Redis unreachable) nothing is held: each process
still delivers to its own sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Protocol, runtime_checkable

from services.cluster import Cluster, Control
from services.errors import unavailable
from services.metrics import RELAY_HELD, RELAY_LAG_SECONDS

log = logging.getLogger(__name__)

PROBE_SECONDS = 0.2
# The lag at which senders are held; the delivery delay across processes stays near it.
MAX_LAG_SECONDS = 0.5
# How long a sender is held before its message is refused with `unavailable`.
WAIT_SECONDS = 5.0
# A lagging process repeats its news this often; news older than NEWS_TTL_SECONDS is void
# (the process caught up, or died).
NEWS_SECONDS = 0.5
NEWS_TTL_SECONDS = 1.5


@runtime_checkable
class LagSource(Protocol):
    """What the gate needs of a broker-backed Socket.IO manager (`sockets.managers`)."""

    async def probe(self) -> None:
        """Publish a probe for this process's own listener; raises if the broker is down."""

    def lag(self) -> float | None:
        """Seconds this process's listener is behind, None when not known (not subscribed)."""


class RelayGate:
    def __init__(self, cluster: Cluster, source: LagSource | None = None) -> None:
        """`source`: the broker that can tell how far behind its listener is; without one
        (one process, or a broker that cannot tell) the gate never closes."""
        self.cluster = cluster
        self.source = source
        self._lagging: dict[str, float] = {}  # instance -> when its news expires (monotonic)
        self._open = asyncio.Event()
        self._open.set()
        self._local_lag = 0.0
        self._last_news = 0.0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Watch the source, if there is one."""
        if self._task is None and self.source is not None:
            self._task = asyncio.ensure_future(self._watch())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    @property
    def is_open(self) -> bool:
        return self._open.is_set()

    async def admit(self) -> None:
        """Return at once while every listener keeps up; else wait for them, up to
        WAIT_SECONDS, then refuse (`unavailable`)."""
        if self._open.is_set():
            return
        RELAY_HELD.labels("held").inc()
        try:
            await asyncio.wait_for(self._open.wait(), WAIT_SECONDS)
        except TimeoutError:
            RELAY_HELD.labels("refused").inc()
            raise unavailable() from None

    def on_news(self, message: Control) -> None:
        """Control news `{"op": "relay", "instance": ..., "lag": seconds}` from any process."""
        instance = str(message.get("instance"))
        if instance == self.cluster.instance:
            return
        if float(message.get("lag", 0)) > MAX_LAG_SECONDS:
            self._lagging[instance] = time.monotonic() + NEWS_TTL_SECONDS
        else:
            self._lagging.pop(instance, None)
        self._update(time.monotonic())

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(PROBE_SECONDS)
            try:
                await self._tick()
            except Exception:
                log.exception("relay watch failed")

    async def _tick(self) -> None:
        source = self.source
        if source is None:
            return
        lag = source.lag()
        try:
            await source.probe()
        except Exception:
            lag = None  # the broker is down: nothing to wait for, local delivery goes on
        was_lagging = self._local_lag > MAX_LAG_SECONDS
        self._local_lag = lag or 0.0
        RELAY_LAG_SECONDS.set(self._local_lag)
        lagging = self._local_lag > MAX_LAG_SECONDS
        now = time.monotonic()
        if lagging != was_lagging:
            log.warning(
                "cross-process delivery %s",
                "lagging: holding new messages" if lagging else "caught up",
                extra={"lag_ms": round(self._local_lag * 1000)},
            )
        if lagging or was_lagging:
            if not lagging or now - self._last_news >= NEWS_SECONDS:
                self._last_news = now
                news = {"op": "relay", "instance": self.cluster.instance, "lag": self._local_lag}
                with contextlib.suppress(Exception):
                    await self.cluster.publish(news)
        self._update(now)

    def _update(self, now: float) -> None:
        for instance, until in list(self._lagging.items()):
            if until <= now:
                del self._lagging[instance]
        if self._local_lag > MAX_LAG_SECONDS or self._lagging:
            self._open.clear()
        else:
            self._open.set()
