"""orjson behind the `dumps`/`loads` that python-socketio and python-engineio call, with the
standard library for what orjson refuses (integers beyond 64 bits, lone surrogates), so that
every input decodes and encodes as it would with `json`."""

from __future__ import annotations

import json
from typing import Any

import orjson

JSONDecodeError = json.JSONDecodeError


def dumps(obj: Any, **_: Any) -> str:
    try:
        return orjson.dumps(obj).decode()
    except TypeError:
        return json.dumps(obj, separators=(",", ":"))


def loads(data: str | bytes, **_: Any) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)
