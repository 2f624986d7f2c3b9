"""The HTML pages from outside: redirects, forms and their accessible names (English and
Spanish), XSRF-protected form posts, logout, security headers, escaping and static assets."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from html.parser import HTMLParser
from typing import Any

import httpx
import pytest

from tests.conftest import PASSWORD, Stack, StackFactory

SPANISH = {"Accept-Language": "es"}


class Page(HTMLParser):
    """What a test (or a screen reader) reads from a page: labels, buttons, links, inputs,
    roles, assets, alerts."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.labels: list[str] = []
        self.buttons: list[str] = []
        self.links: list[tuple[str, str]] = []  # (text, href)
        self.inputs: list[dict[str, str | None]] = []
        self.roles: list[str] = []
        self.assets: list[str] = []
        self.alerts: list[str] = []
        self.forms: list[dict[str, str | None]] = []
        self._open: list[tuple[str, dict[str, str | None], list[str]]] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if a.get("role"):
            self.roles.append(str(a["role"]))
        if tag in ("input", "textarea"):
            self.inputs.append({"tag": tag, **a})
        if tag == "form":
            self.forms.append(a)
        if tag == "script" and a.get("src"):
            self.assets.append(str(a["src"]))
        if tag == "link" and a.get("href"):
            self.assets.append(str(a["href"]))
        if tag in ("label", "button", "a") or a.get("role") == "alert":
            self._open.append((tag, a, []))

    def handle_data(self, data: str) -> None:
        for _, _, texts in self._open:
            texts.append(data)

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self._open) - 1, -1, -1):
            if self._open[i][0] == tag:
                _, a, texts = self._open.pop(i)
                text = " ".join("".join(texts).split())
                if a.get("role") == "alert":
                    self.alerts.append(text)
                elif tag == "label":
                    self.labels.append(text)
                elif tag == "button":
                    self.buttons.append(text)
                elif tag == "a":
                    self.links.append((text, str(a.get("href"))))
                break

    def field(self, name: str) -> str | None:
        for i in self.inputs:
            if i.get("name") == name:
                return i.get("value")
        return None


