"""What every service task does with its check, for tasks that work on ORM objects.

Claiming, checkpointing and finishing are in :mod:`tasks.leases` (Core
statements, also used directly by the SOE task); here the same claim loads the
check as an ORM object, and failing or completing it recomputes its job.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.orm import Session

from config.settings import Settings
from models import Check, CheckStatus
from models.base import utcnow
from models.db import session_scope
from tasks.leases import ACTIVE, Lease, finish, poisoned, release, renew, take_lease
from tasks.status import refresh_job
from vendors.errors import VendorError

__all__ = ["ACTIVE", "Lease", "claim", "complete", "fail", "fail_by_id", "finish", "poisoned", "release",
           "renew", "take_lease"]

log = logging.getLogger("voxqueue.tasks")


def claim(session: Session, check_id: int, settings: Settings) -> Check | None:
    """Take the check's lease and load it (ORM), or return None when it is finished, gone or held."""
    conn = session.connection()
    lease = take_lease(conn, check_id, settings)
    if lease is None or poisoned(conn, lease, settings):
        return None
    return session.get(Check, check_id, populate_existing=True)


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


def complete(session: Session, check: Check, **values: Any) -> None:
    for name, value in values.items():
        setattr(check, name, value)
    check.status = CheckStatus.DONE.value
    check.error = check.error_reason = None
    check.lease_until = None
    check.finished_at = utcnow()
    refresh_job(check.job)
