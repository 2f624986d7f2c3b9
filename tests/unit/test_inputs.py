"""services.inputs: every accepted and refused payload shape of the wire contract."""

from __future__ import annotations

from typing import Any

import pytest

from services.errors import AppError, Code
from services.inputs import (
    Credentials,
    Draft,
    HistoryQuery,
    ReadUpTo,
    Registration,
    Typing,
    role,
    sync_after,
)

MAX = 4000
NOT_OBJECTS = [None, [], ["text"], "text", 5, True]


def invalid(parse, *args, **kwargs) -> AppError:
    with pytest.raises(AppError) as caught:
        parse(*args, **kwargs)
    assert caught.value.code is Code.INVALID
    assert caught.value.message
    return caught.value


def draft(**body):
    return Draft.parse(body, max_text=MAX)


# mensaje_privado ---------------------------------------------------------------------------


def test_draft_with_text_only_goes_to_nobody_in_particular():
    assert draft(text="hola") == Draft(to=None, text="hola", client_msg_id=None)


@pytest.mark.parametrize("to", ["admins", "bob", "Bob.Smith_2", "a-b"])
def test_draft_accepts_admins_or_a_user_name(to):
    assert draft(to=to, text="hi").to == to


def test_draft_keeps_text_and_id_exactly():
    text = "  <b>bold</b> \n\t 😀 ñ  "
    assert draft(text=text, client_msg_id="Abc-1").text == text
    assert draft(text="x", client_msg_id="Abc-1").client_msg_id == "Abc-1"


def test_draft_text_length_counts_code_points():
    assert Draft.parse({"text": "😀" * 3}, max_text=3).text == "😀😀😀"
    assert Draft.parse({"text": "é" * MAX}, max_text=MAX).text == "é" * MAX
    invalid(Draft.parse, {"text": "😀" * 4}, max_text=3)
    invalid(Draft.parse, {"text": "x" * (MAX + 1)}, max_text=MAX)


@pytest.mark.parametrize(
    "text", ["", None, 5, ["hi"], {"t": 1}, "a\x00b", "\x00", "lone \ud800", "\udfff end"]
)
def test_draft_refuses_bad_text(text):
    invalid(draft, text=text)


def test_draft_refuses_missing_text():
    invalid(draft, to="admins")


@pytest.mark.parametrize("to", ["", "ab", "x" * 33, "bob smith", "bob!", "bób", 7, ["bob"], True])
def test_draft_refuses_bad_to(to):
    invalid(draft, to=to, text="hi")


def test_client_msg_id_up_to_64_characters():
    assert draft(text="x", client_msg_id="i" * 64).client_msg_id == "i" * 64
    assert draft(text="x", client_msg_id="😀" * 64).client_msg_id == "😀" * 64


@pytest.mark.parametrize("cid", ["i" * 65, "", 12, True, ["a"], "a\x00", "\ud800"])
def test_draft_refuses_bad_client_msg_id(cid):
    invalid(draft, text="x", client_msg_id=cid)


@pytest.mark.parametrize("body", NOT_OBJECTS)
def test_payloads_must_be_objects(body):
    invalid(Draft.parse, body, max_text=MAX)
    invalid(Typing.parse, body)
    invalid(ReadUpTo.parse, body)
    invalid(sync_after, body)
    invalid(Credentials.parse, body)
    invalid(Registration.parse, body, min_password=12)
    invalid(role, body)


# typing, read, sync ------------------------------------------------------------------------


@pytest.mark.parametrize("flag", [True, False])
def test_typing_takes_a_boolean(flag):
    assert Typing.parse({"typing": flag}) == Typing(to=None, typing=flag)
    assert Typing.parse({"to": "bob", "typing": flag}).to == "bob"


@pytest.mark.parametrize("flag", [None, 1, 0, "true", "false", []])
def test_typing_refuses_non_booleans(flag):
    invalid(Typing.parse, {"typing": flag})


def test_typing_refuses_bad_to():
    invalid(Typing.parse, {"to": "no spaces allowed", "typing": True})


def test_read_up_to_with_and_without_with():
    assert ReadUpTo.parse({"up_to": 7}) == ReadUpTo(with_=None, up_to=7)
    assert ReadUpTo.parse({"with": "bob", "up_to": 0}) == ReadUpTo(with_="bob", up_to=0)
    assert ReadUpTo.parse({"up_to": 2**63 - 1}).up_to == 2**63 - 1


@pytest.mark.parametrize("up_to", [None, -1, True, False, 1.0, "7", 2**63, [1]])
def test_read_refuses_bad_up_to(up_to):
    invalid(ReadUpTo.parse, {"up_to": up_to})


def test_read_refuses_bad_with():
    invalid(ReadUpTo.parse, {"with": "x", "up_to": 1})


def test_sync_after_defaults_to_zero():
    assert sync_after({}) == 0
    assert sync_after({"after": 41}) == 41


@pytest.mark.parametrize("after", [None, -1, True, 2.5, "41", 2**63])
def test_sync_refuses_bad_after(after):
    invalid(sync_after, {"after": after})


# GET /api/messages -------------------------------------------------------------------------


