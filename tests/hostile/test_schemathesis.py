"""schemathesis against /openapi.json: generated requests for every /api/ route, checked
against the documented responses and schemas (`--checks all`), on a real server process."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import PASSWORD, REQUIRE, free_port
from tests.integration.test_process import ROOT, clean_env, wait_healthy

pytestmark = pytest.mark.slow
EXAMPLES = "40"


def test_every_api_route_answers_as_its_openapi_document_says(tmp_path: Path) -> None:
    st = shutil.which("st", path=str(Path(sys.executable).parent))
    if st is None:
        if REQUIRE:
            pytest.fail("schemathesis is not installed (requirements-dev.txt)")
        pytest.skip("schemathesis is not installed")
    env = clean_env(
        LOGIN_FAILURES_PER_MINUTE="100000",
        MSG_RATE="0",
        REGISTRATIONS_PER_HOUR="0",
        VISITORS_PER_HOUR="0",
        WIDGET_ORIGINS="https://shop.example",
        WIDGET_SECRET="a-widget-secret-of-at-least-32-bytes",
        UPLOADS_PER_MINUTE="0",
    )
    server = str(ROOT / "server.py")
    subprocess.run(
        [sys.executable, server, "adduser", "boss", "--name", "Boss", "--admin"],
        input=f"{PASSWORD}\n".encode(),
        cwd=tmp_path,
        env=env,
        check=True,
        capture_output=True,
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with open(tmp_path / "server.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, server, "--port", str(port)],
            cwd=tmp_path,
            env=env,
            stdout=log,
            stderr=log,
        )
        try:
            wait_healthy(url, proc)
            runs = [
                # As an admin, every route but logout (it would revoke the token under test)
                # and the history, whose `with` only an admin must give: a condition OpenAPI
                # cannot state, so it is run as a user below.
                schemathesis(
                    st,
                    url,
                    login(url, "boss"),
                    tmp_path,
                    "--exclude-path",
                    "/api/logout",
                    "--exclude-path",
                    "/api/messages",
                    "--exclude-path",
                    "/api/reports",
                    "--exclude-path",
                    "/api/conversations/{user}",
                    "--exclude-path",
                    "/api/visitors",
                    *upload_paths("--exclude-path"),
                ),
                # Uploads: bytes that fit the schema (any string) need not be of the declared
                # type (415), and an upload answers 404 without a token as for an unknown id,
                # which the authentication check would take for a route that ignores it.
                schemathesis(
                    st,
                    url,
                    login(url, "boss"),
                    tmp_path,
                    *upload_paths("--include-path"),
                    "--exclude-checks",
                    "positive_data_acceptance,ignored_auth",
                ),
                # Rules OpenAPI cannot state, so that well-formed requests may still be refused
                # (400): the reports' period (`from` before `to`, at most 366 days apart), and a
                # conversation's change (`snoozed_until` in the future and with the status
                # "snoozed" only; an assignee who is an admin): every check but that one.
                schemathesis(
                    st,
                    url,
                    login(url, "boss"),
                    tmp_path,
                    "--include-path",
                    "/api/reports",
                    "--include-path",
                    "/api/conversations/{user}",
                    # and a visitor's `hash` and `token`, which must be right, not well-formed
                    "--include-path",
                    "/api/visitors",
                    "--exclude-checks",
                    "positive_data_acceptance",
                ),
                schemathesis(
                    st,
                    url,
                    login(url, "ana", register=True),
                    tmp_path,
                    "--include-path",
                    "/api/messages",
                    "--include-path",
                    "/api/me",
                ),
            ]
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=20)
    for run in runs:
        assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    log_text = (tmp_path / "server.log").read_text()
    assert "Traceback" not in log_text, log_text[-4000:]


def upload_paths(option: str) -> list[str]:
    paths = ("/api/uploads", "/api/uploads/{id}", "/api/uploads/{id}/thumbnail")
    return [arg for path in paths for arg in (option, path)]


def login(url: str, user: str, *, register: bool = False) -> str:
    if register:
        body = {"username": user, "name": user, "password": PASSWORD}
        assert httpx.post(f"{url}/api/register", json=body).status_code == 201
    r = httpx.post(f"{url}/api/login", json={"username": user, "password": PASSWORD})
    return str(r.json()["token"])


def schemathesis(
    st: str, url: str, token: str, cwd: Path, *only: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            st,
            "run",
            f"{url}/openapi.json",
            "-H",
            f"Authorization: Bearer {token}",
            "--checks",
            "all",
            "--max-examples",
            EXAMPLES,
            "--seed",
            "20261127",  # the same requests on every run
            "--generation-allow-x00",
            "false",  # documented: strings hold no U+0000
            "--generation-codec",
            "utf-8",  # documented: valid Unicode only
            "--request-timeout",
            "10",
            *only,
        ],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
