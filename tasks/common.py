"""What every service task does with its check: claim, checkpoint, finish, fail.

A check is *claimed* with one conditional UPDATE, atomic on SQLite and
PostgreSQL alike: it succeeds only when the check is not terminal and no live
lease is held, so two deliveries of the same message never work at once. A
lease that is still set when the next delivery arrives means the previous one
died mid-work; those deaths are counted in ``deliveries`` and a check whose
messages keep killing workers ends ``failed`` instead of looping.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from sqlalchemy import case, or_, update
from sqlalchemy.orm import Session

from config.settings import Settings
from models import Check, CheckStatus, JobStatus
from models.base import utcnow
from models.db import session_scope
from tasks.status import refresh_job
from vendors.errors import VendorError

log = logging.getLogger("voxqueue.tasks")

ACTIVE = (CheckStatus.PENDING.value, CheckStatus.RUNNING.value)


def claim(session: Session, check_id: int, settings: Settings) -> Check | None:
    """Take the check's lease, or return None when it is finished, gone or held."""
    now = utcnow()
    result = session.execute(
        update(Check)
        .where(Check.id == check_id, Check.status.in_(ACTIVE))
        .where(or_(Check.lease_until.is_(None), Check.lease_until < now))
        .values(
            status=CheckStatus.RUNNING.value,
            lease_until=now + dt.timedelta(seconds=settings.lease_seconds),
            deliveries=case((Check.lease_until.is_not(None), Check.deliveries + 1), else_=Check.deliveries),
        )
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        return None
    check = session.get(Check, check_id, populate_existing=True)
    if check.deliveries >= settings.max_deliveries:
        fail(check, "poison", f"its worker died {check.deliveries} times while processing it")
        return None
    if check.job.status == JobStatus.PENDING.value:  # a claim only ever moves a job to running
        check.job.status = JobStatus.RUNNING.value
    return check


def renew(check_id: int, settings: Settings, **values: Any) -> None:
    """Record progress and extend the lease in one short transaction."""
    lease = utcnow() + dt.timedelta(seconds=settings.lease_seconds)
    with session_scope() as session:
        session.execute(
            update(Check).where(Check.id == check_id).values(lease_until=lease, **values)
            .execution_options(synchronize_session=False)
        )


def release(check_id: int, **values: Any) -> None:
    """Give the lease back (the work will continue in a retry), recording ``values``."""
    with session_scope() as session:
        session.execute(
            update(Check).where(Check.id == check_id).values(lease_until=None, **values)
            .execution_options(synchronize_session=False)
        )


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
