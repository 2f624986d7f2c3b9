"""services.relay: when senders are held, on a lag source the test sets."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from services import relay
from services.cluster import LocalCluster
from services.errors import AppError, Code


class Source:
    def __init__(self) -> None:
        self.value: float | None = 0.0
        self.down = False

    async def probe(self) -> None:
        if self.down:
            raise ConnectionError("broker down")

    def lag(self) -> float | None:
        return self.value


async def gate_with(source: Source) -> tuple[relay.RelayGate, list[dict[str, object]]]:
    cluster = LocalCluster()
    news: list[dict[str, object]] = []

    async def on_control(message: dict[str, object]) -> None:
        news.append(message)

    await cluster.start(on_control)
    gate = relay.RelayGate(cluster, source)
    return gate, news


async def test_a_lagging_listener_closes_the_gate_and_says_so() -> None:
    source = Source()
    gate, news = await gate_with(source)
    await gate._tick()
    assert gate.is_open and news == []
    source.value = relay.MAX_LAG_SECONDS + 0.1
    await gate._tick()
    assert not gate.is_open
    assert news[-1]["op"] == "relay" and news[-1]["lag"] == source.value
    source.value = 0.01
    await gate._tick()
    assert gate.is_open
    assert news[-1]["lag"] == 0.01  # the others are told it caught up


async def test_held_senders_go_on_when_it_catches_up_or_are_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(relay, "WAIT_SECONDS", 0.3)
    source = Source()
    gate, _ = await gate_with(source)
    source.value = 2.0
    await gate._tick()
    with pytest.raises(AppError) as refused:
        await gate.admit()
    assert refused.value.code is Code.UNAVAILABLE
    held = asyncio.ensure_future(gate.admit())
    await asyncio.sleep(0.05)
    assert not held.done()
    source.value = 0.0
    await gate._tick()
    await asyncio.wait_for(held, 1)


async def test_broker_down_holds_nobody() -> None:
    """Without the broker each process still delivers to its own sockets: no reason to wait."""
    source = Source()
    gate, _ = await gate_with(source)
    source.value = 3.0
    source.down = True
    await gate._tick()
    assert gate.is_open
    source.value = None  # not subscribed
    source.down = False
    await gate._tick()
    assert gate.is_open


async def test_news_of_another_process_holds_until_it_expires(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(relay, "NEWS_TTL_SECONDS", 0.2)
    gate, _ = await gate_with(Source())
    gate.on_news({"op": "relay", "instance": gate.cluster.instance, "lag": 9.0})
    assert gate.is_open  # its own news is ignored
    gate.on_news({"op": "relay", "instance": "other", "lag": 9.0})
    assert not gate.is_open
    gate.on_news({"op": "relay", "instance": "other", "lag": 0.1})
    assert gate.is_open
    gate.on_news({"op": "relay", "instance": "other", "lag": 9.0})
    await asyncio.sleep(0.25)  # it died, or its news stopped
    await gate._tick()
    assert gate.is_open


async def test_replay_after_a_gap_with_the_database_down_is_logged_not_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Clients still have `sync`: a replay that cannot read the messages must not kill the
    listener's task nor raise into it."""
    from services.fanout import Fanout, NoSockets
    from services.presence import Connections

    async def database_down(since: object) -> AsyncIterator[list[Any]]:
        raise ConnectionRefusedError("database down")
        yield []  # an async generator, as `services.replay.stored_since`

    fanout = Fanout(Connections(), LocalCluster(), server=NoSockets(), stored_since=database_down)
    await fanout.relay_gap(0.0)
    assert "not delivered again" in caplog.text


async def test_the_replay_after_a_gap_sends_private_notes_to_the_team_only() -> None:
    from datetime import UTC, datetime

    from models.message import Message
    from services.fanout import Fanout
    from services.presence import Connections

    sent: list[tuple[str, Any, Any]] = []

    class Recorder:
        async def emit(self, event: str, data: Any = None, *, to: Any = None, **_: Any) -> None:
            sent.append((event, data["id"], to))

        async def disconnect(self, sid: str, namespace: str | None = None) -> None:
            pass

    def stored(id_: int, note: bool) -> Message:
        return Message(
            id=id_,
            sender="boss",
            recipient="ana",
            conversation="ana",
            text="x",
            created_at=datetime.now(UTC),
            client_msg_id=None,
            note=note,
        )

    async def two(since: object) -> AsyncIterator[list[Any]]:
        yield [stored(1, False), stored(2, True)]

    fanout = Fanout(Connections(), LocalCluster(), server=Recorder(), stored_since=two)
    await fanout.relay_gap(0.0)
    assert sent == [
        ("mensaje_privado", 1, ["admins", "user:ana"]),
        ("mensaje_privado", 2, ["admins"]),
    ]
