"""Housekeeping on the beat: work whose worker vanished is sent again."""

from __future__ import annotations

import logging

from sqlalchemy import select

from models import Check
from models.base import utcnow
from models.db import session_scope
from tasks.common import ACTIVE
from tasks.dispatch import enqueue
from workers.app import app

log = logging.getLogger("voxqueue.housekeeping")


def expired_leases(limit: int = 1000) -> list[tuple[int, str]]:
    """Checks still active whose lease lapsed: their worker died mid-work."""
    with session_scope() as session:
        rows = session.execute(
            select(Check.id, Check.service)
            .where(Check.status.in_(ACTIVE), Check.lease_until < utcnow())
            .order_by(Check.id)
            .limit(limit)
        )
        return [(check_id, service) for check_id, service in rows]


@app.task(name="voxqueue.housekeeping.recover", acks_late=True, ignore_result=True)
def recover() -> int:
    """Re-enqueue checks with an expired lease; the claim counts the lost delivery."""
    pairs = expired_leases()
    if pairs:
        log.warning("re-enqueueing checks whose worker vanished", extra={"count": len(pairs)})
        enqueue(pairs)
    return len(pairs)
