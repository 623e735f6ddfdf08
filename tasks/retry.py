"""``voxqueue retry``: failed checks back to pending, and enqueued again."""

from __future__ import annotations

from sqlalchemy import select

from models import Batch, Check, CheckStatus, Job
from models.db import session_scope
from tasks.dispatch import available, enqueue
from tasks.status import refresh_job


class UnknownBatch(LookupError):
    """``--batch`` names no batch: re-enqueueing nothing would hide a typo."""


def retry_failed(*, batch: str | None = None, service: str | None = None) -> int:
    with session_scope() as session:
        query = select(Check).join(Job).join(Batch).where(Check.status == CheckStatus.FAILED.value)
        if batch is not None:  # "" names no batch; it is not "every batch"
            if session.scalar(select(Batch.id).where(Batch.name == batch)) is None:
                raise UnknownBatch(f"no batch named {batch!r}")
            query = query.where(Batch.name == batch)
        if service:
            query = query.where(Check.service == service)
        checks = [c for c in session.scalars(query) if available(c.service)]
        for check in checks:
            check.status = CheckStatus.PENDING.value
            check.attempts = check.deliveries = 0
            check.error = check.error_reason = check.finished_at = None
            check.session_id, check.chunks_sent = None, 0  # a failed SOE session starts anew
            refresh_job(check.job)
        pairs = [(c.id, c.service) for c in checks]
    if pairs:  # nothing to send needs no broker
        enqueue(pairs)  # after the commit
    return len(pairs)