def test_history_defaults():
    assert HistoryQuery.parse(None, None, None) == HistoryQuery(with_=None, before=None, limit=50)
    assert HistoryQuery.parse(None, "", "") == HistoryQuery(with_=None, before=None, limit=50)


def test_history_refuses_an_empty_with():
    # Left out means "my own conversation"; given, it must name a user.
    invalid(HistoryQuery.parse, "", None, None)


def test_history_reads_with_before_and_limit():
    assert HistoryQuery.parse("bob", "120", "10") == HistoryQuery(with_="bob", before=120, limit=10)
    assert HistoryQuery.parse(None, "0", "1") == HistoryQuery(with_=None, before=0, limit=1)


@pytest.mark.parametrize("limit", ["200", "201", "1000", "1000000"])
def test_history_limit_above_200_is_200(limit):
    assert HistoryQuery.parse(None, None, limit).limit == 200


def test_history_huge_limit_is_still_200():
    assert HistoryQuery.parse(None, None, "9" * 30).limit == 200


@pytest.mark.parametrize("limit", ["0", "-1", "abc", "1.5", " 5", "٣"])
def test_history_refuses_bad_limit(limit):
    invalid(HistoryQuery.parse, None, None, limit)


@pytest.mark.parametrize("before", ["-1", "x", "1e3", "٣", "9" * 20])
def test_history_refuses_bad_before(before):
    invalid(HistoryQuery.parse, None, before, None)


def test_history_refuses_enormous_number_as_invalid():
    invalid(HistoryQuery.parse, None, "9" * 5000, None)


def test_history_refuses_bad_with():
    invalid(HistoryQuery.parse, "b", None, None)


# login, register, role ---------------------------------------------------------------------


def test_credentials_check_only_the_shape():
    # Old accounts may have names and passwords outside today's rules.
    creds = Credentials.parse({"username": "x y", "password": "short"})
    assert (creds.username, creds.password) == ("x y", "short")


@pytest.mark.parametrize(
    "body",
    [
        {"username": "bob"},
        {"password": "secret"},
        {"username": "", "password": "secret"},
        {"username": "bob", "password": ""},
        {"username": 5, "password": "secret"},
        {"username": "bob", "password": ["secret"]},
        {"username": "b" * 256, "password": "secret"},
        {"username": "bob", "password": "p" * 1025},
        {"username": "bob\x00", "password": "secret"},
        {"username": "\ud800bob", "password": "secret"},
    ],
)
def test_credentials_refuse_missing_or_odd_fields(body):
    invalid(Credentials.parse, body)


def registration(**overrides):
    body = {"username": "new.user_1", "name": "New User", "password": "p" * 12}
    body.update(overrides)
    return Registration.parse(body, min_password=12)


def test_registration_accepts_a_good_form_and_trims_the_name():
    form = registration(name="  Ana Núñez 😀 ")
    assert (form.username, form.name, form.password) == ("new.user_1", "Ana Núñez 😀", "p" * 12)


def test_registration_lengths_are_code_points():
    assert registration(password="🔑" * 12).password == "🔑" * 12
    assert registration(password="p" * 128).password == "p" * 128
    assert registration(name="ñ" * 100).name == "ñ" * 100
    assert registration(username="abc").username == "abc"
    assert registration(username="a" * 32).username == "a" * 32


REFUSED_REGISTRATION: dict[str, list[Any]] = {
    "username": ["ab", "a" * 33, "new user", "naïve", None],
    "name": ["", "   ", "n" * 101, "tab\there", "bell\x07", "nul\x00", "\ud800", 42],
    "password": ["p" * 11, "🔑" * 11, "p" * 129, "p" * 11 + "\x00", "p" * 11 + "\ud800", None],
}


@pytest.mark.parametrize(
    ("field", "value"), [(f, v) for f, values in REFUSED_REGISTRATION.items() for v in values]
)
def test_registration_refuses(field, value):
    invalid(registration, **{field: value})


def test_registration_minimum_follows_the_setting():
    body = {"username": "abc", "name": "A", "password": "p" * 8}
    assert Registration.parse(body, min_password=8).password == "p" * 8
    invalid(Registration.parse, body, min_password=9)


@pytest.mark.parametrize("rol", ["admin", "user"])
def test_role_accepts_admin_or_user(rol):
    assert role({"rol": rol}) == rol


@pytest.mark.parametrize("rol", [None, "", "Admin", "root", 1, ["admin"]])
def test_role_refuses_anything_else(rol):
    invalid(role, {"rol": rol})


# user names are matched whole: `$` would let a final newline through ------------------------

BAD_NAMES = ["alice\n", "alice\r\n", "\nalice", "ali\nce", "alice ", "alice\x00", "alicé", "ab"]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_registration_refuses_a_name_that_only_starts_well(name):
    form = {"username": name, "name": "Alice", "password": "x" * 12}
    err = invalid(Registration.parse, form, min_password=12)
    assert err.message.startswith("Username must be")


@pytest.mark.parametrize("name", BAD_NAMES)
def test_every_field_naming_a_user_refuses_a_name_that_only_starts_well(name):
    invalid(draft, to=name, text="hi")
    invalid(Typing.parse, {"to": name, "typing": True})
    invalid(ReadUpTo.parse, {"with": name, "up_to": 1})
    invalid(HistoryQuery.parse, name, None, None)
