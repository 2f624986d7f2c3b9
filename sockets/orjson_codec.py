"""orjson behind the `dumps`/`loads` that python-socketio and python-engineio call, with the
standard library for what orjson refuses (integers beyond 64 bits, lone surrogates, NaN) or
reads differently (an integer beyond 64 bits becomes a float), so that every input decodes
and encodes as it would with `json`."""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

JSONDecodeError = json.JSONDecodeError
# 20 digits in a row may be an integer beyond 64 bits, which orjson would read as a float
# (a run inside a string only sends that packet the slower way).
_LONG_DIGITS = re.compile(r"[0-9]{20}")
_LONG_DIGITS_BYTES = re.compile(rb"[0-9]{20}")


def dumps(obj: Any, **_: Any) -> str:
    try:
        return orjson.dumps(obj).decode()
    except TypeError:
        return json.dumps(obj, separators=(",", ":"))


def loads(data: str | bytes, **_: Any) -> Any:
    long_digits = _LONG_DIGITS if isinstance(data, str) else _LONG_DIGITS_BYTES
    if long_digits.search(data):  # type: ignore[arg-type]
        return json.loads(data)
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)
