"""HTTP hardening: form posts bound to our own origin (login CSRF from another port), the
`__Host-` form-token cookie, `/metrics` behind METRICS_TOKEN, only the Swagger UI assets our
page needs, and a SQLite database readable by its owner only."""

from __future__ import annotations

import logging
import os
import re
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, cast

import httpx
import pytest

from config.settings import Secret
from models.db import make_engine, migrate
from tests.conftest import PASSWORD, Stack, StackFactory, free_port
from tests.integration.test_pages import cookie_attrs

# Nothing here depends on the database: the server on SQLite only.
on_sqlite = pytest.mark.parametrize("make_stack", ["sqlite"], indirect=True)

ROOT = Path(__file__).resolve().parent.parent.parent


# -- form posts: the origin they come from ---------------------------------------------------


async def xsrf_pair(http: httpx.AsyncClient, path: str = "/login") -> tuple[str, str]:
    """A valid form token and its cookie, as anyone (an attacker too) gets them: (field, cookie)."""
    page = await http.get(path)
    assert page.status_code == 200, page.text
    match = re.search(r'name="_xsrf" value="([^"]+)"', page.text)
    assert match is not None
    cookie = page.cookies.get("_xsrf") or http.cookies.get("_xsrf")
    assert cookie
    return match.group(1), cookie


async def post_login(
    stack: Stack, headers: dict[str, str], *, cookie_name: str = "_xsrf"
) -> httpx.Response:
    """POST /login with a valid _xsrf pair (the cookie sent by hand, as a planted one is)."""
    async with httpx.AsyncClient(base_url=stack.url, timeout=10) as http:
        field, cookie = await xsrf_pair(http)
        return await http.post(
            "/login",
            data={"_xsrf": field, "username": "ana", "password": PASSWORD},
            headers={"Cookie": f"{cookie_name}={cookie}", **headers},
            follow_redirects=False,
        )


def sets_token(r: httpx.Response) -> bool:
    return any(h.startswith("token=") for h in r.headers.get_list("set-cookie"))


@on_sqlite
async def test_login_form_post_from_another_port_is_forbidden_despite_a_valid_xsrf_pair(
    stack: Stack,
) -> None:
    await stack.register("ana")
    other = f"http://127.0.0.1:{free_port()}"
    for headers in (
        {"Origin": other},
        {"Origin": f"https://127.0.0.1:{stack.port}"},  # another scheme
        {"Origin": f"http://localhost:{stack.port}"},  # another host name
        {"Origin": "null"},  # a sandboxed or redirected page
        {"Referer": f"{other}/attack.html"},  # no Origin: the Referer tells
        {"Origin": other, "Referer": f"{stack.url}/login"},  # Origin wins
    ):
        r = await post_login(stack, headers)
        assert r.status_code == 403, (headers, r.status_code)
        assert r.headers["content-type"].startswith("text/html")  # the error page
        assert "Content-Security-Policy" in r.headers
        assert not sets_token(r), headers


@on_sqlite
async def test_register_and_logout_form_posts_from_another_origin_are_forbidden(
    stack: Stack,
) -> None:
    token = await stack.register("ana")
    other = {"Origin": f"http://127.0.0.1:{free_port()}"}
    async with httpx.AsyncClient(base_url=stack.url, timeout=10) as http:
        field, cookie = await xsrf_pair(http, "/register")
        for path, data in (
            ("/register", {"username": "mallory", "name": "M", "password": PASSWORD}),
            ("/logout", {}),
        ):
            r = await http.post(
                path,
                data={"_xsrf": field, **data},
                headers={"Cookie": f"_xsrf={cookie}; token={token}", **other},
                follow_redirects=False,
            )
            assert r.status_code == 403, (path, r.status_code)
            assert not sets_token(r), path
    assert await stack.services.auth.find_user("mallory") is None
    assert await stack.try_connect(auth={"token": token}) is None  # still logged in


@on_sqlite
async def test_login_form_post_from_our_own_origin_logs_in(stack: Stack) -> None:
    await stack.register("ana")
    for headers in (
        {"Origin": stack.url},
        {"Origin": stack.url.upper().replace("HTTP://", "http://")},  # host case is no matter
        {"Referer": f"{stack.url}/login?next=x"},
        {},  # neither: a non-browser client, held by the _xsrf pair alone
    ):
        r = await post_login(stack, headers)
        assert r.status_code == 302, (headers, r.status_code, r.text)
        assert r.headers["location"] == "/chat"
        assert sets_token(r), headers


@on_sqlite
async def test_form_origin_behind_a_proxy_trusts_forwarded_headers_from_trusted_proxies_only(
    make_stack: StackFactory,
) -> None:
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "chat.example"}
    trusting = await make_stack()  # 127.0.0.1 is a trusted proxy by default
    await trusting.register("ana")
    r = await post_login(trusting, {**forwarded, "Origin": "https://chat.example"})
    assert r.status_code == 302 and sets_token(r)
    r = await post_login(trusting, {**forwarded, "Origin": trusting.url})
    assert r.status_code == 403

    distrusting = await make_stack(trusted_proxies=())
    evil = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example"}
    r = await post_login(distrusting, {**evil, "Origin": "https://evil.example"})
    assert r.status_code == 403 and not sets_token(r)


