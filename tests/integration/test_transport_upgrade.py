"""Sockets that start on polling and upgrade to WebSocket, as browsers' clients do, keep
working after the server trims what each open socket holds."""

from __future__ import annotations

from tests.conftest import Stack


async def test_polling_upgrades_to_websocket_and_exchanges(stack: Stack) -> None:
    token = await stack.register("ana")
    client = await stack.connect(token, transports=["polling", "websocket"])
    await client.upgraded()
    for i in range(3):
        ack = await client.call("mensaje_privado", {"text": f"after the upgrade {i}"})
        assert ack["ok"] is True


async def test_cookie_handshake_on_polling_then_websocket(stack: Stack) -> None:
    token = await stack.register("ana")
    assert (
        await stack.try_connect(
            headers={"Cookie": f"token={token}"}, transports=["polling", "websocket"]
        )
        is None
    )
