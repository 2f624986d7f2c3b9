"""Several worker processes behind a real nginx, as the README deploys them: every worker is
`python server.py` with its own WORKER_ID and PORT, all on one Redis and one database (which
they migrate themselves, all at once), and nginx runs the config that `server.py
nginx-config` prints. Sessions stay on the worker that opened them by their sid prefix, never
by the client's address."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import argon2
import httpx
import pytest
import socketio
from sqlalchemy import insert

from config.settings import parse_database_url
from models.db import make_engine
from models.user import User
from tests.conftest import (
    PASSWORD,
    REQUIRE,
    Client,
    _fresh_server_database,
    forget_redis_prefix,
    free_port,
    service_url,
)

pytestmark = [pytest.mark.slow, pytest.mark.redis, pytest.mark.mariadb]

ROOT = Path(__file__).resolve().parent.parent.parent
SERVER = str(ROOT / "server.py")
SIGKILL_BOUND = 25.0  # services/cluster.py: DEAD_AFTER_SECONDS 15 plus one heartbeat of 5

_HASH: list[str] = []


def password_hash() -> str:
    """One argon2id hash of PASSWORD with the server's own parameters (no rehash at login)."""
    if not _HASH:
        _HASH.append(argon2.PasswordHasher().hash(PASSWORD))
    return _HASH[0]


def nginx_binary() -> str:
    found = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if found is None:
        if REQUIRE:
            pytest.fail("nginx is not installed and REQUIRE_SERVICES=1")
        pytest.skip("nginx is not installed")
    return found


