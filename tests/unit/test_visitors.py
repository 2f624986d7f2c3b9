"""Website visitors' pure parts: the HMAC check (constant time), the request shapes of
`POST /api/visitors`, generated names, visitor tokens and the unusable password."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import pytest

from config.settings import Secret
from models.visitor import UNUSABLE_PASSWORD, external_key
from services.auth import REFRESH_GRACE_SECONDS, Passwords, Tokens
from services.errors import AppError, Code
from services.inputs import (
    USERNAME,
    IdentifiedVisitor,
    NewVisitor,
    VisitorRefresh,
    email_address,
    visitor_request,
)
from services.visitors import generated_display_name, hash_matches, new_visitor_name
from tests.conftest import FAST_HASHER
from tests.unit.test_inputs import invalid

KEY = Secret("k" * 40)


def sign(external_id: str, key: str = "k" * 40) -> str:
    return hmac.new(key.encode(), external_id.encode(), hashlib.sha256).hexdigest()


# -- the HMAC ---------------------------------------------------------------------------------


def test_the_lowercase_hex_hmac_of_the_id_matches() -> None:
    assert hash_matches(KEY, "42", sign("42"))
    assert hash_matches(KEY, "ñ-ü 42", sign("ñ-ü 42"))


@pytest.mark.parametrize(
    "given",
    [
        None,
        "",
        sign("43"),
        sign("42").upper(),
        sign("42")[:-1],
        sign("42") + "0",
        sign("42", key="another key of at least 32 bytes!!"),
        "ñ" * 64,  # not ASCII: no exception, just no match
        "\udcff" * 64,  # a lone surrogate
    ],
)
def test_anything_else_does_not_match(given: str | None) -> None:
    assert not hash_matches(KEY, "42", given)


def test_without_a_secret_nothing_matches() -> None:
    assert not hash_matches(None, "42", sign("42"))
    assert not hash_matches(None, "42", sign("42", key=""))


def test_the_hash_is_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    compared: list[tuple[Any, Any]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)  # as services.visitors calls it
    assert hash_matches(KEY, "42", sign("42"))
    assert not hash_matches(KEY, "42", sign("43"))
    assert compared == [
        (sign("42").encode(), sign("42").encode()),
        (sign("42").encode(), sign("43").encode()),
    ]


def test_an_ids_key_is_exact() -> None:
    assert external_key("42") == hashlib.sha256(b"42").hexdigest()
    assert len({external_key(i) for i in ("42", "42 ", "A42", "a42")}) == 4


# -- request shapes ----------------------------------------------------------------------------


def test_the_three_requests() -> None:
    anonymous = visitor_request({})
    assert isinstance(anonymous, NewVisitor)
    assert (anonymous.profile.name, anonymous.profile.email) == (None, None)
    named = visitor_request({"name": " Ann ", "email": "ann@example.com"})
    assert isinstance(named, NewVisitor)
    assert (named.profile.name, named.profile.email) == ("Ann", "ann@example.com")
    assert visitor_request({"name": None, "email": None}) == anonymous
    refresh = visitor_request({"token": "a.b.c"})
    assert refresh == VisitorRefresh(token="a.b.c")
    known = visitor_request({"id": "42", "hash": "ab", "name": "Ann"})
    assert isinstance(known, IdentifiedVisitor)
    assert (known.external_id, known.hash, known.profile.name) == ("42", "ab", "Ann")
    # A hash that is not a string is kept as none at all: refused later as a wrong one.
    for given in ({"id": "42"}, {"id": "42", "hash": 5}, {"id": "42", "hash": None}):
        parsed = visitor_request(given)
        assert isinstance(parsed, IdentifiedVisitor) and parsed.hash is None


@pytest.mark.parametrize(
    "body",
    [
        None,
        [],
        "x",
        {"hash": "ab"},  # a hash without an id is never an anonymous visitor
        {"id": "", "hash": "ab"},
        {"id": "x" * 256, "hash": "ab"},
        {"id": 42, "hash": "ab"},
        {"id": "4\x002", "hash": "ab"},
        {"id": "\udcff", "hash": "ab"},
        {"token": ""},
        {"token": None},
        {"token": "a.b.c", "name": "Ann"},
        {"name": ""},
        {"name": "x" * 101},
        {"name": "a\nb"},
        {"email": "nope"},
    ],
)
def test_malformed_requests_are_invalid(body: Any) -> None:
    invalid(visitor_request, body)


@pytest.mark.parametrize(
    "address", ["ann@example.com", "a.b+c@mail.example.org", "ñ@ejemplo.es", "x" * 240 + "@e.io"]
)
def test_addresses_that_look_like_addresses(address: str) -> None:
    assert email_address(address) == address


@pytest.mark.parametrize(
    "address",
    [
        "",
        "ann",
        "ann@",
        "@example.com",
        "ann@example",
        "ann@.example.com",
        "ann@example.com.",
        "ann@exa mple.com",
        "a@b@example.com",
        "ann@example.com\n",
        "ann\x01@example.com",
        "x" * 245 + "@example.com",
        5,
        None,
    ],
)
def test_addresses_that_do_not(address: Any) -> None:
    invalid(email_address, address)


# -- names, tokens, passwords ----------------------------------------------------------------


def test_generated_names_fit_the_rules() -> None:
    names = {new_visitor_name() for _ in range(200)}
    assert len(names) == 200
    for name in names:
        assert USERNAME.fullmatch(name) and name.startswith("v_") and name == name.lower()
    for _ in range(50):
        shown = generated_display_name()
        assert shown.startswith("Visitor ") and len(shown) == 12 and shown[8:].isdigit()


def test_visitor_tokens_carry_vis_and_refresh_within_seven_days() -> None:
    now = [1_000_000.0]
    tokens = Tokens("s" * 40, 3600, clock=lambda: now[0])

    class Someone:
        user, name, rol = "v_abc", "Visitor 0001", "user"

    issued = tokens.issue(Someone(), ttl=60, visitor=True)  # type: ignore[arg-type]
    assert issued.claims.exp == 1_000_060 and issued.claims.visitor
    plain = tokens.issue(Someone())  # type: ignore[arg-type]
    assert not tokens.verify(plain.token).visitor
    assert tokens.verify(issued.token).visitor
    now[0] += 61
    with pytest.raises(AppError) as caught:
        tokens.verify(issued.token)
    assert caught.value.code is Code.UNAUTHENTICATED
    assert tokens.verify(issued.token, grace=REFRESH_GRACE_SECONDS).user == "v_abc"
    now[0] = 1_000_060 + REFRESH_GRACE_SECONDS
    with pytest.raises(AppError):
        tokens.verify(issued.token, grace=REFRESH_GRACE_SECONDS)


def test_no_password_matches_a_visitors_stored_value() -> None:
    passwords = Passwords(FAST_HASHER)
    for attempt in (UNUSABLE_PASSWORD, "", "visitor", "x" * 100):
        assert passwords.verify(UNUSABLE_PASSWORD, attempt) == (False, False)
    assert passwords.verify(FAST_HASHER.hash("a-long-password"), "a-long-password")[0]