@on_sqlite
async def test_with_cookie_secure_the_form_token_cookie_is_a_host_cookie(
    make_stack: StackFactory,
) -> None:
    stack = await make_stack(cookie_secure=True)
    await stack.register("ana")
    async with httpx.AsyncClient(base_url=stack.url, timeout=10) as http:
        page = await http.get("/login")
    names = [h.split("=", 1)[0] for h in page.headers.get_list("set-cookie")]
    assert names == ["__Host-xsrf"], names
    value, attrs = cookie_attrs(page, "__Host-xsrf")
    assert "secure" in attrs and "path=/" in attrs
    assert not any(a.startswith("domain") for a in attrs)
    field = re.search(r'name="_xsrf" value="([^"]+)"', page.text)
    assert field is not None
    own = {"Origin": stack.url}  # as a browser over HTTPS would send it, the cookie by hand
    async with httpx.AsyncClient(base_url=stack.url, timeout=10) as http:
        for name, status in (("_xsrf", 403), ("__Host-xsrf", 302)):  # a planted `_xsrf` is not it
            r = await http.post(
                "/login",
                data={"_xsrf": field.group(1), "username": "ana", "password": PASSWORD},
                headers={"Cookie": f"{name}={value}", **own},
                follow_redirects=False,
            )
            assert r.status_code == status, (name, r.status_code)
            assert sets_token(r) is (status == 302)


# -- /metrics --------------------------------------------------------------------------------


@on_sqlite
async def test_metrics_with_a_token_set_needs_that_bearer_token(make_stack: StackFactory) -> None:
    stack = await make_stack(metrics_token=Secret("s3cret-metrics-token"))
    assert stack.http is not None
    for headers in (
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": "Bearer s3cret-metrics-tokenX"},
        {"Authorization": "Basic czNjcmV0LW1ldHJpY3MtdG9rZW4="},
        {"Authorization": "s3cret-metrics-token"},
        {"Authorization": "Bearer ñ".encode()},  # not ASCII: refused, not a 500
    ):
        r = await stack.http.get("/metrics", headers=cast(Any, headers))
        assert r.status_code == 401, (headers, r.status_code)
        assert r.headers["www-authenticate"].startswith("Bearer")
        assert r.json() == {"error": "unauthenticated", "message": r.json()["message"]}
        assert "supportchat_" not in r.text
    for scheme in ("Bearer", "bearer"):
        r = await stack.http.get(
            "/metrics", headers={"Authorization": f"{scheme} s3cret-metrics-token"}
        )
        assert r.status_code == 200
        assert "supportchat_http_requests_total" in r.text


@on_sqlite
async def test_metrics_without_a_token_set_stays_open(stack: Stack) -> None:
    assert stack.http is not None
    assert stack.settings.metrics_token is None
    r = await stack.http.get("/metrics")
    assert r.status_code == 200 and "supportchat_" in r.text


# -- Swagger UI assets -----------------------------------------------------------------------


@on_sqlite
async def test_only_the_swagger_assets_of_our_page_are_served_with_our_headers(
    stack: Stack,
) -> None:
    assert stack.http is not None
    for path in (
        "/api-docs/vendor/index.html",
        "/api-docs/vendor/oauth2-redirect.html",
        "/api-docs/vendor/swagger-initializer.js",
        "/api-docs/vendor/index.j2",
        "/api-docs/vendor/",
        "/api-docs/vendor/swagger-ui-bundle.js/../index.html",
        "/api-docs/vendor/%2e%2e/__init__.py",
    ):
        r = await stack.http.get(path)
        assert r.status_code == 404, (path, r.status_code)
    for path, kind in (
        ("/api-docs/vendor/swagger-ui-bundle.js", "javascript"),
        ("/api-docs/vendor/swagger-ui.css", "text/css"),
    ):
        r = await stack.http.get(path)
        assert r.status_code == 200, path
        assert kind in r.headers["content-type"]
        assert "'unsafe-inline'" not in r.headers["content-security-policy"]
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["referrer-policy"] == "same-origin"


# -- the SQLite file -------------------------------------------------------------------------


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.slow
def test_a_hand_started_server_makes_its_sqlite_files_owner_only(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/")}
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "server.py"), "--port", str(port)],
        cwd=tmp_path,
        env=env,
        umask=0o022,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            assert proc.poll() is None, proc.communicate()[1].decode()
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "server did not answer /healthz"
            time.sleep(0.1)
        body = {"username": "ana", "name": "Ana", "password": PASSWORD}
        assert httpx.post(f"{url}/api/register", json=body, timeout=10).status_code == 201
        db = tmp_path / "supportchat.db"
        for file in (db, db.with_name("supportchat.db-wal"), db.with_name("supportchat.db-shm")):
            assert mode(file) == 0o600, (file.name, oct(mode(file)))
        assert mode(db.with_name("supportchat.db.jwt-secret")) == 0o600
    finally:
        proc.terminate()
        proc.communicate(timeout=20)


async def test_an_existing_database_open_to_others_is_narrowed_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "old.db"
    engine = make_engine(f"sqlite+aiosqlite:///{db}")
    await migrate(engine)
    for file in (db, tmp_path / "old.db-wal", tmp_path / "old.db-shm"):
        file.chmod(0o644)  # as an older version left them under a umask of 022
    with caplog.at_level(logging.WARNING, logger="models.db"):
        second = make_engine(f"sqlite+aiosqlite:///{db}")
    try:
        for file in (db, tmp_path / "old.db-wal", tmp_path / "old.db-shm"):
            assert mode(file) == 0o600, file.name
        warnings = [r for r in caplog.records if r.name == "models.db"]
        assert len(warnings) == 1 and "old.db" in warnings[0].getMessage()
    finally:
        await second.dispose()
        await engine.dispose()
