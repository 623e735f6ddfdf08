"""Log context: the job and service a thread is working on, stamped on every log line."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

_context: ContextVar[dict[str, Any] | None] = ContextVar("voxqueue_log_context", default=None)
FIELDS = ("job", "service", "check_id", "vendor_request_id")


@contextlib.contextmanager
def bound(**fields: Any) -> Iterator[None]:
    token = _context.set(current() | {k: v for k, v in fields.items() if v is not None})
    try:
        yield
    finally:
        _context.reset(token)


def current() -> dict[str, Any]:
    return _context.get() or {}


class ContextFilter(logging.Filter):
    """Copies the bound fields onto each record (unless the call gave its own)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in current().items():
            if not hasattr(record, name):
                setattr(record, name, value)
        return True


class TextFormatter(logging.Formatter):
    """``time level logger: message [job=... service=...]``."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        fields = [f"{name}={getattr(record, name)}" for name in FIELDS if hasattr(record, name)]
        return f"{text} [{' '.join(fields)}]" if fields else text
