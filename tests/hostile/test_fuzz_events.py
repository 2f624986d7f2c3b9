"""Property-based fuzzing of every socket event's payload, through a real client.

Each test starts one server (SQLite, rate limit off so that valid drafts are not throttled)
and drives `FUZZ_EXAMPLES` generated payloads (default 200) through it, each from the user
or the admin socket at random, with an ack. Per event and run that is, by default:

- `mensaje_privado`: 200 drafts (real keys `to`/`text`/`client_msg_id` with hostile values,
  or any JSON-like value, or 0-3 arguments);
- `sync`, `read`, `typing`, `announcement`: 200 each, the same way with their own keys;
- unknown event names: 200 random names with random payloads.

So 1,200 emits in all. Values: None, bools, ints (huge, negative, past 64 bits), floats (NaN
and infinities included: python-socketio's JSON carries them), strings with lone surrogates,
U+0000, RTL marks, astral characters, 4,000-4,001 code points, SQL and HTML metacharacters,
and nested lists and dicts. (Bytes would go as a binary packet, which closes the connection by
design: see tests/hostile/test_transport_hardening.py.)

Every ack must be `{"ok": true, ...}` or `{"ok": false, "error": <a contract code>,
"message": <str>}` with no traceback or exception class in it; `unavailable` (the answer to
a crash on a healthy server) is not accepted; the socket stays connected; nothing is stored
unless a message was acked ok; no error is logged; and a normal message still works after.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from models.message import Message
from tests.conftest import Client, Stack, StackFactory

pytestmark = pytest.mark.parametrize("make_stack", ["sqlite"], indirect=True)

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "200"))
CODES = {"invalid", "forbidden", "not_found", "rate_limited"}  # `unavailable`: crash here
LEAK = re.compile(r"Traceback|\b[A-Z][A-Za-z]*(Error|Exception)\b|File \"|line \d+")
PACKET_BUDGET = 60_000  # below MAX_PACKET_CHARS: an oversized packet closes by design

FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,  # nothing written into the work tree
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)

BIG_INTS = [
    2**31,
    -(2**31) - 1,
    2**53 + 1,
    2**63 - 1,
    2**63,
    -(2**63),
    2**64,
    -(2**64),
    10**99,  # 100 characters: python-engineio's JSON refuses longer integers (see
    -(10**98),  # test_an_integer_of_over_100_digits_still_gets_an_ack)
]
SPECIAL_STRINGS = [
    "",
    " ",
    "\x00",
    "a\x00b",
    "\ud800",
    "a\udfffb",
    "\ud83d",
    "\u202eevil",
    "\ufeff",
    "\r\n",
    "x" * 4000,
    "x" * 4001,
    "é" * 4000,
    "𝄞" * 4000,
    "admins",
    "ana",
    "ANA",
    "boss",
    "nobody",
    "an_",
    "a%",
    "' OR 1=1 --",
    '"; DROP TABLE usuarios; --',
    "\\",
    "<script>alert(1)</script>",
    "__proto__",
    "constructor",
    "_placeholder",
    "NaN",
    "0",
    "-1",
]
ANY_CHAR = st.characters(exclude_categories=())  # surrogates and controls included
STRINGS = st.one_of(st.text(ANY_CHAR, max_size=30), st.sampled_from(SPECIAL_STRINGS))
LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from(BIG_INTS),
    st.floats(allow_nan=True, allow_infinity=True),
    STRINGS,
)
REAL_KEYS = ["to", "text", "client_msg_id", "after", "with", "up_to", "typing", "_placeholder"]
JSONISH = st.recursive(
    LEAVES,
    lambda kids: st.one_of(
        st.lists(kids, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(REAL_KEYS), STRINGS), kids, max_size=4),
    ),
    max_leaves=10,
)
NAMES = st.one_of(st.sampled_from(["admins", "ana", "ANA", "boss", "nobody", "an_"]), JSONISH)
IDS = st.one_of(st.integers(-5, 10**6), st.sampled_from(BIG_INTS), JSONISH)


def keyed(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    """Dicts with some of the event's real keys (hostile values) and maybe stray keys."""
    return st.builds(
        lambda real, extra: {**extra, **real},
        st.fixed_dictionaries({}, optional=fields),
        st.dictionaries(STRINGS, JSONISH, max_size=2),
    )


PAYLOADS = {
    "mensaje_privado": keyed(
        to=NAMES,
        text=st.one_of(STRINGS, JSONISH),
        client_msg_id=st.one_of(STRINGS, st.text(min_size=60, max_size=70), JSONISH),
    ),
    "sync": keyed(after=IDS),
    "read": keyed(**{"with": NAMES, "up_to": IDS}),
    "typing": keyed(to=NAMES, typing=st.one_of(st.booleans(), JSONISH)),
    "announcement": keyed(text=st.one_of(STRINGS, JSONISH)),
}


