"""Text from a manifest that every database, log line and vendor request can carry.

A value is refused, never repaired, when it holds a NUL (PostgreSQL text cannot store
one, and a path with one cannot be opened), a lone surrogate (it has no UTF-8 encoding:
SQLite, PostgreSQL and a vendor's request body all fail on it; JSON's ``"\\ud800"`` and a
file name that is not UTF-8 both produce one), or more than ``MAX_CHARS`` characters.
Reasons quote values through :func:`shown`, which keeps them on one line and short.
"""

from __future__ import annotations

import re
from typing import Any

MAX_CHARS = 131_072  # the csv module's own field limit; far above any reference text SOE takes
MAX_ID = 256  # Job.external_id is String(256)
MAX_BATCH = 200  # Batch.name is String(200)
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def problem(name: str, value: str) -> str | None:
    """Why ``value`` (the field ``name``) cannot be recorded, or None."""
    if len(value) > MAX_CHARS:
        return f"{name} is {len(value):,} characters; at most {MAX_CHARS:,}"
    bad = _UNSTORABLE.search(value)
    if bad is None:
        return None
    if bad.group() == "\x00":
        return f"{name} contains a NUL character (at character {bad.start() + 1})"
    return (f"{name} is not valid Unicode text: a lone surrogate U+{ord(bad.group()):04X} "
            f"at character {bad.start() + 1} (not UTF-8 in the source?)")


def shown(value: str, limit: int = 200) -> str:
    """``value`` for a reason or an error line: non-printable characters (newlines, escapes,
    NULs, lone surrogates) escaped, at most ``limit`` characters."""
    if len(value) > limit:
        value = value[:limit]
        cut = True
    else:
        cut = False
    if not value.isprintable():
        value = "".join(c if c.isprintable() else _escape(c) for c in value)
    if cut or len(value) > limit:
        value = value[:limit - 1] + "…"
    return value


def _escape(char: str) -> str:
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def kind(value: Any) -> str:
    """What a JSON value is, for a reason: "a list", "a number", ..."""
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    return {dict: "an object", list: "a list", str: "text"}.get(type(value), type(value).__name__)
