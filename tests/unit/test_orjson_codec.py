"""sockets.orjson_codec: what orjson refuses is encoded and decoded as `json` would."""

from __future__ import annotations

import json
import math

import pytest

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
