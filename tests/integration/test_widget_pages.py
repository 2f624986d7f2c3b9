"""The widget's two routes from outside: `/widget.js` (loads from any site) and `/widget` (framed
by the sites of WIDGET_ORIGINS only, every other page by none); both 404 while the widget is
off. And what the widget's being on must not open: CORS, other sites' sockets, the admin pages
for a visitor's token."""

from __future__ import annotations

import gzip
from typing import Any

import httpx
import pytest

from config.settings import Secret
from tests.conftest import Stack, StackFactory
from tests.integration.test_pages import csp_directives, page_responses

SHOP = "https://shop.example.com"
BLOG = "http://blog.example.com:8080"
SECRET = "a-widget-secret-of-at-least-32-bytes!"


@pytest.fixture
async def widget(make_stack: StackFactory) -> Stack:
    return await make_stack(widget_origins=(SHOP, BLOG), widget_secret=Secret(SECRET))


async def get(stack: Stack, path: str, **kwargs: Any) -> httpx.Response:
    assert stack.http is not None
    return await stack.http.get(path, **kwargs)


async def test_widget_is_404_while_widget_origins_is_unset(stack: Stack) -> None:
    for path in ("/widget.js", f"/widget?origin={SHOP}", "/widget"):
        r = await get(stack, path)
        assert r.status_code == 404, path
        # the error page, which no site may frame
        assert csp_directives(r.headers["content-security-policy"])["frame-ancestors"] == ["'none'"]


async def test_loader_is_javascript_any_site_may_load(widget: Stack) -> None:
    r = await get(widget, "/widget.js", headers={"Origin": "https://anywhere.example"})
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/javascript; charset=UTF-8"
    assert "cross-origin-resource-policy" not in r.headers
    assert "access-control-allow-origin" not in r.headers  # a script tag needs no CORS
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["cache-control"].startswith("public, max-age=")
    body = r.text
    # Both languages' names of the button and the frame, from the translations.
    for text in ("Open support chat", "Abrir chat de soporte", "Support chat", "Chat de soporte"):
        assert text in body
    assert len(gzip.compress(r.content, 9)) < 10 * 1024  # the loader stays small
    assert "innerHTML" not in body and "insertAdjacentHTML" not in body
    assert '"identity": "optional"' in body


async def test_loader_says_when_only_identified_visitors_may_chat(
    make_stack: StackFactory,
) -> None:
    stack = await make_stack(
        widget_origins=(SHOP,), widget_secret=Secret(SECRET), widget_identity="required"
    )
    assert '"identity": "required"' in (await get(stack, "/widget.js")).text
    page = await get(stack, f"/widget?origin={SHOP}")
    assert 'data-identity="required"' in page.text


async def test_frame_may_be_framed_by_exactly_the_widget_origins(widget: Stack) -> None:
    for origin in (SHOP, BLOG):
        r = await get(widget, "/widget", params={"origin": origin, "locale": "es"})
        assert r.status_code == 200, origin
        csp = csp_directives(r.headers["content-security-policy"])
        assert csp["frame-ancestors"] == [SHOP, BLOG]
        assert "'unsafe-inline'" not in csp["script-src"]
        assert "x-frame-options" not in r.headers  # it would forbid what frame-ancestors allows
        assert r.headers["cache-control"] == "no-store"
        assert f'data-host="{origin}"' in r.text
        assert '<html lang="es">' in r.text
        assert 'aria-label="Conversación"' in r.text  # the /chat conversation, in Spanish


@pytest.mark.parametrize(
    "origin", ["", "https://evil.example", "https://shop.example.com.evil.example", "null"]
)
async def test_frame_for_a_site_not_in_widget_origins_is_404(widget: Stack, origin: str) -> None:
    r = await get(widget, "/widget", params={"origin": origin})
    assert r.status_code == 404
    assert csp_directives(r.headers["content-security-policy"])["frame-ancestors"] == ["'none'"]


async def test_every_other_page_still_refuses_to_be_framed(widget: Stack) -> None:
    for r in await page_responses(widget):
        where = f"{r.request.method} {r.request.url.path} -> {r.status_code}"
        csp = csp_directives(r.headers.get("content-security-policy", ""))
        assert csp.get("frame-ancestors") == ["'none'"], where
        assert r.headers.get("x-frame-options") == "DENY", where


async def test_a_widget_site_gets_no_cors_and_cannot_open_sockets(widget: Stack) -> None:
    """The frame is on the server's own origin: the embedding site itself is not let in."""
    assert widget.http is not None
    preflight = await widget.http.request(
        "OPTIONS",
        "/api/visitors",
        headers={
            "Origin": SHOP,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert "access-control-allow-origin" not in preflight.headers
    post = await widget.http.post("/api/visitors", json={}, headers={"Origin": SHOP})
    assert "access-control-allow-origin" not in post.headers
    refused = await widget.try_connect(headers={"Origin": SHOP})
    assert refused is not None
    assert await widget.try_connect(headers={"Origin": widget.url}) is not None  # no token


async def test_a_visitor_token_is_useless_for_the_team_pages_and_routes(widget: Stack) -> None:
    assert widget.http is not None
    r = await widget.http.post("/api/visitors", json={})
    assert r.status_code == 201, r.text
    auth = {"Authorization": f"Bearer {r.json()['token']}"}
    for path in ("/admin", "/admin/reports"):
        page = await widget.http.get(path, headers=auth, follow_redirects=False)
        assert page.status_code == 403, path
    async with httpx.AsyncClient(base_url=widget.url, cookies={"token": r.json()["token"]}) as c:
        assert (await c.get("/admin", follow_redirects=False)).status_code == 403
    for path in ("/api/conversations", "/api/admins", "/api/reports", "/api/canned-responses"):
        assert (await widget.http.get(path, headers=auth)).status_code == 403, path
    # Its own conversation, and nothing else, is open to it.
    assert (await widget.http.get("/api/messages", headers=auth)).status_code == 200
    other = await widget.http.get("/api/messages", params={"with": "someone"}, headers=auth)
    assert other.status_code == 403


async def test_pages_and_the_frame_may_show_images_of_an_s3_store(
    make_stack: StackFactory,
) -> None:
    from config.settings import Storage

    stack = await make_stack(
        widget_origins=(SHOP,),
        storage=Storage("s3", "bucket", "chat/"),
        s3_endpoint_url="http://127.0.0.1:9000",
    )
    for path in ("/login", f"/widget?origin={SHOP}"):
        r = await get(stack, path)
        csp = csp_directives(r.headers["content-security-policy"])
        assert "http://127.0.0.1:9000" in csp["img-src"], path
        assert "http://127.0.0.1:9000" in csp["connect-src"], path
