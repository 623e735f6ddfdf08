"""``voxqueue retry``: failed checks back to pending (:func:`tasks.lifecycle.reset`), sent again."""

from __future__ import annotations

from sqlalchemy import select

from models import Batch, Check, CheckStatus, Job
from models.db import transaction
from tasks import lifecycle
from tasks.dispatch import available, enqueue


class UnknownBatch(LookupError):
    """``--batch`` names no batch: re-enqueueing nothing would hide a typo."""


def retry_failed(*, batch: str | None = None, service: str | None = None) -> int:
    checks, jobs, batches = Check.__table__, Job.__table__, Batch.__table__
    query = (
        select(checks.c.id, checks.c.service)
        .join(jobs, jobs.c.id == checks.c.job_id)
        .join(batches, batches.c.id == jobs.c.batch_id)
        .where(checks.c.status == CheckStatus.FAILED.value)
        .order_by(checks.c.id)
    )
    with transaction() as conn:
        if batch is not None:  # "" names no batch; it is not "every batch"
            if conn.scalar(select(batches.c.id).where(batches.c.name == batch)) is None:
                raise UnknownBatch(f"no batch named {batch!r}")
            query = query.where(batches.c.name == batch)
        if service:
            query = query.where(checks.c.service == service)
        found = [(check_id, name) for check_id, name in conn.execute(query) if available(name)]
        pairs = [(check_id, name) for check_id, name in found if lifecycle.reset(conn, check_id)]
    if pairs:  # nothing to send needs no broker
        enqueue(pairs)  # after the commit
    return len(pairs)
