"""JSON from strangers: bounded nesting, finite numbers, text every database can store.

``json.loads`` recurses once per level of nesting, and so does everything that walks
the result afterwards (copies, redaction, merges): a body nested 10,000 deep raises
``RecursionError`` in the parser, one 500 deep in the code after it. The depth is
checked on the raw text first, with regular expressions (no recursion, linear time).
Vendor bodies nest a handful of levels; :data:`MAX_DEPTH` leaves room.

Also refused: ``NaN``/``Infinity`` and numbers that overflow to infinity (``1e999``),
which no JSON column takes back; NUL characters and lone surrogates in strings, which
PostgreSQL text cannot hold and UTF-8 cannot encode.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

MAX_DEPTH = 32

_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_INNERMOST = re.compile(rb"\{[^\[\]{}]*\}|\[[^\[\]{}]*\]")
_BRACKETS = re.compile(rb"[\[\]{}]")


class UnsafeJSON(ValueError):
    """Not JSON, or JSON that the rest of the pipeline must not be handed (says why)."""


def depth_exceeds(raw: bytes, limit: int = MAX_DEPTH) -> bool:
    """Whether brackets outside strings nest deeper than ``limit`` (or do not balance)."""
    text = _STRING.sub(b"", raw)
    if text.count(b"[") + text.count(b"{") <= limit:
        return False
    for _ in range(limit):
        text, removed = _INNERMOST.subn(b"", text)
        if not removed:
            break
    return _BRACKETS.search(text) is not None


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise UnsafeJSON("a number out of range")
    return value


def _no_constant(name: str) -> float:
    raise UnsafeJSON(f"{name} is not JSON")


def loads(data: bytes | str, max_depth: int = MAX_DEPTH) -> Any:
    """Parse ``data`` or raise :class:`UnsafeJSON` (a ``ValueError``)."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    if depth_exceeds(raw, max_depth):
        raise UnsafeJSON(f"nested deeper than {max_depth} levels")
    try:
        value = json.loads(raw, parse_float=_finite, parse_constant=_no_constant)
    except UnsafeJSON:
        raise
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise UnsafeJSON("not JSON") from exc
    check_text(value)
    return value


def check_text(value: Any) -> None:
    """Refuse NUL characters and lone surrogates anywhere in keys or strings."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack += item.keys()
            stack += item.values()
        elif isinstance(item, list):
            stack += item
        elif isinstance(item, str):
            _check_string(item)


def _check_string(text: str) -> None:
    if "\x00" in text:
        raise UnsafeJSON("a NUL character")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise UnsafeJSON("a lone surrogate") from exc
