"""sockets.orjson_codec: what orjson refuses is encoded and decoded as `json` would."""

from __future__ import annotations

import json
import math

import pytest

from services import json_input
from sockets import orjson_codec


@pytest.mark.parametrize(
    "value",
    [
        {"text": "hola ñ", "id": 7, "ok": True},
        [2**64, -(2**70)],  # beyond 64 bits
        "lone \ud800 surrogate",
    ],
)
def test_dumps_round_trips_what_json_does(value: object) -> None:
    assert json.loads(orjson_codec.dumps(value)) == value
    assert orjson_codec.loads(orjson_codec.dumps(value)) == value


def test_loads_accepts_what_json_accepts() -> None:
    assert orjson_codec.loads("[123456789012345678901234567890]") == [
        123456789012345678901234567890
    ]
    assert orjson_codec.loads('"\\ud800"') == "\ud800"
    assert math.isnan(orjson_codec.loads("[NaN]")[0])
    assert orjson_codec.loads(b'{"a": 1}') == {"a": 1}


def test_invalid_json_still_raises_a_decode_error() -> None:
    with pytest.raises(orjson_codec.JSONDecodeError):
        orjson_codec.loads("[1,")


@pytest.mark.parametrize("data", ["[" * 33 + "]" * 33, '{"a":' * 33 + "1" + "}" * 33])
def test_nesting_past_32_levels_is_refused_as_a_value_error(data: str) -> None:
    for given in (data, data.encode()):
        with pytest.raises(json_input.TooDeep):
            orjson_codec.loads(given)


def test_nesting_of_100_000_levels_is_refused_without_recursion() -> None:
    with pytest.raises(json_input.TooDeep):
        orjson_codec.loads("[" * 100_000 + "]" * 100_000)
    with pytest.raises(json_input.TooDeep):  # the standard library's path (long digits)
        json_input.loads("[" * 100_000 + "1" * 30 + "]" * 100_000)


def test_32_levels_and_brackets_inside_strings_are_fine() -> None:
    nested: list[object] = []
    for _ in range(31):
        nested = [nested]
    assert orjson_codec.loads("[" * 32 + "]" * 32) == nested
    brackets = '["' + "[{" * 100 + '", {"a": "]]\\"[["}]'
    assert orjson_codec.loads(brackets) == ["[{" * 100, {"a": ']]"[['}]
