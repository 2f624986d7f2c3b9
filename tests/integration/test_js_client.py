"""Wire compatibility: the official JavaScript client (socket.io-client 4.8) against the server."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REQUIRE, Stack, StackFactory

JS = Path(__file__).resolve().parent.parent / "js"


def node_or_skip() -> str:
    node = shutil.which("node")
    if node is None or not (JS / "node_modules" / "socket.io-client").is_dir():
        reason = "node and tests/js/node_modules (npm ci in tests/js) are needed"
        if REQUIRE:
            pytest.fail(reason)
        pytest.skip(reason)
    return node


@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_official_js_client_speaks_the_contract(stack: Stack, transport: str) -> None:
    node = node_or_skip()
    user = await stack.register("ana", "Ana")
    admin = await stack.register("boss", "Boss", admin=True)
    proc = await asyncio.create_subprocess_exec(
        node,
        str(JS / "smoke.mjs"),
        stack.url,
        user,
        admin,
        transport,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=JS,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, (out.decode(), err.decode())
    seen = json.loads(out.decode().strip().splitlines()[-1])
    assert seen["noAuth"] == "No autenticado"
    assert seen["noToken"] == "Token no proporcionado"
    assert seen["badToken"] == "Token inválido"
    ack = seen["ack"]
    assert ack["ok"] is True
    message = ack["message"]
    assert message["text"] == "hola <b>" and message["client_msg_id"] == "js-1"
    assert message["from"] == "ana" and message["to"] == "admins"
    assert seen["adminGot"] == message
    assert seen["replyAck"]["ok"] is True and seen["userGot"] == seen["replyAck"]["message"]
    assert [m["id"] for m in seen["sync"]["messages"]] == [message["id"], seen["userGot"]["id"]]
    assert seen["bad"]["ok"] is False and seen["bad"]["error"] == "invalid"
    assert seen["announcement"] == seen["announceAck"]["announcement"]


async def run_burst(url: str, token: str, transport: str, count: int) -> dict[str, Any]:
    """What burst.mjs saw: `count` emits in one tick, each one's ack."""
    node = node_or_skip()
    proc = await asyncio.create_subprocess_exec(
        node,
        str(JS / "burst.mjs"),
        url,
        token,
        transport,
        str(count),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=JS,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 90)
    assert proc.returncode == 0, (out.decode()[-500:], err.decode()[-2000:])
    seen: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return seen


def assert_burst_stored_in_order(seen: dict[str, Any], count: int) -> None:
    acks = seen["acks"]
    assert len(acks) == count and len(seen["arrived"]) == count  # each acked, once
    failed = [a for a in acks if not a.get("ok")]
    assert failed == [], failed[:3]
    texts = [a["message"]["text"] for a in acks]
    assert texts == [f"burst {i}" for i in range(count)]
    ids = [a["message"]["id"] for a in acks]
    assert ids == sorted(ids) and len(set(ids)) == count  # stored in the order sent


@pytest.mark.parametrize("make_stack", ["sqlite"], indirect=True)
@pytest.mark.parametrize("count", [20, 100, 500])
async def test_a_burst_in_one_tick_over_polling_is_acked_in_order(
    make_stack: StackFactory, count: int
) -> None:
    """The client sends the burst as one HTTP POST; python-engineio took at most 16 packets
    from one and dropped the whole POST past that."""
    stack = await make_stack(msg_rate=0.0)
    token = await stack.register("ana")
    seen = await run_burst(stack.url, token, "polling", count)
    assert_burst_stored_in_order(seen, count)
    history = await stack.http.get(  # type: ignore[union-attr]
        "/api/messages", params={"limit": "200"}, headers={"Authorization": f"Bearer {token}"}
    )
    assert len(history.json()["messages"]) == min(count, 200)
