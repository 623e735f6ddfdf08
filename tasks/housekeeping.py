"""Housekeeping on the beat: work that lost its worker or its message is sent again.

Three kinds of stranded check, each re-enqueued (a duplicate message is
harmless: the claim lets one delivery work and drops the other):
- an active check whose lease lapsed: its worker died mid-work. It goes alone
  in its message, where the claim charges it the death (a group could not tell
  which of its checks killed the worker: :func:`tasks.leases.take_leases`);
- a pending check untouched for ``stale_seconds`` while its queue is empty:
  its message was lost (a broker restart without persistence);
- a running check with no lease and nothing submitted, untouched for
  ``stale_seconds`` plus the longest retry countdown: its retry message was lost.
A stored callback event not merged a minute later has its merge sent again.
"""

from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy import and_, or_, select

from config.broker import broker_url, redis_client
from config.settings import get_settings
from models import CallbackEvent, Check, CheckStatus
from models.base import utcnow
from models.db import session_scope
from tasks import streams
from tasks.common import ACTIVE
from tasks.dispatch import enqueue
from workers.app import app

log = logging.getLogger("voxqueue.housekeeping")

MAX_COUNTDOWN_S = 300


def stranded(limit: int = 2000) -> list[tuple[int, str, bool]]:
    """(check id, service, whether a dead delivery held it) for every stranded check."""
    settings = get_settings()
    now = utcnow()
    stale = now - dt.timedelta(seconds=settings.stale_seconds)
    lost_retry = stale - dt.timedelta(seconds=MAX_COUNTDOWN_S)
    idle = empty_queues()
    with session_scope() as session:
        rows = session.execute(
            select(Check.id, Check.service, Check.lease_until.is_not(None))
            .where(Check.status.in_(ACTIVE))
            .where(or_(
                Check.lease_until < now,
                and_(Check.status == CheckStatus.PENDING.value, Check.lease_until.is_(None),
                     Check.updated_at < stale, Check.service.in_(idle)),
                and_(Check.status == CheckStatus.RUNNING.value, Check.lease_until.is_(None),
                     Check.vendor_task_id.is_(None), Check.updated_at < lost_retry),
            ))
            .order_by(Check.id).limit(limit)
        )
        return [(check_id, service, bool(held)) for check_id, service, held in rows]


def empty_queues() -> list[str]:
    """Service queues with no message waiting in the broker."""
    from tasks.dispatch import TASK_FOR

    client = redis_client(broker_url(get_settings()))
    return [service for service in TASK_FOR if client.llen(service) == 0]


def unmerged_callbacks(limit: int = 1000) -> list[int]:
    """Callback events stored but not merged a minute later: their merge message was lost."""
    cutoff = utcnow() - dt.timedelta(seconds=60)
    with session_scope() as session:
        query = (select(CallbackEvent.id).where(CallbackEvent.state == "received")
                 .where(CallbackEvent.received_at < cutoff).order_by(CallbackEvent.id).limit(limit))
        return list(session.scalars(query))


@app.task(name="voxqueue.housekeeping.recover", acks_late=True, ignore_result=True)
def recover() -> int:
    """Re-enqueue stranded checks (the claim counts a delivery that died) and lost merges."""
    found = stranded()
    if found:
        log.warning("re-enqueueing stranded checks", extra={"count": len(found)})
    for held in (True, False):  # a dead delivery's checks alone; lost messages' checks grouped
        pairs = [(check_id, service) for check_id, service, was_held in found if was_held is held]
        if pairs:
            enqueue(pairs, alone=held)
    events = unmerged_callbacks()
    for event_id in events:
        app.send_task("voxqueue.callbacks.merge", args=[event_id], queue="callbacks")
    return len(found) + len(events) + streams.end_overdue()  # closed streams whose end callback never came
