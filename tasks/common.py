"""What every service task does with its check: the lifecycle's transitions
(:mod:`tasks.lifecycle`), re-exported, and the same transitions for a check loaded as an ORM
object (results, polls).

A check loaded in an ORM session changes state through the lifecycle's Core statements too,
on the session's own connection and transaction: its pending changes are flushed first, and
the check and its job are expired after, so what the session reads next is what was written.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.orm import Session, object_session

from models import Check
from models.db import transaction
from tasks import lifecycle, metrics
from tasks.lifecycle import ACTIVE, Lease, finish, poisoned, release, renew, take_lease
from vendors.errors import VendorError

__all__ = [
    "ACTIVE",
    "Lease",
    "complete",
    "fail",
    "fail_by_id",
    "finish",
    "poisoned",
    "release",
    "renew",
    "take_lease",
    "unexpected",
]

log = logging.getLogger("voxqueue.tasks")


def fail(check: Check, reason: str, message: str) -> None:
    """:func:`tasks.lifecycle.fail_check` for a check loaded in an ORM session."""
    _on_session(check, lambda conn: lifecycle.fail_check(conn, check.id, reason, message))


def complete(session: Session, check: Check, **values: Any) -> None:
    """:func:`tasks.lifecycle.complete_check` for a check loaded in an ORM session."""
    _on_session(check, lambda conn: lifecycle.complete_check(conn, check.id, **values))


def _on_session(check: Check, change) -> None:
    session = object_session(check)
    session.flush()
    job = check.__dict__.get("job")
    change(session.connection())
    session.expire(check)
    if job is not None:
        session.expire(job)


def fail_by_id(check_id: int, error: VendorError) -> None:
    with transaction() as conn:
        lifecycle.fail_check(conn, check_id, error.reason, error.summary())


def unexpected(service: str, exc: Exception) -> VendorError:
    """An exception no rule expected (a bug, or an input that cannot be turned into a request):
    the check fails at once with the exception's class as its reason, instead of waiting for
    its lease to lapse and its deliveries to run out."""
    log.error(
        "%s: unexpected %s: %s",
        service,
        type(exc).__name__,
        str(exc)[:200],
        exc_info=log.isEnabledFor(logging.DEBUG),
    )
    metrics.count("checks_poisoned", service=service, cause="exception")
    return VendorError(
        service, type(exc).__name__, f"unexpected {type(exc).__name__}: {str(exc)[:200]}"
    )
