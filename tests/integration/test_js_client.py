"""Wire compatibility: the official JavaScript client (socket.io-client 4.8) against the server."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import REQUIRE, Stack

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
