"""One command: start the server (and the baseline), run the load, print the figures, stop all.

    .venv/bin/python bench/run.py [--db sqlite|mariadb] [--workers N] [--windows 1,4]
                                  [--rates 500,1000 --cap 64 --settle 30]
                                  [--rounds 3] [--targets server,baseline,node] [--idle 2000,5000]
                                  [--server-dir NAME=PATH] (target server@NAME; server:N = N
                                  processes on Redis)

For each round and each load point (a window size W of the closed loop, `--windows`, or a
rate R of the open loop, `--rates`: R user messages a second in total on a fixed schedule,
whatever the acks) it runs the real server (`server.py`) and the baseline
(`bench/baseline_server.py`) one after the other on the same database, in alternating order
from round to round, each under `bench/load.py messages`; then the idle-socket runs against
the real server. It prints each run's table, then medians per target and the ratio
server/baseline. Every JSON line is also appended to `--out`. The database is fresh: SQLite
in a temporary directory, or with `--db mariadb` a new database on 127.0.0.1 (root, no
password) that is dropped at the end. `--workers N` starts N server processes on Redis
(redis://127.0.0.1:6379/0, a unique REDIS_PREFIX); clients connect to them round-robin.

Target `node` is the Node.js service's hot path (`bench/node/server.js`: Express, socket.io,
mysql2), the same subset as the baseline, on the server's database with the same tokens. It
needs `--db mariadb`, Node 20 and its packages, installed once with
`(cd bench/node && npm ci)`; it runs as 1 process only (no Redis adapter).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PY = sys.executable
NODE_DIR = BENCH / "node"
KINDS = ("server", "baseline", "node")
ADMIN_PASSWORD = "bench-password-0123456789"  # noqa: S105 - the same as load.py's


def log(text: str) -> None:
    sys.stderr.write(f"[run {time.strftime('%H:%M:%S')}] {text}\n")
    sys.stderr.flush()


def wait_http(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:  # noqa: S310 - our own http URL
                if r.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not come up")
        time.sleep(0.2)


class Servers:
    """N processes of the server or of the baseline, on consecutive ports."""

    def __init__(
        self,
        target: str,
        env: dict[str, str],
        port: int,
        workers: int,
        logdir: Path,
        dirs: dict[str, Path] | None = None,
    ):
        """`target`: "server", "baseline", "node" (bench/node/server.js, 1 process only),
        "server@NAME" (server.py of the checkout dirs[NAME]), optionally with ":N" for N
        processes on Redis (overrides `workers`)."""
        self.procs: list[subprocess.Popen[bytes]] = []
        self.urls: list[str] = []
        name, _, count = target.partition(":")
        workers = int(count) if count else workers
        kind, _, checkout = name.partition("@")
        cwd = (dirs or {})[checkout] if checkout else ROOT
        if kind == "server":
            command = [PY, "server.py"]
        elif kind == "node":
            if workers > 1:
                raise ValueError("target node runs as 1 process only (no Redis adapter)")
            command = ["node", str(NODE_DIR / "server.js")]
        else:
            command = [PY, str(BENCH / "baseline_server.py")]
        for i in range(workers):
            p = port + i
            wenv = dict(env, PORT=str(p))
            if workers > 1:
                wenv["WORKER_ID"] = f"w{i}"
                wenv.setdefault("REDIS_URL", "redis://127.0.0.1:6379/0")
            errlog = (logdir / f"{target.replace('/', '_')}-{p}.log").open("ab")
            self.procs.append(
                subprocess.Popen(  # noqa: S603 - our own interpreter (or node) and script
                    [*command, "--port", str(p)], cwd=cwd, env=wenv, stderr=errlog
                )
            )
            self.urls.append(f"http://127.0.0.1:{p}")
        for url in self.urls:
            wait_http(f"{url}/healthz")

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def load(mode: str, urls: list[str], pids: list[int], tokens: Path, extra: list[str]) -> Any:
    cmd = [PY, str(BENCH / "load.py"), mode, "--url", ",".join(urls), "--tokens", str(tokens)]
    for pid in pids:
        cmd += ["--server-pid", str(pid)]
    proc = subprocess.run(  # noqa: S603 - our own interpreter and script
        cmd + extra, cwd=ROOT, stdout=subprocess.PIPE, text=True, check=False
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0:
        log(f"load.py {mode} exited {proc.returncode}")
    return json.loads(lines[-1]) if lines else None


def database_pids(db: str) -> list[int]:
    """The database server's processes on this machine (MariaDB's mariadbd), whose CPU is
    counted per message too; none for SQLite (it runs inside the server)."""
    if db != "mariadb":
        return []
    pids = []
    for comm in Path("/proc").glob("[0-9]*/comm"):
        try:
            if comm.read_text().strip() == "mariadbd":
                pids.append(int(comm.parent.name))
        except OSError:
            continue  # gone meanwhile
    return pids


def median(rows: list[dict[str, Any]], path: str) -> float | None:
    values = []
    for r in rows:
        v: Any = r
        for key in path.split("."):
            v = v.get(key) if isinstance(v, dict) else None
        if isinstance(v, int | float):
            values.append(v)
    return round(statistics.median(values), 2) if values else None


OPEN_FIGURES = [
    ("offered user msg/s", "offered_per_s"),
    ("achieved user msg/s", "achieved_per_s"),
    ("not sent (cap), share", "not_sent_share"),
    ("client send lag p99 ms", "send_lag_ms.p99"),
]

FIGURES = [
    ("acked msg/s", "acked_per_s"),
    ("deliveries/s", "deliveries_per_s"),
    ("ack p50 ms", "ack_latency_ms.p50"),
    ("ack p95 ms", "ack_latency_ms.p95"),
    ("ack p99 ms", "ack_latency_ms.p99"),
    ("user ack p50 ms", "user_ack_latency_ms.p50"),
    ("user ack p95 ms", "user_ack_latency_ms.p95"),
    ("user ack p99 ms", "user_ack_latency_ms.p99"),
    ("delivery p50 ms", "delivery_latency_ms.p50"),
    ("delivery p95 ms", "delivery_latency_ms.p95"),
    ("delivery p99 ms", "delivery_latency_ms.p99"),
    ("server CPU ms/msg", "server_cpu_ms_per_msg"),
    ("server CPU %", "server_cpu_pct"),
    ("database CPU ms/msg", "db_cpu_ms_per_msg"),
    ("server + database CPU ms/msg", "total_cpu_ms_per_msg"),
    ("client CPU ms/msg", "client_cpu_ms_per_msg"),
    ("server RSS MB", "server_rss_mb"),
]


def point_of(r: dict[str, Any]) -> tuple[int, float]:
    """The load point of a result: (0, W) closed loop, (1, R) open loop."""
    return (1, r["rate"]) if r.get("rate") else (0, r["window"])


def point_label(point: tuple[int, float], cap: Any = None) -> str:
    kind, value = point
    if kind == 0:
        return f"W={value} (closed loop)"
    return f"R={value:g} user msg/s (open loop, cap {cap} in flight per sender)"


def summary(results: list[dict[str, Any]], db: str, workers: int) -> str:
    out = []
    for point in sorted({point_of(r) for r in results}):
        at_point = [r for r in results if point_of(r) == point]
        rows = {t: [r for r in at_point if r["label"] == t] for t in {r["label"] for r in at_point}}
        targets = sorted(rows, key=lambda t: t != "server")
        out.append(
            f"\n{db}, {workers} process(es), {point_label(point, at_point[0].get('cap'))}: "
            "medians of " + ", ".join(f"{len(rows[t])} {t}" for t in targets)
        )
        # One ratio column per other target: the first target's median over that one's.
        ratios = [f"{targets[0]}/{t}" for t in targets[1:]]
        out.append(f"| figure | {' | '.join(targets + ratios)} |")
        out.append("|" + " --- |" * (len(targets) + len(ratios) + 1))
        for name, path in (OPEN_FIGURES if point[0] else []) + FIGURES:
            meds = [median(rows[t], path) for t in targets]
            cells = [str(m) for m in meds]
            for m in meds[1:]:
                cells.append(f"{meds[0] / m:.2f}" if meds[0] is not None and m else "")
            out.append(f"| {name} | {' | '.join(cells)} |")
        bad = sum(r["acked_not_delivered"] + r["duplicates_delivered"] for r in at_point)
        late = sum(r.get("delivered_late", 0) for r in at_point)
        out.append(
            f"correctness (acked-not-delivered + duplicates, all runs): {bad}; "
            f"delivered late (after the drain): {late}"
        )
        for t in targets:
            per_run = ", ".join(
                f"{r.get('achieved_per_s', r['acked_per_s'])}/{r['server_cpu_ms_per_msg']}"
                f"/{r['ack_latency_ms']['p99']}" + ("" if r["acked_not_delivered"] == 0 else "!")
                for r in rows[t]
            )
            out.append(f"per run, {t} (msg/s / CPU ms/msg / ack p99 ms): {per_run}")
    return "\n".join(out)


def checkout_of(target: str) -> str:
    """`server@NAME` for a target of another checkout, else `server` (the baseline and node
    too: they use the server's database and tokens)."""
    name = target.partition(":")[0]
    return name if name.startswith("server@") else "server"


def target_problem(targets: list[str], db: str, workers: int, dirs: dict[str, Path]) -> str:
    """Why these targets cannot run (a message for the user), or "" when they can."""
    for target in targets:
        name, _, count = target.partition(":")
        kind, _, checkout = name.partition("@")
        if kind not in KINDS or (checkout and kind != "server"):
            return f"unknown target {target!r}: server, baseline, node, server@NAME, with :N"
        if count and (not count.isdigit() or int(count) < 1):
            return f"target {target!r}: the process count must be a positive integer"
        if checkout and checkout not in dirs:
            return f"target {target!r}: give its checkout with --server-dir {checkout}=PATH"
        if kind != "node":
            continue
        if (int(count) if count else workers) > 1:
            return (
                f"target {target!r}: the Node target runs as 1 process only (it has no Redis "
                "adapter); use `node` or `node:1`, and no --workers above 1 without `:1`"
            )
        if db != "mariadb":
            return "target node needs MariaDB (mysql2): run with --db mariadb"
        if shutil.which("node") is None:
            return "target node: no `node` on PATH (Node.js 20 is needed)"
        if not (NODE_DIR / "node_modules").is_dir():
            return (
                "target node: its packages are not installed; run once:\n"
                f"    (cd {NODE_DIR.relative_to(ROOT)} && npm ci)"
            )
    return ""


def create_mariadb(name: str) -> None:
    import pymysql  # type: ignore[import-untyped]

    conn = pymysql.connect(host="127.0.0.1", user="root")
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    conn.close()


def drop_mariadb(name: str) -> None:
    import pymysql

    conn = pymysql.connect(host="127.0.0.1", user="root")
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
    conn.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=["sqlite", "mariadb"], default="sqlite")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--port", type=int, default=3900)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--admins", type=int, default=5)
    parser.add_argument(
        "--windows", default="", help="closed loop: comma-separated window sizes (default 1)"
    )
    parser.add_argument(
        "--rates",
        default="",
        help="open loop: comma-separated total user msg/s, e.g. 500,1000 (after the windows)",
    )
    parser.add_argument("--cap", type=int, default=64, help="open loop: in flight per sender")
    parser.add_argument("--arrival", choices=["poisson", "uniform"], default="poisson")
    parser.add_argument("--drain", type=float, default=2, help="seconds left for deliveries")
    parser.add_argument(
        "--settle", type=float, default=0, help="then up to this long for late deliveries"
    )
    parser.add_argument("--reply", type=float, default=0.2)
    parser.add_argument("--duration", type=float, default=30)
    parser.add_argument("--warmup", type=float, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--targets",
        default="server,baseline",
        help="comma-separated: server, baseline, node (bench/node/server.js, 1 process, "
        "--db mariadb), server@NAME (see --server-dir); :N for N processes on Redis",
    )
    parser.add_argument("--client", choices=["raw", "socketio"], default="raw")
    parser.add_argument("--idle", default="", help="idle socket counts, e.g. 2000,5000")
    parser.add_argument("--profile", default="", help="py-spy SVG of the first server run")
    parser.add_argument(
        "--profile-window", type=int, default=0, help="profile the first server run of this W"
    )
    parser.add_argument(
        "--profile-rate", type=float, default=0, help="profile the first server run of this R"
    )
    parser.add_argument(
        "--server-dir",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="another checkout whose server.py runs as target server@NAME (same venv)",
    )
    parser.add_argument("--out", default=str(BENCH / "results.jsonl"))
    args = parser.parse_args()
    if not args.windows and not args.rates:
        args.windows = "1"
    points = [("--window", w) for w in args.windows.split(",") if w] + [
        ("--rate", r) for r in args.rates.split(",") if r
    ]
    dirs = {}
    for item in args.server_dir:
        name, _, path = item.partition("=")
        dirs[name] = Path(path).resolve()
    problem = target_problem(args.targets.split(","), args.db, args.workers, dirs)
    if problem:
        sys.stderr.write(f"run.py: {problem}\n")
        return 2

    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # inherited by the servers
    tmp = Path(tempfile.mkdtemp(prefix="supportchat-bench-"))
    dbname = f"bench_{secrets.token_hex(4)}"
    env = dict(
        os.environ,
        JWT_SECRET=secrets.token_urlsafe(48),
        MSG_RATE="0",
        LOG_LEVEL="WARNING",
        LOGIN_FAILURES_PER_MINUTE="1000000",
        REGISTRATIONS_PER_HOUR="0",  # `load.py setup` registers every user from one address
        PYTHONUNBUFFERED="1",
    )
    env["REDIS_PREFIX"] = f"bench{secrets.token_hex(4)}"  # used by targets with >1 process
    if args.workers > 1:
        env["REDIS_URL"] = "redis://127.0.0.1:6379/0"
    sizes = ["--users", str(args.users), "--admins", str(args.admins)]
    results: list[dict[str, Any]] = []
    running: Servers | None = None
    # Each checkout gets a database of its own (their schemas may be of different releases),
    # with the same users and admins; the baseline shares the server's.
    checkouts = sorted({checkout_of(t) for t in args.targets.split(",")} | {"server"})
    prepared: dict[str, tuple[dict[str, str], Path]] = {}
    created: list[str] = []
    log(f"workdir {tmp}, database {args.db}, {args.workers} process(es)")
    try:
        for key in checkouts:
            env_k = dict(env)
            if args.db == "sqlite":
                env_k["DATABASE_URL"] = f"sqlite:///{tmp}/bench-{key}.db"
            else:
                name_k = f"{dbname}_{len(created)}"
                create_mariadb(name_k)
                created.append(name_k)
                env_k["DATABASE_URL"] = f"mysql://root@127.0.0.1/{name_k}"
            cwd = ROOT if key == "server" else dirs[key.partition("@")[2]]
            for i in range(args.admins):
                subprocess.run(  # noqa: S603 - our own interpreter and script
                    [PY, "server.py", "adduser", f"bchadm{i}", "--name", f"Admin {i}", "--admin"],
                    cwd=cwd,
                    env=env_k,
                    input=ADMIN_PASSWORD + "\n",
                    text=True,
                    check=True,
                    stderr=subprocess.DEVNULL,
                )
            tokens_k = tmp / f"tokens-{key}.json"
            running = Servers(key, env_k, args.port, args.workers, tmp, dirs)
            load("setup", running.urls, running.pids, tokens_k, sizes)
            running.stop()
            running = None
            prepared[key] = (env_k, tokens_k)
        env, tokens = prepared["server"]

        targets = args.targets.split(",")
        profiled = not args.profile
        with Path(args.out).open("a") as out:
            for rnd in range(args.rounds):
                order = targets if rnd % 2 == 0 else targets[::-1]
                for option, value in points:
                    window = int(value) if option == "--window" else 0
                    name = f"W={value}" if window else f"R={value} msg/s"
                    for target in order:
                        log(f"round {rnd + 1}/{args.rounds}, {name}: {target}")
                        env_t, tokens_t = prepared[checkout_of(target)]
                        running = Servers(target, env_t, args.port, args.workers, tmp, dirs)
                        spy = None
                        if (
                            target.partition(":")[0].partition("@")[0] == "server"
                            and not profiled
                            and (
                                args.profile_window in (0, window) and not args.profile_rate
                                if window
                                else args.profile_rate in (0, float(value))
                                and not args.profile_window
                            )
                        ):
                            profiled = True
                            spy = subprocess.Popen(  # noqa: S603 - py-spy from the venv
                                [
                                    str(Path(PY).parent / "py-spy"),
                                    "record",
                                    "-o",
                                    args.profile,
                                    "--pid",
                                    str(running.pids[0]),
                                    "--duration",
                                    str(int(args.warmup + args.duration)),
                                    "--nonblocking",
                                ],
                                stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL,
                            )
                        extra = [
                            *sizes,
                            option,
                            value,
                            "--cap",
                            str(args.cap),
                            "--arrival",
                            args.arrival,
                            "--drain",
                            str(args.drain),
                            "--settle",
                            str(args.settle),
                            "--reply",
                            str(args.reply),
                            "--duration",
                            str(args.duration),
                            "--warmup",
                            str(args.warmup),
                            "--client",
                            args.client,
                            "--label",
                            target,
                        ]
                        for pid in database_pids(args.db):
                            extra += ["--db-pid", str(pid)]
                        r = load("messages", running.urls, running.pids, tokens_t, extra)
                        running_pids = running.pids
                        running.stop()
                        running = None
                        if spy is not None:
                            spy.wait(60)
                        if r is None:
                            continue
                        r.update(db=args.db, workers=len(running_pids), round=rnd + 1)
                        results.append(r)
                        out.write(json.dumps(r) + "\n")
                        out.flush()
                        offered = (
                            f"offered {r['offered_per_s']} achieved {r['achieved_per_s']} user"
                            f" msg/s, not sent (cap) {r['not_sent_cap']}, "
                            if r.get("rate")
                            else ""
                        )
                        log(
                            f"  {offered}{r['acked_per_s']} msg/s acked,"
                            f" {r['server_cpu_ms_per_msg']} ms CPU/msg,"
                            f" ack p50/p99 {r['ack_latency_ms']['p50']}/"
                            f"{r['ack_latency_ms']['p99']} ms, late {r.get('delivered_late', 0)},"
                            f" missing {r['acked_not_delivered']},"
                            f" dup {r['duplicates_delivered']}, errors {r['errors']}"
                        )
            idle_results = []
            for n in [int(x) for x in args.idle.split(",") if x]:
                log(f"idle: {n} sockets on the server")
                running = Servers("server", env, args.port, args.workers, tmp)
                r = load("idle", running.urls, running.pids, tokens, [*sizes, "--sockets", str(n)])
                running.stop()
                running = None
                if r is not None:
                    r.update(db=args.db, workers=args.workers)
                    idle_results.append(r)
                    out.write(json.dumps(r) + "\n")
    finally:
        if running is not None:
            running.stop()
        for name_k in created:
            with contextlib.suppress(Exception):
                drop_mariadb(name_k)
        shutil.rmtree(tmp, ignore_errors=True)

    if results:
        sys.stdout.write(summary(results, args.db, args.workers) + "\n")
    for r in idle_results:
        sys.stdout.write(
            f"idle {r['sockets']} sockets: {r['server_kb_per_socket']} KB server RSS/socket "
            f"({r['server_rss_before_mb']} -> {r['server_rss_after_mb']} MB), "
            f"{r['connects_per_s']} connects/s, idle server CPU {r['idle_server_cpu_pct']}%, "
            f"closed {r['closed']}\n"
        )
    failed = any(r["acked_not_delivered"] or r["duplicates_delivered"] for r in results)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
