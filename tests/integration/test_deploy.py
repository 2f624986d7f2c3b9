"""The deployment files in deploy/: the systemd unit template, the Docker Compose project, its
Dockerfile and its nginx.conf (which must be what `server.py nginx-config` prints now)."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REQUIRE

ROOT = Path(__file__).resolve().parent.parent.parent
DEPLOY = ROOT / "deploy"
UNIT = DEPLOY / "supportchat@.service"
WORKERS = {"worker-a": "a", "worker-b": "b"}


def unit_entries(text: str) -> list[tuple[str, str, str]]:
    """(section, key, value) for every assignment, repeated keys kept (configparser drops
    them)."""
    entries, section = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, sep, value = line.partition("=")
        assert sep, f"not an assignment: {raw!r}"
        entries.append((section, key.strip(), value.strip()))
    return entries


def test_systemd_unit_runs_one_hardened_worker_per_instance() -> None:
    entries = unit_entries(UNIT.read_text())
    assert {s for s, _, _ in entries} == {"Unit", "Service", "Install"}

    def values(key: str) -> list[str]:
        return [v for s, k, v in entries if s == "Service" and k == key]

    def one(key: str) -> str:
        found = values(key)
        assert len(found) == 1, (key, found)
        return found[0]

    environment = " ".join(values("Environment")).split()
    assert "WORKER_ID=%i" in environment  # the instance name is the WORKER_ID
    files = values("EnvironmentFile")
    assert "/etc/supportchat/%i.env" in files  # its PORT
    assert any("%i" not in f for f in files)  # the shared settings
    assert one("ExecStart").endswith("server.py")
    assert one("User") not in ("", "root", "0")
    assert one("NoNewPrivileges") == "yes"
    assert one("ProtectSystem") == "strict"
    assert one("PrivateTmp") == "yes"
    assert one("Restart") == "on-failure"
    assert one("TimeoutStopSec") == "20"  # above the worker's 15 s drain
    assert one("KillSignal") == "SIGTERM"
    assert int(one("LimitNOFILE")) >= 10_000 + 256  # MAX_CONNECTIONS's default and the rest


def test_systemd_analyze_verifies_the_unit(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (the unit was parsed above)")
    # The checkout is at /opt/supportchat on a server; here the repository stands in for it,
    # so that verify finds the interpreter.
    text = UNIT.read_text().replace("/opt/supportchat", str(ROOT))
    (tmp_path / UNIT.name).write_text(text)
    result = subprocess.run(
        [analyze, "verify", str(tmp_path / "supportchat@a.service")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    # Unknown keys and bad values are only warnings: none may name the unit.
    complaints = [line for line in result.stderr.splitlines() if "supportchat@" in line]
    assert complaints == [], complaints


def compose() -> dict[str, Any]:
    loaded = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def test_compose_runs_redis_mariadb_two_workers_and_nginx() -> None:
    services = compose()["services"]
    assert set(services) == {"redis", "mariadb", *WORKERS, "nginx"}
    assert "healthcheck" in services["mariadb"]
    assert "healthcheck" in services["redis"]

    shared = ("DATABASE_URL", "REDIS_URL", "JWT_SECRET", "PORT")
    envs = {name: services[name]["environment"] for name in WORKERS}
    for name, worker_id in WORKERS.items():
        worker = services[name]
        env = envs[name]
        assert env["WORKER_ID"] == worker_id
        assert env["JWT_SECRET"] == "${JWT_SECRET:?set JWT_SECRET}"  # required, never a default
        assert env["DATABASE_URL"].startswith("mysql://") and "@mariadb/" in env["DATABASE_URL"]
        assert env["REDIS_URL"].startswith("redis://redis:")
        assert env["HOST"] == "0.0.0.0"
        assert worker["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}
        assert worker["depends_on"]["mariadb"]["condition"] == "service_healthy"
        assert worker["depends_on"]["redis"]["condition"] == "service_healthy"
        assert "ports" not in worker  # reached through nginx only
        assert worker["ulimits"]["nofile"] >= 10_000 + 256  # MAX_CONNECTIONS and the rest
    for key in shared:  # the settings that must match across workers do
        assert len({str(e[key]) for e in envs.values()}) == 1, key

    nginx = services["nginx"]
    assert "./nginx.conf:/etc/nginx/nginx.conf:ro" in nginx["volumes"]
    assert set(nginx["depends_on"]) == set(WORKERS)
    # nginx.conf routes each WORKER_ID to its service at its PORT
    conf = (DEPLOY / "nginx.conf").read_text()
    for name, worker_id in WORKERS.items():
        port = envs[name]["PORT"]
        assert re.search(rf"upstream supportchat_{worker_id} \{{\s*server {name}:{port};", conf), (
            name,
            port,
        )
        assert re.search(rf"^\s*{worker_id} supportchat_{worker_id};$", conf, re.M)


def test_dockerfile_installs_the_requirements_and_runs_as_non_root() -> None:
    lines = [
        line.strip()
        for line in (DEPLOY / "Dockerfile").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert lines[0] == "FROM python:3.11-slim"
    assert "RUN pip install -r requirements.txt" in lines
    users = [line.split(None, 1)[1] for line in lines if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")
    assert lines[-1] == 'CMD ["python", "server.py"]'
    ignored = (DEPLOY / "Dockerfile.dockerignore").read_text().split()
    assert ".venv" in ignored and ".git" in ignored


def test_shipped_nginx_conf_is_what_nginx_config_prints() -> None:
    text = (DEPLOY / "nginx.conf").read_text()
    header, _, body = text.partition("\n\n")
    command = next(
        line.lstrip("# ").strip() for line in header.splitlines() if "nginx-config" in line
    )
    args = shlex.split(command)
    assert args[:3] == ["python", "server.py", "nginx-config"], args
    printed = subprocess.run(
        [sys.executable, str(ROOT / "server.py"), *args[2:]],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert printed.returncode == 0, printed.stderr
    assert body == printed.stdout, "deploy/nginx.conf is out of date: regenerate it (header)"


def _compose_plugin_installable() -> bool:
    policy = subprocess.run(
        ["apt-cache", "policy", "docker-compose-plugin"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    match = re.search(r"Candidate:\s*(\S+)", policy)
    return bool(match and match.group(1) != "(none)")


def test_docker_compose_accepts_the_project() -> None:
    docker = shutil.which("docker")
    plugin = (
        docker is not None
        and subprocess.run(
            [docker, "compose", "version"], capture_output=True, check=False
        ).returncode
        == 0
    )
    if not plugin:
        message = "the docker compose plugin is not installed"
        if REQUIRE and shutil.which("apt-cache") and _compose_plugin_installable():
            pytest.fail(f"{message} (apt has docker-compose-plugin) and REQUIRE_SERVICES=1")
        pytest.skip(message)
    assert docker is not None
    env = {**os.environ, "JWT_SECRET": "x" * 48}
    result = subprocess.run(
        [docker, "compose", "-f", str(DEPLOY / "compose.yaml"), "config", "--quiet"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    env.pop("JWT_SECRET")
    missing = subprocess.run(
        [docker, "compose", "-f", str(DEPLOY / "compose.yaml"), "config", "--quiet"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert missing.returncode != 0 and "set JWT_SECRET" in missing.stderr
