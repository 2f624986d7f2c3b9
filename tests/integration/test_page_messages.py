"""What the pages say when something is refused, in both languages: every error code a page can
show, and every error of the login and registration forms (each built from bad input), is a
sentence in English and a different one in Spanish."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from html.parser import HTMLParser

import argon2
import httpx
import pytest
import tornado.locale

from services.auth import Passwords
from services.errors import STATUS, Code
from services.inputs import LABELS
from tests.conftest import FAST_HASHER, PASSWORD, Stack, StackFactory
from tests.integration.test_pages import browser, xsrf_of

# The wording does not depend on the database.
on_sqlite = pytest.mark.parametrize("make_stack", ["sqlite"], indirect=True)

ENGLISH = {"Accept-Language": "en-US,en;q=0.9"}
SPANISH = {"Accept-Language": "es-ES,es;q=0.9"}
# Messages that are rightly the same in both languages. None so far: keep it short.
SAME_IN_BOTH: frozenset[str] = frozenset()


class Shown(HTMLParser):
    """The message a person reads: the form's alert, or else the error page's first paragraph."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.alerts: list[str] = []
        self.paragraphs: list[str] = []
        self._open: list[tuple[bool, list[str]]] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "p":
            self._open.append((dict(attrs).get("role") == "alert", []))

    def handle_data(self, data: str) -> None:
        for _, texts in self._open:
            texts.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "p" and self._open:
            alert, texts = self._open.pop()
            text = " ".join("".join(texts).split())
            (self.alerts if alert else self.paragraphs).append(text)

    @property
    def message(self) -> str:
        return (self.alerts or self.paragraphs)[0]


Act = Callable[[httpx.AsyncClient], Awaitable[httpx.Response]]


async def post_form(client: httpx.AsyncClient, path: str, **fields: str) -> httpx.Response:
    xsrf = await xsrf_of(client, path)
    return await client.post(path, data={"_xsrf": xsrf, **fields}, follow_redirects=False)


def registering(username: str = "lucia", name: str = "Lucía", password: str = PASSWORD) -> Act:
    return lambda client: post_form(
        client, "/register", username=username, name=name, password=password
    )


def logging_in(username: str = "ana", password: str = PASSWORD) -> Act:
    return lambda client: post_form(client, "/login", username=username, password=password)


def getting(path: str) -> Act:
    return lambda client: client.get(path, follow_redirects=False)


@dataclass(frozen=True)
class Case:
    """One thing a person can get wrong, the code it is refused with, and how to do it."""

    code: Code
    act: Act
    status: int | None = None  # when not the code's own status
    as_user: bool = False  # logged in as a user (else a visitor)

    @property
    def expected_status(self) -> int:
        return self.status or STATUS[self.code]


FORM_ERRORS = {
    "register: user name too short": Case(Code.INVALID, registering(username="lu")),
    "register: user name with a space": Case(Code.INVALID, registering(username="lu cia")),
    "register: user name too long": Case(Code.INVALID, registering(username="l" * 33)),
    "register: user name left empty": Case(Code.INVALID, registering(username="")),
    "register: name left empty": Case(Code.INVALID, registering(name="")),
    "register: name of spaces": Case(Code.INVALID, registering(name="   ")),
    "register: name too long": Case(Code.INVALID, registering(name="n" * 101)),
    "register: name with a tab": Case(Code.INVALID, registering(name="Lucía\tRuiz")),
    "register: name with a line break": Case(Code.INVALID, registering(name="Lucía\nRuiz")),
    "register: password too short": Case(Code.INVALID, registering(password="x" * 11)),
    "register: password too long": Case(Code.INVALID, registering(password="x" * 129)),
    "register: password left empty": Case(Code.INVALID, registering(password="")),
    "register: user name taken": Case(Code.EXISTS, registering(username="ANA")),
    "login: wrong password": Case(Code.BAD_CREDENTIALS, logging_in(password="wrong password!")),
    "login: unknown user": Case(Code.BAD_CREDENTIALS, logging_in(username="nobody")),
    "login: fields left empty": Case(Code.BAD_CREDENTIALS, logging_in(username="", password="")),
}
ERROR_PAGES = {
    "page: none at that address": Case(Code.NOT_FOUND, getting("/no-such-page")),
    "page: admins only": Case(Code.FORBIDDEN, getting("/admin"), as_user=True),
    "page: form post without its token": Case(
        Code.FORBIDDEN, lambda client: client.post("/login", data={"username": "ana"})
    ),
    "page: a method it does not have": Case(Code.INVALID, getting("/logout"), status=405),
}
# Codes no page shows: the case that would is a redirect, or exists on /api/ only.
NOT_ON_PAGES = {
    Code.UNAUTHENTICATED: "pages send a visitor without a valid token to /login",
    Code.UNSUPPORTED_MEDIA_TYPE: "only /api/ asks for a Content-Type",
    Code.CONFLICT: "a role change, made through /api/ (the inbox's buttons) or setrole",
    Code.TOO_LARGE: "an upload, made through /api/uploads only",
}
# Shown by tests of their own below, which need a server set up for them.
ON_PAGES_BELOW = {Code.RATE_LIMITED, Code.UNAVAILABLE}


def test_every_error_code_is_shown_by_a_case_or_on_no_page() -> None:
    shown = {case.code for case in (FORM_ERRORS | ERROR_PAGES).values()} | ON_PAGES_BELOW
    assert shown.isdisjoint(NOT_ON_PAGES)
    assert shown | set(NOT_ON_PAGES) == set(Code)


