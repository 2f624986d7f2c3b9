"""Uploads: throughput and server CPU per MB for files of 1 MB and 20 MB, stored in a directory
and on a local S3-compatible server (moto), and the server's memory during concurrent uploads
of 20 MB each. Drives the real server process through `POST /api/uploads` only.

    .venv/bin/python bench/uploads.py [--rounds 3] [--sizes 1,20] [--stores file,s3]
                                      [--concurrent 20] [--kind pdf|png]

Each round starts a server per store (SQLite in a temporary directory), uploads `--count` files
of each size one after the other (the time of the whole series and the server's CPU over it,
from /proc), then `--concurrent` uploads of 20 MB at once while sampling the server's RSS every
20 ms. Prints every run, then the medians, as JSON lines and a table."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
PASSWORD = "bench-password-0123456789"  # noqa: S105
MB = 1_000_000
TICK = os.sysconf("SC_CLK_TCK")


def log(text: str) -> None:
    sys.stderr.write(f"[uploads {time.strftime('%H:%M:%S')}] {text}\n")
    sys.stderr.flush()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def body_of(kind: str, size: int) -> tuple[bytes, str]:
    if kind == "png":
        import io

        from PIL import Image

        side = int((size / 3) ** 0.5)
        image = Image.frombytes("RGB", (side, side), os.urandom(side * side * 3))
        out = io.BytesIO()
        image.save(out, "PNG", compress_level=1)
        return out.getvalue(), "image/png"
    return b"%PDF-1.7\n" + os.urandom(size - 9), "application/pdf"


class Server:
    def __init__(self, work: Path, store: str, s3: str | None) -> None:
        self.port = free_port()
        env = {
            **os.environ,
            "DATABASE_URL": f"sqlite:///{work / 'chat.db'}",
            "JWT_SECRET": secrets.token_urlsafe(48),
            "LOG_LEVEL": "WARNING",
            "UPLOAD_MAX_BYTES": "25MiB",
            "UPLOADS_PER_MINUTE": "0",
            "REGISTRATIONS_PER_HOUR": "0",
        }
        if store == "s3" and s3 is not None:
            env.update(
                STORAGE_URL="s3://bench/uploads",
                S3_ENDPOINT_URL=s3,
                AWS_ACCESS_KEY_ID="bench-key",
                AWS_SECRET_ACCESS_KEY="bench-secret-value",  # noqa: S106
                AWS_REGION="us-east-1",
            )
        else:
            env["STORAGE_URL"] = "file:uploads"
        self.log = (work / f"server-{store}.log").open("wb")
        self.proc = subprocess.Popen(  # noqa: S603 - our own interpreter and script
            [PY, str(ROOT / "server.py"), "--port", str(self.port)],
            cwd=work,
            env=env,
            stdout=self.log,
            stderr=self.log,
        )
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=2) as r:  # noqa: S310
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("the server did not come up")
            time.sleep(0.2)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


async def token_of(url: str) -> str:
    async with httpx.AsyncClient(base_url=url) as http:
        body = {"username": "bench", "name": "Bench", "password": PASSWORD}
        r = await http.post("/api/register", json=body)
        if r.status_code != 201:
            raise RuntimeError(f"register answered {r.status_code}: {r.text[:200]}")
        r = await http.post("/api/login", json={"username": "bench", "password": PASSWORD})
        return str(r.json()["token"])


async def upload(http: httpx.AsyncClient, token: str, body: bytes, content_type: str) -> None:
    r = await http.post(
        "/api/uploads",
        content=body,
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": content_type,
            "Upload-Name": "bench.bin",
        },
    )
    if r.status_code != 201:
        raise RuntimeError(f"upload answered {r.status_code}: {r.text[:200]}")


async def series(server: Server, token: str, body: bytes, content_type: str, count: int) -> Any:
    async with httpx.AsyncClient(base_url=server.url, timeout=120) as http:
        await upload(http, token, body, content_type)  # warm
        cpu0, t0 = cpu_seconds(server.proc.pid), time.perf_counter()
        for _ in range(count):
            await upload(http, token, body, content_type)
        wall, cpu = time.perf_counter() - t0, cpu_seconds(server.proc.pid) - cpu0
    megabytes = len(body) * count / MB
    return {"mb_per_s": megabytes / wall, "cpu_ms_per_mb": cpu * 1000 / megabytes}


async def concurrent(server: Server, token: str, body: bytes, content_type: str, n: int) -> Any:
    pid = server.proc.pid
    idle = rss_bytes(pid)
    peak = idle
    done = asyncio.Event()

    async def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, rss_bytes(pid))
            await asyncio.sleep(0.02)

    sampler = asyncio.ensure_future(sample())
    t0 = time.perf_counter()
    limits = httpx.Limits(max_connections=n)
    async with httpx.AsyncClient(base_url=server.url, timeout=300, limits=limits) as http:
        await asyncio.gather(*(upload(http, token, body, content_type) for _ in range(n)))
    wall = time.perf_counter() - t0
    done.set()
    await sampler
    return {
        "rss_idle_mb": idle / MB,
        "rss_peak_mb": peak / MB,
        "rss_growth_mb": (peak - idle) / MB,
        "mb_per_s": len(body) * n / MB / wall,
    }


def start_moto() -> tuple[Any, str]:
    import logging

    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # a line per request otherwise

    port = free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    moto.start()
    url = f"http://127.0.0.1:{port}"
    boto3.client(
        "s3",
        endpoint_url=url,
        aws_access_key_id="bench-key",
        aws_secret_access_key="bench-secret-value",  # noqa: S106
        region_name="us-east-1",
    ).create_bucket(Bucket="bench")
    return moto, url


async def run_round(args: argparse.Namespace, store: str, s3: str | None) -> list[dict[str, Any]]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-uploads-") as tmp:
        server = Server(Path(tmp), store, s3)
        try:
            token = await token_of(server.url)
            for size in args.sizes:
                body, content_type = body_of(args.kind, size * MB)
                count = max(3, 30 // size)
                got = await series(server, token, body, content_type, count)
                rows.append({"store": store, "kind": args.kind, "mb": size, **got})
                log(f"{store} {size} MB x{count}: {got}")
            body, content_type = body_of(args.kind, 20 * MB)
            got = await concurrent(server, token, body, content_type, args.concurrent)
            rows.append({"store": store, "kind": args.kind, "concurrent": args.concurrent, **got})
            log(f"{store} {args.concurrent} x 20 MB at once: {got}")
        finally:
            server.stop()
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sizes", default="1,20")
    parser.add_argument("--stores", default="file,s3")
    parser.add_argument("--concurrent", type=int, default=20)
    parser.add_argument("--kind", choices=("pdf", "png"), default="pdf")
    args = parser.parse_args()
    args.sizes = [int(s) for s in args.sizes.split(",")]
    stores = args.stores.split(",")
    moto, s3 = start_moto() if "s3" in stores else (None, None)
    rows: list[dict[str, Any]] = []
    try:
        for r in range(args.rounds):
            for store in stores if r % 2 == 0 else list(reversed(stores)):
                rows += asyncio.run(run_round(args, store, s3))
    finally:
        if moto is not None:
            moto.stop()
    for row in rows:
        print(json.dumps(row))
    print("\nmedians:")
    keys = sorted({(r["store"], r.get("mb"), r.get("concurrent")) for r in rows}, key=str)
    for store, mb, conc in keys:
        same = [
            r for r in rows if (r["store"], r.get("mb"), r.get("concurrent")) == (store, mb, conc)
        ]
        fields = [k for k in same[0] if isinstance(same[0][k], float)]
        shown = ", ".join(f"{k} {statistics.median(r[k] for r in same):.1f}" for k in fields)
        what = f"{mb} MB files" if mb is not None else f"{conc} x 20 MB at once"
        print(f"  {store:4} {args.kind} {what}: {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
