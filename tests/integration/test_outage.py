"""The database going away and coming back, through a TCP proxy the test cuts: refusals say
`unavailable`, nothing is half-stored, /healthz says which part is down, and service resumes
with no restart."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from config.settings import Secret
from services.errors import OUTAGE
from tests.conftest import Stack, StackFactory, service_url
from tests.tcp_proxy import TcpProxy

WIDGET_SECRET = "a-widget-secret-of-at-least-32-bytes!"

# Only MariaDB: the server is reached over TCP through the proxy.
pytestmark = [
    pytest.mark.mariadb,
    pytest.mark.parametrize("make_stack", ["mariadb"], indirect=True),
]


@pytest.fixture
async def proxied(make_stack: StackFactory):
    """A stack whose database is reached through a `TcpProxy`, with the website widget on."""
    service_url("mariadb")
    plain = await make_stack()
    url = make_url(plain.settings.database_url)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 3306)
    port = await proxy.start()
    via_proxy = url.set(port=port).render_as_string(hide_password=False)
    stack = await make_stack(
        database_url=via_proxy,
        widget_origins=("https://shop.example",),
        widget_secret=Secret(WIDGET_SECRET),
    )
    yield stack, proxy
    await proxy.close()


async def until_healthy(stack: Stack) -> None:
    assert stack.http is not None
    for _ in range(50):
        if (await stack.http.get("/healthz")).status_code == 200:
            return
        await asyncio.sleep(0.1)


async def test_database_outage_refuses_cleanly_and_recovers_by_itself(proxied) -> None:
    stack, proxy = proxied
    assert stack.http is not None
    token = await stack.register("ana")
    admin = await stack.register("boss", admin=True)
    ana = await stack.connect(token)
    assert (await ana.call("mensaje_privado", {"text": "before"}))["ok"] is True

    proxy.cut()
    ack = await ana.call("mensaje_privado", {"text": "during", "client_msg_id": "d1"}, timeout=20)
    assert ack == {"ok": False, "error": "unavailable", "message": ack["message"]}
    assert "Traceback" not in ack["message"] and "pymysql" not in ack["message"].lower()
    assert await stack.try_connect(auth={"token": admin}) == "unavailable"
    health = await stack.http.get("/healthz")
    assert health.status_code == 503
    assert health.json() == {"status": "unavailable", "checks": {"database": "down"}}
    api = await stack.http.get("/api/me", headers={"Authorization": f"Bearer {token}"})
    assert api.status_code == 503 and api.json()["error"] == "unavailable"

    proxy.restore()
    for _ in range(50):
        if (await stack.http.get("/healthz")).status_code == 200:
            break
        await asyncio.sleep(0.1)
    again = await ana.call("mensaje_privado", {"text": "after", "client_msg_id": "d1"})
    assert again["ok"] is True
    boss = await stack.connect(admin)
    texts = [m["text"] for m in (await boss.call("sync", {"after": 0}))["messages"]]
    assert texts == ["before", "after"]  # nothing of "during" was stored


async def test_the_team_workflow_through_a_database_outage(
    proxied, caplog: pytest.LogCaptureFixture
) -> None:
    """The inbox, a PATCH and the sweep (snoozes, assignment) with the database gone: refusals
    say `unavailable`, the sweep logs and goes on, and once it is back a snooze that came due
    meanwhile wakes at the next sweep."""
    from datetime import UTC, datetime, timedelta

    stack, proxy = proxied
    assert stack.http is not None
    admin = await stack.register("boss", admin=True)
    bearer = {"Authorization": f"Bearer {admin}"}
    ana = await stack.connect(await stack.register("ana"))
    assert (await ana.call("mensaje_privado", {"text": "help"}))["ok"] is True
    until = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
    r = await stack.http.patch(
        "/api/conversations/ana", json={"snoozed_until": until}, headers=bearer
    )
    assert r.json()["conversation"]["status"] == "snoozed"

    proxy.cut()
    for method, path, body in (
        ("GET", "/api/conversations", None),
        ("PATCH", "/api/conversations/ana", {"status": "resolved"}),
        ("GET", "/api/admins", None),
    ):
        r = await stack.http.request(method, path, json=body, headers=bearer)
        assert (r.status_code, r.json()["error"]) == (503, "unavailable"), (method, path)
    await asyncio.sleep(1.1)  # the snooze comes due while the database is away
    await stack.services.team.sweep_once()  # logs, does not raise
    assert "conversation sweep failed" in caplog.text

    proxy.restore()
    await until_healthy(stack)
    await stack.services.team.sweep_once()
    r = await stack.http.get("/api/conversations", headers=bearer)
    [conversation] = r.json()["conversations"]
    assert (conversation["status"], conversation["snoozed_until"]) == ("open", None)


async def test_visitors_and_uploads_through_a_database_outage(proxied) -> None:
    """New, identified and renewed visitors, an upload, a download and the uploads' sweep with
    the database gone: `unavailable`, no file left in the store without its row; then all of
    it works again with no restart."""
    stack, proxy = proxied
    assert stack.http is not None
    ana = await stack.register("ana")
    bearer = {"Authorization": f"Bearer {ana}"}
    digest = hmac.new(WIDGET_SECRET.encode(), b"42", hashlib.sha256).hexdigest()
    kept = (await stack.http.post("/api/visitors", json={})).json()["token"]
    upload = {**bearer, "Content-Type": "text/plain", "Upload-Name": "notes.txt"}
    stored = (await stack.http.post("/api/uploads", content=b"before\n", headers=upload)).json()
    store = Path(stack.settings.storage.location)
    files = set(store.rglob("*"))

    proxy.cut()
    for body in ({}, {"id": "42", "hash": digest}, {"token": kept}):
        r = await stack.http.post("/api/visitors", json=body)
        assert (r.status_code, r.json()["error"]) == (503, "unavailable"), body
    r = await stack.http.post("/api/uploads", content=b"during\n", headers=upload)
    assert (r.status_code, r.json()["error"]) == (503, "unavailable")
    assert set(store.rglob("*")) == files  # nothing kept of the refused upload
    r = await stack.http.get(stored["attachment"]["url"], headers=bearer)
    assert (r.status_code, r.json()["error"]) == (503, "unavailable")
    with pytest.raises(OUTAGE):  # the sweep's loop logs this and goes on
        await stack.services.uploads.sweep_once()

    proxy.restore()
    await until_healthy(stack)
    assert (await stack.http.post("/api/visitors", json={"token": kept})).status_code == 200
    assert (
        await stack.http.post("/api/visitors", json={"id": "42", "hash": digest})
    ).status_code == 201
    r = await stack.http.post("/api/uploads", content=b"after\n", headers=upload)
    assert r.status_code == 201, r.text
    assert (
        await stack.http.get(stored["attachment"]["url"], headers=bearer)
    ).content == b"before\n"