async def read_both(stack: Stack, act: Act, *, token: str | None = None) -> tuple[int, str, str]:
    """The status and the message shown, to an English and to a Spanish browser."""
    shown: list[tuple[int, str]] = []
    for language in (ENGLISH, SPANISH):
        cookies = {"token": token} if token else {}
        async with browser(stack, headers=language, cookies=cookies) as client:
            r = await act(client)
        assert r.headers["content-type"].startswith("text/html"), r.text
        shown.append((r.status_code, Shown(r.text).message))
    (status, english), (status_es, spanish) = shown
    assert status == status_es
    return status, english, spanish


def assert_translated(english: str, spanish: str) -> None:
    """Both sentences; the Spanish one not the English one, also when only the field's name in
    it is translated."""
    assert english[:1].isupper(), english
    assert spanish[:1].isupper(), spanish
    es = tornado.locale.get("es")
    for label in LABELS.values():
        spanish = spanish.replace(es.translate(label), label)
    assert spanish != english or english in SAME_IN_BOTH, f"untranslated: {english!r}"


@on_sqlite
@pytest.mark.parametrize("case", [*FORM_ERRORS, *ERROR_PAGES])
async def test_each_form_error_and_error_page_is_in_both_languages(stack: Stack, case: str) -> None:
    token = await stack.register("ana")
    what = (FORM_ERRORS | ERROR_PAGES)[case]
    status, english, spanish = await read_both(
        stack, what.act, token=token if what.as_user else None
    )
    assert status == what.expected_status, (case, english)
    assert_translated(english, spanish)


@on_sqlite
async def test_throttled_login_and_registration_say_so_in_both_languages(
    make_stack: StackFactory,
) -> None:
    stack = await make_stack(login_failures_per_minute=1, registrations_per_hour=1)
    await stack.services.auth.add_user("ana", "Ana", PASSWORD, admin=False)
    async with browser(stack) as client:
        assert (await logging_in(password="wrong password!")(client)).status_code == 401
        assert (await registering(username="first")(client)).status_code == 302
    for act in (logging_in(), registering(username="second")):
        status, english, spanish = await read_both(stack, act)
        assert status == STATUS[Code.RATE_LIMITED]
        assert_translated(english, spanish)


class StalledHasher(argon2.PasswordHasher):
    """Hashes only once `go` is set: the one hashing slot stays taken until then."""

    def __init__(self, go: threading.Event) -> None:
        super().__init__(time_cost=1, memory_cost=1024, parallelism=1)
        self.go = go

    def hash(self, password: str | bytes, *, salt: bytes | None = None) -> str:
        self.go.wait(10)
        return FAST_HASHER.hash(password, salt=salt)


@on_sqlite
async def test_a_busy_server_says_so_in_both_languages(stack: Stack) -> None:
    await stack.register("ana")
    go = threading.Event()
    passwords = Passwords(StalledHasher(go), slots=1, wait=0.05)
    stack.services.auth.passwords = passwords
    held = asyncio.create_task(passwords.new_hash("taking the only slot"))
    await asyncio.sleep(0.05)
    try:
        for act in (logging_in(), registering()):
            status, english, spanish = await read_both(stack, act)
            assert status == STATUS[Code.UNAVAILABLE]
            assert_translated(english, spanish)
    finally:
        go.set()
        await held


# -- the registration form's hints --------------------------------------------------------


class Described(HTMLParser):
    """Each input's `aria-describedby` target and the text of every element with an id."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.described_by: dict[str, str] = {}  # input name -> id
        self.attrs: dict[str, dict[str, str | None]] = {}  # input name -> its attributes
        self.texts: dict[str, str] = {}
        self._open: list[tuple[str, str, list[str]]] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "input" and a.get("name"):
            self.attrs[str(a["name"])] = a
            if a.get("aria-describedby"):
                self.described_by[str(a["name"])] = str(a["aria-describedby"])
        elif a.get("id"):
            self._open.append((tag, str(a["id"]), []))

    def handle_data(self, data: str) -> None:
        for _, _, texts in self._open:
            texts.append(data)

    def handle_endtag(self, tag: str) -> None:
        if self._open and self._open[-1][0] == tag:
            _, id_, texts = self._open.pop()
            self.texts[id_] = " ".join("".join(texts).split())

    def hint(self, name: str) -> str:
        return " ".join(self.texts[i] for i in self.described_by[name].split())


HINTS = {
    "en-US,en;q=0.9": {
        "username": "3-32 letters, digits, '_', '.' or '-'.",
        "name": "Up to 100 characters: the name the support team sees.",
        "password": "At least 15 characters.",
    },
    "es-ES,es;q=0.9": {
        "username": "De 3 a 32 letras, dígitos, '_', '.' o '-'.",
        "name": "Hasta 100 caracteres: el nombre que ve el equipo de soporte.",
        "password": "Al menos 15 caracteres.",
    },
}


@on_sqlite
@pytest.mark.parametrize("language", HINTS)
async def test_the_registration_form_states_each_rule_under_its_field(
    make_stack: StackFactory, language: str
) -> None:
    stack = await make_stack(password_min_length=15)
    async with browser(stack, headers={"Accept-Language": language}) as client:
        page = Described((await client.get("/register")).text)
        # the same hints stay when the form comes back with an error
        again = Described((await registering(password="too short")(client)).text)
    for form in (page, again):
        assert {name: form.hint(name) for name in HINTS[language]} == HINTS[language]
    assert page.attrs["password"].get("minlength") == "15"
    assert page.attrs["password"].get("maxlength") == "128"
    assert page.attrs["name"].get("maxlength") == "100"
