"""`python server.py` as an operator runs it: bare start, bad settings, an unreachable
database, `adduser`, and SIGTERM."""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import PASSWORD, _fresh_server_database, free_port, service_url

ROOT = Path(__file__).resolve().parent.parent.parent
SERVER = str(ROOT / "server.py")

pytestmark = pytest.mark.slow


def clean_env(**extra: str) -> dict[str, str]:
    """No settings at all, as on a fresh machine."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/")}
    env.update(extra)
    return env


def wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float = 20) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited with {proc.returncode}")
        try:
            return httpx.get(f"{url}/healthz", timeout=1)
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError("server did not answer /healthz")


@pytest.fixture
def run_server(tmp_path: Path) -> Iterator[object]:
    procs: list[subprocess.Popen[bytes]] = []

    def start(*args: str, **env: str) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [sys.executable, SERVER, *args],
            cwd=tmp_path,
            env=clean_env(**env),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()  # also closes the pipes


def test_bare_start_serves_on_sqlite_and_stops_cleanly_on_sigterm(
    run_server, tmp_path: Path
) -> None:
    port = free_port()
    proc = run_server("--port", str(port))
    url = f"http://127.0.0.1:{port}"
    health = wait_healthy(url, proc)
    assert health.status_code == 200
    assert health.json() == {"status": "ok", "checks": {"database": "ok"}}
    assert (tmp_path / "supportchat.db").is_file()
    secret = tmp_path / "supportchat.db.jwt-secret"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert httpx.get(f"{url}/login").status_code == 200
    r = httpx.post(
        f"{url}/api/register", json={"username": "ana", "name": "Ana", "password": PASSWORD}
    )
    assert r.status_code == 201
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=15)
    assert proc.returncode == 0
    assert time.monotonic() - started < 15
    assert b"Traceback" not in err
    assert secret.read_text() not in err.decode()


def test_restart_on_the_same_database_changes_nothing(run_server, tmp_path: Path) -> None:
    for _ in range(2):
        port = free_port()
        proc = run_server("--port", str(port))
        assert wait_healthy(f"http://127.0.0.1:{port}", proc).status_code == 200
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=15)
        assert proc.returncode == 0, err.decode()
    assert b"Running upgrade" not in err


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("JWT_TTL", "soon"),
        ("PORT", "http"),
        ("MSG_RATE", "-1"),
        ("COOKIE_SECURE", "maybe"),
        ("DATABASE_URL", "oracle://x"),
        ("TRUSTED_PROXIES", "not-an-ip"),
        ("JWT_SECRET", "short"),
        ("WORKER_ID", "w-1"),
    ],
)
def test_malformed_setting_stops_start_with_one_line_naming_it(
    run_server, name: str, value: str
) -> None:
    proc = run_server(**{name: value})
    _, err = proc.communicate(timeout=15)
    assert proc.returncode == 2
    lines = err.decode().strip().splitlines()
    assert len(lines) == 1 and name in lines[0], lines


def test_jwt_secret_is_required_with_a_server_database(run_server) -> None:
    proc = run_server(DATABASE_URL="mysql://root@127.0.0.1:1/test")
    _, err = proc.communicate(timeout=15)
    assert proc.returncode == 2
    assert err.decode().strip().startswith("supportchat: JWT_SECRET")


def test_unreachable_database_is_retried_once_a_second_without_traceback(run_server) -> None:
    proc = run_server(
        "--port",
        str(free_port()),
        DATABASE_URL=f"mysql://root@127.0.0.1:{free_port()}/test",
        JWT_SECRET="s" * 40,
    )
    time.sleep(3.5)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=15)
    text = err.decode()
    retries = [line for line in text.splitlines() if "database unreachable" in line]
    assert 2 <= len(retries) <= 6, text
    assert "Traceback" not in text
    assert proc.returncode == 0


def test_adduser_creates_an_admin_and_refuses_duplicates_and_bad_input(run_server) -> None:
    proc = run_server("adduser", "Boss", "--name", "The Boss", "--admin")
    _, err = proc.communicate(f"{PASSWORD}\n".encode(), timeout=30)
    assert proc.returncode == 0, err.decode()
    assert err.decode().splitlines() == ["adduser: created admin 'Boss'"]  # one line, no logs

    again = run_server("adduser", "boss", "--name", "Other")
    _, err = again.communicate(f"{PASSWORD}\n".encode(), timeout=30)
    assert again.returncode == 1
    assert err.decode().strip().splitlines()[-1] == "adduser: That user name is taken."

    short = run_server("adduser", "carl", "--name", "Carl")
    _, err = short.communicate(b"short\n", timeout=30)
    assert short.returncode == 1
    assert "Password must be" in err.decode().strip().splitlines()[-1]

    port = free_port()
    server = run_server("--port", str(port))
    url = f"http://127.0.0.1:{port}"
    wait_healthy(url, server)
    r = httpx.post(f"{url}/api/login", json={"username": "boss", "password": PASSWORD})
    assert r.status_code == 200 and r.json()["user"]["rol"] == "admin"


async def test_sigterm_finishes_acks_in_flight_closes_transports_and_exits(
    run_server, tmp_path
) -> None:
    """Committed messages are acked, nothing is stored unacked, clients see a transport close
    (so they reconnect elsewhere), and the process exits within 15 s."""
    import asyncio
    import sqlite3

    from tests.conftest import Client

    port = free_port()
    proc = run_server("--port", str(port))
    url = f"http://127.0.0.1:{port}"
    wait_healthy(url, proc)
    async with httpx.AsyncClient(base_url=url) as http:
        await http.post(
            "/api/register", json={"username": "ana", "name": "Ana", "password": PASSWORD}
        )
        token = (
            await http.post("/api/login", json={"username": "ana", "password": PASSWORD})
        ).json()["token"]
    clients = []
    for transport in ("websocket", "polling"):
        client = Client()
        await client.sio.connect(url, auth={"token": token}, transports=[transport], wait_timeout=5)
        clients.append(client)
    raw = await RawSocket.open(url, token)

    acks: list[dict[str, Any]] = []

    async def keep_sending(client: Client, n: int) -> None:
        for i in range(n):
            try:
                acks.append(await client.call("mensaje_privado", {"text": f"{n}-{i}"}, timeout=5))
            except Exception:
                return  # the server has gone

    senders = [asyncio.ensure_future(keep_sending(c, 10_000)) for c in clients]
    await asyncio.sleep(0.5)
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    await asyncio.wait_for(asyncio.gather(*(c.disconnected.wait() for c in clients)), 15)
    await asyncio.gather(*senders)
    _, err = await asyncio.to_thread(proc.communicate, timeout=15)
    assert proc.returncode == 0, err.decode()
    assert time.monotonic() - started < 15
    for client in clients:
        await client.sio.disconnect()
    frames = await raw.until_closed()
    assert "41" not in frames  # a transport close, not a Socket.IO disconnect: clients retry

    ok_ids = sorted(a["message"]["id"] for a in acks if a.get("ok"))
    assert ok_ids, "no message was acked before the signal"
    with sqlite3.connect(tmp_path / "supportchat.db") as db:
        stored = sorted(r[0] for r in db.execute("SELECT id FROM messages"))
    assert stored == ok_ids  # every stored message was acked ok, every ok ack is stored
    try:
        httpx.get(f"{url}/healthz", timeout=1)
        raise AssertionError("the port still answers after exit")
    except httpx.TransportError:
        pass


class RawSocket:
    """A bare Engine.IO WebSocket that records every frame the server sends."""

    def __init__(self, session, ws) -> None:
        self.session, self.ws = session, ws

    @classmethod
    async def open(cls, url: str, token: str) -> RawSocket:
        import json

        import aiohttp

        session = aiohttp.ClientSession()
        ws = await session.ws_connect(f"{url}/socket.io/?EIO=4&transport=websocket")
        assert (await ws.receive_str()).startswith("0")
        await ws.send_str("40" + json.dumps({"token": token}))
        assert (await ws.receive_str()).startswith("40")
        return cls(session, ws)

    async def until_closed(self) -> list[str]:
        frames = []
        async for message in self.ws:
            if isinstance(message.data, str):
                frames.append(message.data)
                if message.data == "2":
                    await self.ws.send_str("3")
        await self.session.close()
        return frames


@pytest.mark.mariadb
async def test_adduser_needs_no_jwt_secret_on_mariadb(run_server) -> None:
    """It signs no token: JWT_SECRET is the workers' business."""
    url = await _fresh_server_database("mariadb", service_url("mariadb"))
    plain = "mysql://" + url.partition("://")[2]
    proc = run_server("adduser", "boss", "--name", "Boss", "--admin", DATABASE_URL=plain)
    _, err = proc.communicate(f"{PASSWORD}\n".encode(), timeout=60)
    assert proc.returncode == 0, err.decode()
    assert err.decode().splitlines() == ["adduser: created admin 'boss'"]
    served = run_server("--port", str(free_port()), DATABASE_URL=plain)
    _, err = served.communicate(timeout=30)
    assert served.returncode == 2 and b"JWT_SECRET: required" in err  # serving does need it


def test_a_secret_file_tracked_by_git_stops_the_server(run_server, tmp_path: Path) -> None:
    git = shutil.which("git")
    if git is None:
        pytest.skip("git is not installed")
    secret = tmp_path / "supportchat.db.jwt-secret"
    secret.write_text("committed by mistake, " * 3)
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "HOME": str(tmp_path)}
    for args in (["init", "-q"], ["add", secret.name]):
        subprocess.run([git, *args], cwd=tmp_path, check=True, env={**os.environ, **env})
    proc = run_server("--port", str(free_port()))
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 2
    line = err.decode().strip().splitlines()[-1]
    assert line.startswith(f"supportchat: {secret.name} is tracked by git"), err.decode()
    # untracked (as .gitignore keeps it), the same file is used
    subprocess.run([git, "rm", "-q", "--cached", secret.name], cwd=tmp_path, check=True)
    port = free_port()
    served = run_server("--port", str(port))
    assert wait_healthy(f"http://127.0.0.1:{port}", served).status_code == 200