@asynccontextmanager
async def browser(stack: Stack, **kwargs: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A client of its own that keeps cookies, as a browser does."""
    async with httpx.AsyncClient(base_url=stack.url, timeout=10, **kwargs) as client:
        yield client


async def xsrf_of(client: httpx.AsyncClient, path: str = "/login") -> str:
    """GET a page with a form: sets the `_xsrf` cookie; returns the form's hidden value."""
    r = await client.get(path)
    assert r.status_code == 200, r.text
    value = Page(r.text).field("_xsrf")
    assert value and ("_xsrf" in client.cookies or "__Host-xsrf" in client.cookies)
    return value


def cookie_attrs(r: httpx.Response, name: str) -> tuple[str, list[str]]:
    for header in r.headers.get_list("set-cookie"):
        if header.startswith(f"{name}="):
            first, *rest = header.split(";")
            return first.partition("=")[2], [x.strip().lower() for x in rest]
    raise AssertionError(f"no {name} cookie in {r.headers.get_list('set-cookie')}")


async def post_login(
    client: httpx.AsyncClient, username: str, password: str = PASSWORD, **kw: Any
) -> httpx.Response:
    xsrf = await xsrf_of(client, "/login")
    return await client.post(
        "/login",
        data={"_xsrf": xsrf, "username": username, "password": password},
        follow_redirects=False,
        **kw,
    )


# -- home ---------------------------------------------------------------------------------


async def test_home_redirects_by_login_state_and_role(stack: Stack) -> None:
    user = await stack.register("ana")
    admin = await stack.register("boss", admin=True)
    for cookies, target in (
        ({}, "/login"),
        ({"token": user}, "/chat"),
        ({"token": admin}, "/admin"),
    ):
        async with browser(stack, cookies=cookies) as client:
            r = await client.get("/", follow_redirects=False)
            assert r.status_code == 302 and r.headers["location"] == target
    async with browser(stack, cookies={"token": "not.a.token"}) as client:
        r = await client.get("/", follow_redirects=False)
        assert r.status_code == 302 and r.headers["location"] == "/login"


# -- login and register forms -------------------------------------------------------------


async def test_login_form_has_its_accessible_names(stack: Stack) -> None:
    async with browser(stack) as client:
        r = await client.get("/login")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    page = Page(r.text)
    assert {"Username", "Password"} <= set(page.labels)
    assert "Log in" in page.buttons
    assert ("Register", "/register") in page.links
    assert {"username", "password", "_xsrf"} <= {i.get("name") for i in page.inputs}
    assert [i.get("type") for i in page.inputs if i.get("name") == "password"] == ["password"]


async def test_register_form_has_its_accessible_names(stack: Stack) -> None:
    async with browser(stack) as client:
        r = await client.get("/register")
    assert r.status_code == 200
    page = Page(r.text)
    assert {"Username", "Name", "Password"} <= set(page.labels)
    assert "Register" in page.buttons
    assert {"username", "name", "password", "_xsrf"} <= {i.get("name") for i in page.inputs}


async def test_forms_are_in_spanish_when_the_browser_prefers_it(stack: Stack) -> None:
    async with browser(stack, headers=SPANISH) as client:
        login = Page((await client.get("/login")).text)
        register = Page((await client.get("/register")).text)
    assert {"Usuario", "Contraseña"} <= set(login.labels)
    assert "Iniciar sesión" in login.buttons
    assert "Registrarse" in [text for text, _ in login.links]
    assert {"Usuario", "Nombre", "Contraseña"} <= set(register.labels)
    assert "Registrarse" in register.buttons


# -- POST /login --------------------------------------------------------------------------


async def test_login_post_without_xsrf_is_forbidden(stack: Stack) -> None:
    await stack.register("ana")
    async with browser(stack) as client:
        r = await client.post(
            "/login", data={"username": "ana", "password": PASSWORD}, follow_redirects=False
        )
        assert r.status_code == 403
        assert "token" not in client.cookies
        await xsrf_of(client)  # a cookie alone, without the form field, is not enough
        r = await client.post(
            "/login", data={"username": "ana", "password": PASSWORD}, follow_redirects=False
        )
        assert r.status_code == 403
        r = await client.post(
            "/login",
            data={"_xsrf": "forged", "username": "ana", "password": PASSWORD},
            follow_redirects=False,
        )
        assert r.status_code == 403 and "token" not in client.cookies


@pytest.mark.parametrize(("admin", "home"), [(False, "/chat"), (True, "/admin")])
async def test_login_post_sets_the_cookie_and_redirects_home(
    stack: Stack, admin: bool, home: str
) -> None:
    await stack.register("Ana", "Ana A", admin=admin)
    async with browser(stack) as client:
        r = await post_login(client, "ana")
        assert r.status_code == 302 and r.headers["location"] == home
        token, attrs = cookie_attrs(r, "token")
        assert token
        assert "httponly" in attrs and "samesite=lax" in attrs and "path=/" in attrs
        assert "secure" not in attrs
        me = await client.get("/api/me")
        assert me.json() == {"user": "Ana", "name": "Ana A", "rol": "admin" if admin else "user"}
        r = await client.get(home)
        assert r.status_code == 200


async def test_login_post_cookie_is_secure_when_configured(make_stack: StackFactory) -> None:
    stack = await make_stack(cookie_secure=True)
    await stack.register("ana")
    async with browser(stack) as client:
        form = await client.get("/login")
        # The form token's cookie is Secure too (and `__Host-`), so the client jar keeps it off
        # plain HTTP: send it by hand, as a browser would over HTTPS.
        xsrf_cookie, xsrf_attrs = cookie_attrs(form, "__Host-xsrf")
        assert "secure" in xsrf_attrs
        r = await client.post(
            "/login",
            data={"_xsrf": Page(form.text).field("_xsrf"), "username": "ana", "password": PASSWORD},
            headers={"Cookie": f"__Host-xsrf={xsrf_cookie}"},
            follow_redirects=False,
        )
    assert r.status_code == 302
    _, attrs = cookie_attrs(r, "token")
    assert "secure" in attrs and "httponly" in attrs and "samesite=lax" in attrs


async def test_login_post_failure_shows_one_message_for_either_mistake(stack: Stack) -> None:
    await stack.register("ana")
    async with browser(stack) as client:
        wrong = await post_login(client, "ana", "wrong password!!")
        unknown = await post_login(client, "nobody", "wrong password!!")
        assert "token" not in client.cookies
    messages = []
    for r in (wrong, unknown):
        assert r.status_code == 401
        assert "token=" not in " ".join(r.headers.get_list("set-cookie"))
        page = Page(r.text)
        assert {"Username", "Password"} <= set(page.labels) and "Log in" in page.buttons
        assert len(page.alerts) == 1 and page.alerts[0]
        messages.append(page.alerts[0])
    assert messages[0] == messages[1]
    assert "password" not in messages[0].lower().replace("user name or password", "")


async def test_login_post_past_the_failure_limit_is_429(make_stack: StackFactory) -> None:
    stack = await make_stack(login_failures_per_minute=3)
    await stack.register("ana")
    async with browser(stack) as client:
        for _ in range(3):
            assert (await post_login(client, "ana", "wrong password!!")).status_code == 401
        r = await post_login(client, "ana")
        assert r.status_code == 429
        assert "token" not in client.cookies
        assert len(Page(r.text).alerts) == 1


# -- POST /register -----------------------------------------------------------------------


async def post_register(client: httpx.AsyncClient, **values: str) -> httpx.Response:
    xsrf = await xsrf_of(client, "/register")
    return await client.post("/register", data={"_xsrf": xsrf, **values}, follow_redirects=False)


async def test_register_post_creates_a_user_and_logs_it_in(stack: Stack) -> None:
    async with browser(stack) as client:
        r = await post_register(client, username="ana", name="Ana A", password=PASSWORD)
        assert r.status_code == 302 and r.headers["location"] == "/chat"
        _, attrs = cookie_attrs(r, "token")
        assert "httponly" in attrs and "samesite=lax" in attrs and "path=/" in attrs
        assert (await client.get("/api/me")).json() == {
            "user": "ana",
            "name": "Ana A",
            "rol": "user",
        }


@pytest.mark.parametrize(
    "values",
    [
        {"username": "ab", "name": "Ana", "password": PASSWORD},
        {"username": "ana", "name": "", "password": PASSWORD},
        {"username": "ana", "name": "Ana", "password": "short"},
        {"username": "ana!", "name": "Ana", "password": PASSWORD},
    ],
)
async def test_register_post_invalid_rerenders_the_form_with_400(
    stack: Stack, values: dict[str, str]
) -> None:
    async with browser(stack) as client:
        r = await post_register(client, **values)
        assert r.status_code == 400
        assert "token" not in client.cookies
    page = Page(r.text)
    assert {"Username", "Name", "Password"} <= set(page.labels) and "Register" in page.buttons
    assert len(page.alerts) == 1
    assert page.field("username") == values["username"]


async def test_register_post_taken_name_is_409(stack: Stack) -> None:
    await stack.register("ana")
    async with browser(stack) as client:
        r = await post_register(client, username="ANA", name="Other", password=PASSWORD)
        assert r.status_code == 409
        assert "token" not in client.cookies
    page = Page(r.text)
    assert "Register" in page.buttons and len(page.alerts) == 1


async def test_register_post_without_xsrf_is_forbidden(stack: Stack) -> None:
    async with browser(stack) as client:
        r = await client.post(
            "/register",
            data={"username": "ana", "name": "Ana", "password": PASSWORD},
            follow_redirects=False,
        )
    assert r.status_code == 403
    assert stack.http is not None
    r = await stack.http.post("/api/login", json={"username": "ana", "password": PASSWORD})
    assert r.status_code == 401


# -- logout -------------------------------------------------------------------------------


async def test_logout_revokes_the_token_clears_the_cookie_and_closes_its_sockets(
    stack: Stack,
) -> None:
    await stack.register("ana")
    other = await stack.connect(await stack.login("ana"))  # another session of the same user
    async with browser(stack) as client:
        assert (await post_login(client, "ana")).status_code == 302
        token = client.cookies["token"]
        socket = await stack.connect(token)
        xsrf = Page((await client.get("/chat")).text).field("_xsrf")
        assert xsrf
        r = await client.post("/logout", data={"_xsrf": xsrf}, follow_redirects=False)
        assert r.status_code == 302 and r.headers["location"] == "/login"
        value, attrs = cookie_attrs(r, "token")
        assert value in ("", '""')
        assert any(a.startswith("expires=") or a == "max-age=0" for a in attrs)
        assert "path=/" in attrs
        assert "token" not in client.cookies
        assert (await client.get("/chat", follow_redirects=False)).headers["location"] == "/login"
    assert stack.http is not None
    me = await stack.http.get("/api/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 401
    await asyncio.wait_for(socket.disconnected.wait(), 5)
    await asyncio.sleep(0.2)
    assert other.sio.connected  # only the sockets of that token
    assert await stack.try_connect(auth={"token": token}) == "Token inválido"


async def test_logout_without_xsrf_is_forbidden_and_keeps_the_session(stack: Stack) -> None:
    await stack.register("ana")
    async with browser(stack) as client:
        await post_login(client, "ana")
        r = await client.post("/logout", follow_redirects=False)
        assert r.status_code == 403
        assert (await client.get("/api/me")).status_code == 200


# -- chat and admin pages -----------------------------------------------------------------


async def test_chat_without_a_token_redirects_to_login(stack: Stack) -> None:
    async with browser(stack) as client:
        r = await client.get("/chat", follow_redirects=False)
        assert r.status_code == 302 and r.headers["location"] == "/login"
        r = await client.get("/admin", follow_redirects=False)
        assert r.status_code == 302 and r.headers["location"] == "/login"


async def test_chat_page_has_the_conversation_composer_and_logout(stack: Stack) -> None:
    token = await stack.register("ana")
    async with browser(stack, cookies={"token": token}) as client:
        r = await client.get("/chat")
    assert r.status_code == 200
    page = Page(r.text)
    assert "log" in page.roles
    assert "Message" in page.labels
    assert {"Send", "Log out"} <= set(page.buttons)


async def test_admin_page_is_forbidden_for_a_user(stack: Stack) -> None:
    token = await stack.register("ana")
    async with browser(stack, cookies={"token": token}) as client:
        r = await client.get("/admin", follow_redirects=False)
    assert r.status_code == 403


async def test_admin_page_has_inbox_conversation_composer_announcement_and_logout(
    stack: Stack,
) -> None:
    token = await stack.register("boss", admin=True)
    async with browser(stack, cookies={"token": token}) as client:
        r = await client.get("/admin")
    assert r.status_code == 200
    page = Page(r.text)
    assert {"list", "log"} <= set(page.roles)
    assert {"Message", "Announcement"} <= set(page.labels)
    assert {"Send", "Announce", "Log out"} <= set(page.buttons)


async def test_chat_and_admin_pages_are_in_spanish_when_the_browser_prefers_it(
    stack: Stack,
) -> None:
    user = await stack.register("ana")
    admin = await stack.register("boss", admin=True)
    async with browser(stack, cookies={"token": user}, headers=SPANISH) as client:
        chat = Page((await client.get("/chat")).text)
    async with browser(stack, cookies={"token": admin}, headers=SPANISH) as client:
        inbox = Page((await client.get("/admin")).text)
    assert "Mensaje" in chat.labels
    assert {"Enviar", "Cerrar sesión"} <= set(chat.buttons)
    assert {"Mensaje", "Anuncio"} <= set(inbox.labels)
    assert {"Enviar", "Anunciar", "Cerrar sesión"} <= set(inbox.buttons)


# -- headers ------------------------------------------------------------------------------


def csp_directives(header: str) -> dict[str, list[str]]:
    directives: dict[str, list[str]] = {}
    for part in header.split(";"):
        words = part.split()
        if words:
            directives[words[0].lower()] = words[1:]
    return directives


async def page_responses(stack: Stack) -> list[httpx.Response]:
    user = await stack.register("ana")
    admin = await stack.register("boss", admin=True)
    responses = []
    async with browser(stack) as client:
        for path in ("/", "/login", "/register", "/chat", "/api-docs", "/no-such-page"):
            responses.append(await client.get(path, follow_redirects=False))
        responses.append(await client.post("/login", data={}, follow_redirects=False))
        responses.append(await post_login(client, "ana", "wrong password!!"))
    async with browser(stack, cookies={"token": user}) as client:
        responses.append(await client.get("/chat"))
        responses.append(await client.get("/admin"))
    async with browser(stack, cookies={"token": admin}) as client:
        responses.append(await client.get("/admin"))
    return responses


async def test_every_page_is_sent_with_csp_nosniff_and_no_framing(stack: Stack) -> None:
    responses = await page_responses(stack)
    assert {r.status_code for r in responses} >= {200, 302, 401, 403, 404}
    for r in responses:
        where = f"{r.request.method} {r.request.url.path} -> {r.status_code}"
        csp = csp_directives(r.headers.get("content-security-policy", ""))
        script_src = csp.get("script-src", csp.get("default-src"))
        assert script_src is not None, where
        assert "'unsafe-inline'" not in script_src, where
        assert "*" not in script_src and "'unsafe-eval'" not in script_src, where
        assert csp.get("frame-ancestors") == ["'none'"], where
        assert r.headers.get("x-content-type-options") == "nosniff", where
        assert "strict-transport-security" not in r.headers, where


async def test_hsts_is_sent_only_when_configured_for_https(make_stack: StackFactory) -> None:
    stack = await make_stack(cookie_secure=True)
    for r in await page_responses(stack):
        hsts = r.headers.get("strict-transport-security", "")
        assert hsts.startswith("max-age="), r.request.url.path
        assert int(hsts.split(";")[0].partition("=")[2]) > 0


# -- escaping and assets ------------------------------------------------------------------

EVIL = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"


@pytest.mark.parametrize(("admin", "path"), [(False, "/chat"), (True, "/admin")])
async def test_display_name_is_html_escaped_on_the_pages(
    stack: Stack, admin: bool, path: str
) -> None:
    token = await stack.register("evil", f"Eve {EVIL}", admin=admin)
    async with browser(stack, cookies={"token": token}) as client:
        r = await client.get(path)
    assert r.status_code == 200
    assert EVIL not in r.text
    assert ESCAPED in r.text


async def test_static_files_referenced_by_the_pages_are_served(stack: Stack) -> None:
    user = await stack.register("ana")
    admin = await stack.register("boss", admin=True)
    assets: set[str] = set()
    async with browser(stack) as client:
        for path in ("/login", "/register"):
            assets |= set(Page((await client.get(path)).text).assets)
    async with browser(stack, cookies={"token": user}) as client:
        assets |= set(Page((await client.get("/chat")).text).assets)
    async with browser(stack, cookies={"token": admin}) as client:
        assets |= set(Page((await client.get("/admin")).text).assets)
    assert any(a.startswith("/static/vendor/socket.io.min.js") for a in assets), assets
    async with browser(stack) as client:
        for src in sorted(assets):
            assert src.startswith("/") and not src.startswith("//"), src
            r = await client.get(src)
            assert r.status_code == 200, src
            assert r.content, src
            if src.split("?")[0].endswith(".js"):
                assert "javascript" in r.headers["content-type"], src


async def test_favicon_ico_is_served_for_urls_that_are_not_pages(stack: Stack) -> None:
    """Browsers ask for /favicon.ico by themselves (on /openapi.json, say): Tornado serves it
    from static/."""
    assert stack.http is not None
    r = await stack.http.get("/favicon.ico")
    assert r.status_code == 200 and r.content[:4] == b"\x00\x00\x01\x00"  # an ICO file
