"""The `dumps`/`loads` that python-socketio and python-engineio call: orjson, with the
standard library for what orjson refuses or reads differently (`services.json_input`), and
packets nested deeper than 32 levels refused as undecodable."""

from __future__ import annotations

import json
from typing import Any

import orjson

from services import json_input

JSONDecodeError = json.JSONDecodeError


def dumps(obj: Any, **_: Any) -> str:
    try:
        return orjson.dumps(obj).decode()
    except TypeError:
        return json.dumps(obj, separators=(",", ":"))


def loads(data: str | bytes, **_: Any) -> Any:
    return json_input.loads(data)