def worker_env(**settings: str) -> dict[str, str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/")}
    env.update(settings)
    return env


def plain_url(url: str) -> str:
    """`mysql+aiomysql://...` as an operator writes it: `mysql://...`."""
    scheme, _, rest = url.partition("://")
    return f"{scheme.split('+', 1)[0]}://{rest}"


def _tail(path: Path, lines: int = 40) -> str:
    if not path.exists():
        return f"({path.name}: missing)"
    return f"--- {path.name} ---\n" + "\n".join(
        path.read_text(errors="replace").splitlines()[-lines:]
    )


async def _wait_http(
    url: str, alive: Callable[[], str | None], timeout: float = 30
) -> httpx.Response:
    """Poll `url` until it answers 200; `alive` returns a reason when the process died."""
    deadline = time.monotonic() + timeout
    last: object = None
    async with httpx.AsyncClient(timeout=2) as http:
        while time.monotonic() < deadline:
            dead = alive()
            if dead:
                raise AssertionError(dead)
            try:
                r = await http.get(url)
                if r.status_code == 200:
                    return r
                last = f"{r.status_code} {r.text}"
            except httpx.TransportError as exc:
                last = exc
            await asyncio.sleep(0.1)
    raise AssertionError(f"{url} did not answer 200 within {timeout}s: {last}")


@dataclass
class Worker:
    name: str
    port: int
    log: Path
    proc: subprocess.Popen[bytes]

    def died(self) -> str | None:
        if self.proc.poll() is None:
            return None
        return f"worker {self.name} exited with {self.proc.returncode}\n{_tail(self.log)}"


@dataclass
class Deployment:
    """Workers and nginx; every helper goes through nginx."""

    dir: Path
    database_url: str  # as given to the workers
    redis_prefix: str
    workers: dict[str, Worker]
    nginx_port: int
    nginx: subprocess.Popen[bytes] | None = None
    http: httpx.AsyncClient = field(init=False)
    clients: list[Client] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.http = httpx.AsyncClient(base_url=self.url, timeout=10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.nginx_port}"

    async def add_users(self, *users: str, admins: tuple[str, ...] = ()) -> None:
        """Straight into the shared database, as `adduser` would (without its slow hash)."""
        engine = make_engine(parse_database_url(self.database_url))
        rows = [
            {
                "user": user,
                "name": user.title(),
                "rol": "admin" if user in admins else "user",
                "password": password_hash(),
            }
            for user in (*users, *admins)
        ]
        try:
            async with engine.begin() as conn:
                await conn.execute(insert(User), rows)
        finally:
            await engine.dispose()

    async def login(self, user: str) -> str:
        r = await self.http.post("/api/login", json={"username": user, "password": PASSWORD})
        assert r.status_code == 200, r.text
        self.http.cookies.clear()
        return str(r.json()["token"])

    async def connect(
        self, token: str, transports: list[str] | None = None, **kwargs: Any
    ) -> Client:
        client = Client()
        self.clients.append(client)
        await client.sio.connect(
            self.url,
            auth={"token": token},
            transports=transports or ["websocket"],
            wait_timeout=5,
            **kwargs,
        )
        return client

    async def connect_on(
        self, worker: str, token: str, transports: list[str] | None = None
    ) -> Client:
        """Connect through nginx until the session lands on `worker` (nginx picks)."""
        for _ in range(12):
            client = await self.connect(token, transports)
            if worker_of(client) == worker:
                return client
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(client.sio.disconnect(), 2)
            self.clients.remove(client)
            await _close_http(client)
        raise AssertionError(f"nginx never sent a new session to worker {worker}")

    async def close_clients(self) -> None:
        for client in self.clients:
            if client.sio.connected:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(client.sio.disconnect(), 2)
            await _close_http(client)
        self.clients.clear()


async def _close_http(client: Client) -> None:
    """python-engineio leaves its aiohttp session open after a refused or dropped transport."""
    http = client.sio.eio.http
    if http is not None and not http.closed:
        await http.close()


def assert_migrated_once_without_errors(d: Deployment) -> None:
    """The workers started together on a fresh database: one ran the migrations, the others
    waited for its lock and found the schema current; none logged a traceback."""
    logs = {name: w.log.read_text(errors="replace") for name, w in d.workers.items()}
    upgraded = [name for name, text in logs.items() if "Running upgrade" in text]
    assert len(upgraded) == 1, upgraded
    for name, text in logs.items():
        assert "Traceback" not in text, f"worker {name}:\n{text}"


def worker_of(client: Client) -> str:
    """The WORKER_ID that prefixes the client's Engine.IO session id."""
    sid = client.sio.eio.sid
    assert sid and "." in sid, sid
    return str(sid.split(".", 1)[0])


DeploymentFactory = Callable[..., Awaitable[Deployment]]


def _start_worker(
    name: str,
    directory: Path,
    database_url: str,
    redis_url: str,
    prefix: str,
    secret: str,
    **settings: str,
) -> Worker:
    port = free_port()
    log = directory / f"worker-{name}.log"
    with log.open("wb") as out:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(
            [sys.executable, SERVER],
            cwd=directory,
            env=worker_env(
                WORKER_ID=name,
                PORT=str(port),
                DATABASE_URL=database_url,
                REDIS_URL=redis_url,
                REDIS_PREFIX=prefix,
                JWT_SECRET=secret,
                **settings,
            ),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return Worker(name, port, log, proc)


def _start_nginx(
    directory: Path, listen_port: int, workers: list[Worker]
) -> subprocess.Popen[bytes]:
    binary = nginx_binary()
    upstreams = [arg for w in workers for arg in ("--upstream", f"{w.name}=127.0.0.1:{w.port}")]
    generated = subprocess.run(
        [
            sys.executable,
            SERVER,
            "nginx-config",
            "--listen",
            f"127.0.0.1:{listen_port}",
            *upstreams,
            "--prefix",
            str(directory),
        ],
        capture_output=True,
        check=False,
        env=worker_env(),
    )
    assert generated.returncode == 0, generated.stderr.decode()
    conf = directory / "nginx.conf"
    conf.write_bytes(generated.stdout)
    # As root, nginx's own workers would run as `nobody`, who cannot enter pytest's 0700
    # temp directories (for proxy temp files); as anyone else `user` is ignored with a warning.
    globals_ = "daemon off; user root;" if os.geteuid() == 0 else "daemon off;"
    with (directory / "nginx-stderr.log").open("wb") as out:
        return subprocess.Popen(
            [binary, "-c", str(conf), "-e", str(directory / "nginx-error.log"), "-g", globals_],
            cwd=directory,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _stop(proc: subprocess.Popen[bytes], sig: int, timeout: float) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
async def deploy(tmp_path: Path) -> AsyncIterator[DeploymentFactory]:
    """`await deploy("a", "b", database="mariadb")`: workers and nginx, stopped at teardown."""
    redis_url = service_url("redis")
    nginx_binary()
    made: list[Deployment] = []

    async def start(*names: str, database: str = "mariadb", **settings: str) -> Deployment:
        url = plain_url(await _fresh_server_database(database, service_url(database)))
        directory = tmp_path / f"deployment{len(made)}"
        directory.mkdir()
        prefix = f"nginxtest{secrets.token_hex(4)}"
        secret = secrets.token_urlsafe(40)
        # All at once: several workers migrating one fresh database concurrently.
        workers = {
            n: _start_worker(n, directory, url, redis_url, prefix, secret, **settings)
            for n in names
        }
        deployment = Deployment(directory, url, prefix, workers, free_port())
        made.append(deployment)
        await asyncio.gather(
            *(_wait_http(f"http://127.0.0.1:{w.port}/healthz", w.died) for w in workers.values())
        )
        deployment.nginx = _start_nginx(directory, deployment.nginx_port, list(workers.values()))
        nginx = deployment.nginx

        def nginx_died() -> str | None:
            if nginx.poll() is None:
                return None
            return (
                f"nginx exited with {nginx.returncode}\n"
                f"{_tail(directory / 'nginx-stderr.log')}\n{_tail(directory / 'nginx-error.log')}"
            )

        health = await _wait_http(f"{deployment.url}/healthz", nginx_died, timeout=10)
        assert health.json() == {"status": "ok", "checks": {"database": "ok", "broker": "ok"}}
        return deployment

    yield start

    for deployment in made:
        await deployment.close_clients()
        await deployment.http.aclose()
        if deployment.nginx is not None:
            _stop(deployment.nginx, signal.SIGTERM, 10)  # fast shutdown: drops open sockets
        for worker in deployment.workers.values():
            _stop(worker.proc, signal.SIGKILL, 10)
        await forget_redis_prefix(redis_url, deployment.redis_prefix)


async def test_polling_and_websocket_clients_on_two_workers_exchange_messages(
    deploy: DeploymentFactory,
) -> None:
    d = await deploy("a", "b")
    await d.add_users("ana", "bob", admins=("boss",))
    boss = await d.connect_on("b", await d.login("boss"))
    ana = await d.connect_on("a", await d.login("ana"), transports=["polling"])
    bob = await d.connect(await d.login("bob"))  # websocket, wherever nginx sends it
    assert ana.sio.transport() == "polling" and bob.sio.transport() == "websocket"
    assert {worker_of(c) for c in (boss, ana, bob)} == {"a", "b"}

    sent = await ana.call("mensaje_privado", {"text": "over polling, from a"})
    assert sent["ok"], sent
    assert (await boss.wait_for("mensaje_privado"))[0] == sent["message"]
    sent_ws = await bob.call("mensaje_privado", {"text": "over websocket"})
    assert sent_ws["ok"], sent_ws
    assert (await boss.wait_for("mensaje_privado", 2))[1] == sent_ws["message"]

    reply = await boss.call("mensaje_privado", {"to": "ana", "text": "from b to a"})
    assert reply["ok"], reply
    assert (await ana.wait_for("mensaje_privado"))[0] == reply["message"]
    assert bob.got("mensaje_privado") == []
    assert_migrated_once_without_errors(d)


async def test_polling_clients_from_one_address_spread_over_workers_and_keep_working(
    deploy: DeploymentFactory,
) -> None:
    d = await deploy("a", "b")
    users = [f"user{i}" for i in range(10)]
    await d.add_users(*users, admins=("boss", "chief"))
    boss = await d.connect_on("a", await d.login("boss"))
    chief = await d.connect_on("b", await d.login("chief"))
    tokens = await asyncio.gather(*(d.login(u) for u in users))
    clients = [await d.connect(t, transports=["polling"]) for t in tokens]
    placed = [worker_of(c) for c in clients]
    assert set(placed) == {"a", "b"}, placed  # one client address, both workers

    # Every request of a polling session must reach the worker that holds it, or the
    # session is unknown there ("Invalid session") and the client is dropped.
    acks = await asyncio.gather(
        *(
            c.call("mensaje_privado", {"text": f"hello from {u}"})
            for c, u in zip(clients, users, strict=True)
        )
    )
    assert all(a["ok"] for a in acks), acks
    ids = {a["message"]["id"] for a in acks}
    for admin in (boss, chief):
        got = await admin.wait_for("mensaje_privado", len(users), timeout=10)
        assert {m["id"] for m in got} == ids
    replies = await asyncio.gather(
        *(boss.call("mensaje_privado", {"to": u, "text": f"hi {u}"}) for u in users)
    )
    assert all(r["ok"] for r in replies), replies
    for client, reply in zip(clients, replies, strict=True):
        assert (await client.wait_for("mensaje_privado"))[0] == reply["message"]
        assert client.sio.connected and client.sio.transport() == "polling"


async def test_bursts_over_polling_through_nginx_are_acked_in_order(
    deploy: DeploymentFactory,
) -> None:
    """The official client's 20, 100 and 500 emits in one tick, each burst one POST through
    nginx to the worker holding the session."""
    from tests.integration.test_js_client import assert_burst_stored_in_order, run_burst

    d = await deploy("a", "b", MSG_RATE="0")
    counts = (20, 100, 500)
    await d.add_users(*(f"burster{n}" for n in counts))
    for count in counts:
        seen = await run_burst(d.url, await d.login(f"burster{count}"), "polling", count)
        assert_burst_stored_in_order(seen, count)


async def refused(d: Deployment, token: str, origin: str, transports: list[str]) -> bool:
    """True when a handshake with this Origin is refused before its token is looked at."""
    client = Client()
    d.clients.append(client)
    try:
        await client.sio.connect(
            d.url,
            auth={"token": token},
            headers={"Origin": origin},
            transports=transports,
            wait_timeout=5,
        )
    except socketio.exceptions.ConnectionError:
        assert client.refusal is None or "Token" not in client.refusal, client.refusal
        return True
    return False


async def test_websockets_and_upgrades_work_through_nginx_and_foreign_origins_are_refused(
    deploy: DeploymentFactory,
) -> None:
    d = await deploy("a", "b")
    await d.add_users("ana", admins=("boss",))
    boss = await d.connect(await d.login("boss"))
    token = await d.login("ana")
    ana = await d.connect(token, transports=["websocket"])  # Upgrade/Connection passed on
    assert ana.sio.transport() == "websocket"
    # polling first, then the upgrade request (with its sid) must reach the same worker
    upgraded = await d.connect(token, transports=["polling", "websocket"])
    await upgraded.upgraded()
    sent = await upgraded.call("mensaje_privado", {"text": "through the upgrade"})
    assert sent["ok"], sent
    assert (await boss.wait_for("mensaje_privado"))[0] == sent["message"]
    assert (await ana.wait_for("mensaje_privado"))[0] == sent["message"]

    for transports in (["websocket"], ["polling"]):
        assert await refused(d, token, "http://evil.example", transports)
        # the worker's own address is not the site's origin once it is behind nginx
        assert await refused(d, token, f"http://127.0.0.1:{d.workers['a'].port}", transports)


async def test_origin_check_behind_nginx_accepts_the_sites_own_origin(
    deploy: DeploymentFactory,
) -> None:
    d = await deploy("a", "b")
    await d.add_users("ana", admins=("boss",))
    boss = await d.connect(await d.login("boss"))
    token = await d.login("ana")
    own = {"Origin": d.url}  # the site as the browser sees it: nginx's host and port
    ana = await d.connect(token, transports=["websocket"], headers=own)
    assert ana.sio.transport() == "websocket"
    polling = await d.connect(token, transports=["polling"], headers=own)
    sent = await polling.call("mensaje_privado", {"text": "from the site itself"})
    assert sent["ok"], sent
    assert (await boss.wait_for("mensaje_privado"))[0] == sent["message"]
    assert (await ana.wait_for("mensaje_privado"))[0] == sent["message"]


@pytest.mark.postgresql
async def test_announcement_from_one_of_three_workers_reaches_all_on_postgresql(
    deploy: DeploymentFactory,
) -> None:
    d = await deploy("a", "b", "c", database="postgresql")
    await d.add_users("ana", "bob", admins=("boss",))
    boss = await d.connect_on("a", await d.login("boss"))
    ana = await d.connect_on("b", await d.login("ana"), transports=["polling"])
    bob = await d.connect_on("c", await d.login("bob"))
    ack = await boss.call("announcement", {"text": "all hands"})
    assert ack["ok"], ack
    for client in (boss, ana, bob):
        assert (await client.wait_for("announcement"))[0] == ack["announcement"]
    # and ordinary messages cross all three on PostgreSQL
    sent = await ana.call("mensaje_privado", {"text": "from b"})
    assert sent["ok"], sent
    assert (await boss.wait_for("mensaje_privado"))[0] == sent["message"]
    assert_migrated_once_without_errors(d)


async def test_sigkilled_worker_users_go_offline_and_clients_reconnect_elsewhere(
    deploy: DeploymentFactory,
) -> None:
    d = await deploy("a", "b")
    await d.add_users("ana", admins=("boss",))
    boss = await d.connect_on("b", await d.login("boss"))
    token = await d.login("ana")
    ana = await d.connect_on("a", token)

    def of_ana() -> list[Any]:
        return [p for p in boss.got("presence") if p["user"] == "ana"]

    for _ in range(50):
        if of_ana():
            break
        await asyncio.sleep(0.1)
    assert of_ana() == [{"user": "ana", "online": True}]
    ana.sio.reconnection = True  # as a browser would, through nginx again
    ana.sio.reconnection_delay = 0.2
    ana.sio.reconnection_delay_max = 0.5
    reconnected = asyncio.Event()
    ana.sio.on("connect", reconnected.set)

    d.workers["a"].proc.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    d.workers["a"].proc.wait()

    # nginx marks the dead worker failed; new sessions go to the survivor
    await asyncio.wait_for(reconnected.wait(), 15)
    assert worker_of(ana) == "b"
    sync = await ana.call("sync", {"after": 0})
    assert sync["ok"], sync
    sent = await ana.call("mensaje_privado", {"text": "back, on b"})
    assert sent["ok"], sent
    assert (await boss.wait_for("mensaje_privado"))[0] == sent["message"]
    await ana.sio.disconnect()

    # its sockets on the dead worker are forgotten: with the one on b gone too, ana is offline
    while len(of_ana()) < 2 and time.monotonic() - killed < SIGKILL_BOUND:
        await asyncio.sleep(0.1)
    assert of_ana() == [{"user": "ana", "online": True}, {"user": "ana", "online": False}]
    assert time.monotonic() - killed < SIGKILL_BOUND


async def test_logout_through_nginx_disconnects_the_tokens_sockets_on_every_worker(
    deploy: DeploymentFactory,
) -> None:
    d = await deploy("a", "b")
    await d.add_users("ana")
    token = await d.login("ana")
    on_a = await d.connect_on("a", token)
    on_b = await d.connect_on("b", token, transports=["polling"])
    other = await d.connect(await d.login("ana"))  # another token of the same user stays
    started = time.monotonic()
    r = await d.http.post(
        "/api/logout",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    assert r.status_code == 204, r.text
    await asyncio.wait_for(asyncio.gather(on_a.disconnected.wait(), on_b.disconnected.wait()), 2)
    assert time.monotonic() - started < 2
    assert other.sio.connected
    refused = Client()
    d.clients.append(refused)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await refused.sio.connect(d.url, auth={"token": token}, transports=["websocket"])
    assert refused.refusal == "Token inválido"


# -- the README's production steps, as written ---------------------------------------------


def readme_block(heading: str) -> str:
    """The first ```sh block after `heading` in README.md."""
    readme = (ROOT / "README.md").read_text()
    start = readme.index(heading)
    match = re.search(r"```sh\n(.*?)```", readme[start:], re.S)
    assert match, f"no sh block after {heading!r}"
    return match.group(1)


def copy_working_tree(target: Path) -> None:
    """The project's files as they are now (tracked, and new ones not ignored), without .venv
    or anything else git ignores."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    present = b"\0".join(f for f in listed if f and (ROOT / f.decode()).exists())
    packed = subprocess.run(
        ["tar", "-cf", "-", "--null", "-T", "-"],
        cwd=ROOT,
        input=present,
        capture_output=True,
        check=True,
    ).stdout
    subprocess.run(["tar", "-xf", "-"], cwd=target, input=packed, check=True)


def _gone(pid: int) -> bool:
    """No such process, or only a zombie (not our child: init reaps it, or nobody does)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return True
    return state in ("Z", "X")


def _wait_gone(pids: list[int], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(_gone(p) for p in pids):
            return True
        time.sleep(0.05)
    return False


def _group_members(pgid: int) -> list[int]:
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
                members.append(int(stat.parent.name))
    return members


async def test_readme_production_steps_run_two_workers_behind_nginx(tmp_path: Path) -> None:
    """The one-machine commands of README.md, run as written from a copy of the working tree;
    only the settings' values and the ports are this test's own."""
    binary = nginx_binary()
    redis_url = service_url("redis")
    database_url = plain_url(await _fresh_server_database("mariadb", service_url("mariadb")))
    tree = tmp_path / "supportchat"
    tree.mkdir()
    copy_working_tree(tree)
    (tree / ".venv").symlink_to(ROOT / ".venv")  # made once before, as the README says
    secret = secrets.token_urlsafe(40)
    prefix = f"nginxtest{secrets.token_hex(4)}"
    ports = {"3001": free_port(), "3002": free_port(), "8080": free_port()}

    script = readme_block("### One machine")
    assert "WORKER_ID=a PORT=3001" in script and "nginx -c" in script, script
    for documented, mine in ports.items():
        script = re.sub(rf"\b{documented}\b", str(mine), script)
    settings = {"DATABASE_URL": database_url, "REDIS_URL": redis_url, "JWT_SECRET": secret}
    for name, value in settings.items():
        script, n = re.subn(rf"^export {name}=.*$", f"export {name}='{value}'", script, flags=re.M)
        assert n == 1, f"the README sets {name} once"
    script = f"export REDIS_PREFIX={prefix}\n{script}"
    path = f"{os.environ.get('PATH', '/usr/bin:/bin')}:{Path(binary).parent}"

    output = tmp_path / "steps.log"
    with output.open("wb") as out:
        shell = subprocess.Popen(
            ["bash", "-eu", "-c", script],
            cwd=tree,
            env=worker_env(PATH=path),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its background workers stay in this process group
        )
    run = tree / "run"
    try:
        assert shell.wait(60) == 0, output.read_text() + _tail(run / "nginx-error.log")
        for port in (ports["3001"], ports["3002"]):
            await _wait_http(f"http://127.0.0.1:{port}/healthz", lambda: None)
        await _wait_http(f"http://127.0.0.1:{ports['8080']}/healthz", lambda: None, timeout=15)
        made = subprocess.run(  # "The first admin", with the same settings
            [".venv/bin/python", "server.py", "adduser", "boss", "--name", "Boss", "--admin"],
            cwd=tree,
            env=worker_env(PATH=path, REDIS_PREFIX=prefix, **settings),
            input=f"{PASSWORD}\n".encode(),
            capture_output=True,
            timeout=60,
            check=False,
        )
        assert made.returncode == 0, made.stderr.decode()

        d = Deployment(tree, database_url, prefix, {}, ports["8080"])
        try:
            r = await d.http.post(
                "/api/register", json={"username": "ana", "name": "Ana", "password": PASSWORD}
            )
            assert r.status_code == 201, r.text
            boss = await d.connect(await d.login("boss"))
            token = await d.login("ana")
            ana = await d.connect(token, transports=["polling"])
            deadline = time.monotonic() + 10  # nginx rests a worker it found down for 5 s
            while worker_of(ana) == worker_of(boss) and time.monotonic() < deadline:
                await ana.sio.disconnect()
                d.clients.remove(ana)
                await asyncio.sleep(0.2)
                ana = await d.connect(token, transports=["polling"])
            assert {worker_of(boss), worker_of(ana)} == {"a", "b"}
            sent = await ana.call("mensaje_privado", {"text": "hello, support"})
            assert sent["ok"], sent
            assert (await boss.wait_for("mensaje_privado"))[0] == sent["message"]
        finally:
            await d.close_clients()
            await d.http.aclose()
    finally:
        if shell.poll() is None:
            shell.kill()
        shell.wait()
        # nginx daemonized itself (its own session): stop it as the README says
        nginx_pid = int((run / "nginx.pid").read_text()) if (run / "nginx.pid").exists() else 0
        if nginx_pid:
            subprocess.run(
                [binary, "-c", str(run / "nginx.conf"), "-s", "stop"],
                capture_output=True,
                check=False,
                timeout=10,
            )
            if not _wait_gone([nginx_pid], 10):
                os.kill(nginx_pid, signal.SIGKILL)
        workers = _group_members(shell.pid)
        if workers:
            os.killpg(shell.pid, signal.SIGKILL)
            _wait_gone(workers, 10)
        await forget_redis_prefix(redis_url, prefix)