def arguments(payload: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """One argument (the usual case), or a tuple of 0-3 arguments."""
    return st.one_of(
        payload,
        payload,
        JSONISH,
        st.lists(st.one_of(payload, JSONISH), max_size=3).map(tuple),
    )


def wire_size(data: Any) -> int:
    def default(value: object) -> str:
        return "b" * (len(value) * 2 if isinstance(value, bytes) else 10)

    return len(json.dumps(data, default=default))


@dataclass
class Team:
    stack: Stack
    user: Client
    admin: Client
    examples: int = 0

    async def stored(self) -> int:
        async with self.stack.services.sessions() as db:
            return int((await db.execute(select(func.count()).select_from(Message))).scalar_one())


@pytest.fixture
async def team(make_stack: StackFactory) -> Team:
    stack = await make_stack(msg_rate=0.0)
    await stack.register("bob")  # a second user, a valid `to`/`with` for the admin
    user = await stack.connect(await stack.register("ana", "Ana"))
    admin = await stack.connect(await stack.register("boss", "Boss", admin=True))
    return Team(stack, user, admin)


def assert_contract_ack(ack: Any) -> None:
    assert isinstance(ack, dict), ack
    if ack.get("ok") is True:
        return
    assert ack.get("ok") is False, ack
    assert ack.get("error") in CODES, ack
    assert isinstance(ack.get("message"), str) and ack["message"], ack
    assert not LEAK.search(ack["message"]), ack


def same(a: Any, b: Any) -> bool:
    """Equality where NaN equals NaN."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return bool(a == b)


async def fuzz_one(team: Team, event: str, who: str, data: Any) -> None:
    assume(wire_size([event, data]) < PACKET_BUDGET)  # the name counts too
    team.examples += 1
    client = team.user if who == "user" else team.admin
    before = await team.stored()
    ack = await client.call(event, data, timeout=15)  # generous: CI machines are shared
    assert_contract_ack(ack)
    assert team.user.sio.connected and team.admin.sio.connected
    after = await team.stored()
    if event == "mensaje_privado" and ack["ok"]:
        sent = data[0] if isinstance(data, tuple) else data  # a 1-tuple is one argument
        assert isinstance(sent, dict)
        assert same(ack["message"]["text"], sent["text"])
        assert after - before in (0, 1)  # 0: a repeated client_msg_id
    else:
        assert after == before, (event, data, ack)


async def still_works(team: Team) -> None:
    ack = await team.user.call("mensaje_privado", {"text": "still here"})
    assert ack["ok"] is True
    reply = await team.admin.call("mensaje_privado", {"to": "ana", "text": "still here too"})
    assert reply["ok"] is True


@pytest.fixture
async def fuzzed(team: Team, caplog: pytest.LogCaptureFixture) -> AsyncIterator[Team]:
    """The team; after every example has run, a normal message still works both ways and
    nothing was logged as an error (a handler that crashed)."""
    caplog.set_level(logging.DEBUG)
    yield team
    await still_works(team)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]


@pytest.mark.parametrize("event", list(PAYLOADS))
@FUZZ
@given(who=st.sampled_from(["user", "admin"]), data=st.data())
async def test_any_payload_of_a_known_event_gets_a_contract_ack(
    fuzzed: Team, event: str, who: str, data: st.DataObject
) -> None:
    await fuzz_one(fuzzed, event, who, data.draw(arguments(PAYLOADS[event]), label="payload"))


RESERVED_OR_REAL = {*PAYLOADS, "connect", "disconnect"}


@FUZZ
@given(
    who=st.sampled_from(["user", "admin"]),
    name=st.one_of(st.text(ANY_CHAR, max_size=40), st.sampled_from(SPECIAL_STRINGS)),
    data=arguments(JSONISH),
)
async def test_any_unknown_event_name_gets_an_invalid_ack(
    fuzzed: Team, who: str, name: str, data: Any
) -> None:
    assume(name not in RESERVED_OR_REAL)
    await fuzz_one(fuzzed, name, who, data)


async def test_an_integer_of_over_100_digits_still_gets_an_ack(team: Team) -> None:
    before = await team.stored()
    ack = await team.user.call("mensaje_privado", {"text": "x", "n": 10**100}, timeout=3)
    assert_contract_ack(ack)
    assert team.user.sio.connected and await team.stored() == before + ack["ok"]
