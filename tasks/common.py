"""What every service task does with its check, for tasks that work on ORM objects.

Claiming, checkpointing and finishing on the hot path are in :mod:`tasks.leases`
(Core statements, no ORM objects) and re-exported here; here are failing and
completing a check loaded as an ORM object (results, polls), which recompute its job.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.orm import Session

from models import Check, CheckStatus
from models.base import utcnow
from models.db import session_scope
from tasks import metrics
from tasks.leases import ACTIVE, Lease, finish, poisoned, release, renew, take_lease
from tasks.status import refresh_job
from vendors.errors import VendorError

__all__ = ["ACTIVE", "Lease", "complete", "fail", "fail_by_id", "finish", "poisoned", "release", "renew",
           "take_lease", "unexpected"]

log = logging.getLogger("voxqueue.tasks")


def fail(check: Check, reason: str, message: str) -> None:
    check.status = CheckStatus.FAILED.value
    check.error_reason = reason[:64]
    check.error = message
    check.lease_until = None
    check.finished_at = utcnow()
    refresh_job(check.job)
    log.warning("check failed", extra={"check_id": check.id, "service": check.service, "reason": reason})


def fail_by_id(check_id: int, error: VendorError) -> None:
    with session_scope() as session:
        check = session.get(Check, check_id)
        if check is not None and check.status in ACTIVE:
            fail(check, error.reason, error.summary())


def unexpected(service: str, exc: Exception) -> VendorError:
    """An exception no rule expected (a bug, or an input that cannot be turned into a request):
    the check fails at once with the exception's class as its reason, instead of waiting for
    its lease to lapse and its deliveries to run out."""
    log.error("%s: unexpected %s: %s", service, type(exc).__name__, str(exc)[:200],
              exc_info=log.isEnabledFor(logging.DEBUG))
    metrics.count("checks_poisoned", service=service, cause="exception")
    return VendorError(service, type(exc).__name__, f"unexpected {type(exc).__name__}: {str(exc)[:200]}")


def complete(session: Session, check: Check, **values: Any) -> None:
    for name, value in values.items():
        setattr(check, name, value)
    check.status = CheckStatus.DONE.value
    check.error = check.error_reason = None
    check.lease_until = None
    check.finished_at = utcnow()
    refresh_job(check.job)
