"""JSON from outside (HTTP bodies, Socket.IO packets): orjson's speed, the standard library's
results, and no nesting deeper than `MAX_DEPTH`.

orjson refuses integers beyond 64 bits, lone surrogates and NaN, and reads an integer beyond 64
bits as a float: those inputs go to the standard library, so every input decodes as it would
with `json`. Deep nesting is refused before anything walks it: the standard library would
raise `RecursionError` (not a `ValueError`) a thousand levels down.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

MAX_DEPTH = 32

# 20 digits in a row may be an integer beyond 64 bits, which orjson would read as a float
# (a run inside a string only sends that input the slower way).
_LONG_DIGITS = re.compile(r"[0-9]{20}")
_LONG_DIGITS_BYTES = re.compile(rb"[0-9]{20}")


class TooDeep(ValueError):
    """JSON nested deeper than `MAX_DEPTH` arrays and objects."""

    def __init__(self) -> None:
        super().__init__(f"JSON nested deeper than {MAX_DEPTH} levels")


def loads(data: str | bytes) -> Any:
    """`json.loads(data)`, or `ValueError` (`TooDeep` for nesting past `MAX_DEPTH`)."""
    if isinstance(data, str):
        openers = data.count("[") + data.count("{")
        long_digits = _LONG_DIGITS.search(data) is not None
    else:
        openers = data.count(b"[") + data.count(b"{")
        long_digits = _LONG_DIGITS_BYTES.search(data) is not None
    # Fewer openers than the limit (brackets inside strings count too): cannot be too deep.
    if openers > MAX_DEPTH and _too_deep(data):
        raise TooDeep()
    if not long_digits:
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass
    return json.loads(data)


def loads_ours(data: str | bytes) -> Any:
    """JSON this server wrote (the broker's messages between its processes): no depth check,
    which a text full of brackets would make a scan in Python."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)


def _too_deep(data: str | bytes) -> bool:
    """Whether arrays and objects outside strings nest past `MAX_DEPTH`: one pass over the
    text, for input with many brackets only."""
    text = data if isinstance(data, str) else data.decode("utf-8", "replace")
    depth = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return True
        elif char in "]}":
            depth -= 1
    return False
