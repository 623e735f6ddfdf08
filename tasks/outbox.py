"""Notification events, written in the transaction of the state change they tell about.

When a job becomes terminal (:func:`tasks.status.refresh_job_row`, the one place that decides
it), its ``job.finished`` event is inserted in the same transaction, so an event exists if and
only if the change committed: nothing to lose between the two, nothing sent for a change rolled
back. ``voxqueue.notify.deliver`` sends what is written (:mod:`tasks.notify`).

Only a job whose batch has a notification URL (or with ``VOXQUEUE_NOTIFY_URL`` set) costs
anything here: :func:`wanted` is a look at values the caller already holds.

``batch.finished`` is written by whichever transaction ends the batch's last open job. Two
jobs of a batch can end at once in two transactions on PostgreSQL, each still seeing the
other open; so the batch row is locked (``FOR NO KEY UPDATE``: it does not block inserts of
jobs that reference the batch) after the job's own change and before looking for open
jobs. The second transaction waits for the first to commit, then sees its job ended: exactly
one of them writes the event. SQLite serialises writers anyway.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, insert, select
from sqlalchemy.orm import Session, selectinload

from config.settings import get_settings
from models import TERMINAL_JOB, Batch, Job, Notification, NotificationState, NotifyEndpoint
from models.base import utcnow
from models.report import job_report
from models.stats import counts

JOB_FINISHED = "job.finished"
BATCH_FINISHED = "batch.finished"
CLI_OWNER = "cli"
_TERMINAL = [s.value for s in TERMINAL_JOB]


def owner_of_token(token_id: int) -> str:
    return f"token:{token_id}"


def wanted(endpoint_id: int | None) -> bool:
    """Whether a job of a batch with this endpoint (None: none of its own) is notified."""
    return endpoint_id is not None or get_settings().notify_url is not None


@dataclass(frozen=True)
class Target:
    url: str
    endpoint_id: int | None  # None: VOXQUEUE_NOTIFY_URL, signed with VOXQUEUE_NOTIFY_SECRET


def job_finished(conn: Connection, job_id: int, endpoint_id: int | None) -> None:
    """The job became terminal in the caller's transaction (its row already written): its event,
    and the batch's if no job of the batch is still open."""
    # A session on the caller's connection, inside a savepoint that it releases: closed without
    # that, a session joined to a transaction rolls the whole transaction back.
    with Session(bind=conn, join_transaction_mode="create_savepoint") as session:
        target = _target(session, endpoint_id)
        job = session.get(Job, job_id, options=[selectinload(Job.checks), selectinload(Job.batch)])
        if target is not None and job is not None:
            add_event(session, JOB_FINISHED, job.batch_id, job.id, target, job_report(job))
            batch_settled(session, job.batch, target)
        session.commit()


def batch_settled(session: Session, batch: Batch, target: Target) -> bool:
    """Write ``batch.finished`` if every job of the batch is terminal (under the batch's lock)."""
    session.execute(select(Batch.id).where(Batch.id == batch.id).with_for_update(key_share=True))
    still_open = select(Job.id).where(Job.batch_id == batch.id, Job.status.not_in(_TERMINAL)).limit(1)
    if session.scalar(still_open) is not None:
        return False
    found = counts(session, batch.name)
    if found is None or not found.total:
        return False
    add_event(session, BATCH_FINISHED, batch.id, None, target, found.as_object())
    return True


def target_of(session: Session, batch: Batch) -> Target | None:
    return _target(session, batch.notify_id)


def _target(session: Session, endpoint_id: int | None) -> Target | None:
    if endpoint_id is None:
        url = get_settings().notify_url
        return Target(url, None) if url else None
    url = session.scalar(select(NotifyEndpoint.url).where(NotifyEndpoint.id == endpoint_id))
    return Target(url, endpoint_id) if url else None


def add_event(session: Session, kind: str, batch_id: int, job_id: int | None, target: Target,
              data: dict[str, Any]) -> str:
    """Insert one event for delivery now; its id."""
    event_id = "evt_" + secrets.token_hex(16)
    body = json.dumps({"id": event_id, "type": kind, "created": int(time.time()), "data": data},
                      ensure_ascii=False, separators=(",", ":"))
    now = utcnow()
    session.execute(insert(Notification).values(
        event_id=event_id, type=kind, batch_id=batch_id, job_id=job_id, endpoint_id=target.endpoint_id,
        url=target.url, body=body, state=NotificationState.PENDING, attempts=0, next_attempt_at=now,
        retry_from=now))
    return event_id


@dataclass(frozen=True)
class Attached:
    endpoint_id: int | None
    secret: str | None  # set when the endpoint was made just now: shown to its owner this once


def attach(session: Session, batch: Batch, owner: str, url: str) -> Attached:
    """Make ``url`` the batch's notification URL, as ``owner`` gave it. The command line's URL
    equal to ``VOXQUEUE_NOTIFY_URL`` is that one (signed with ``VOXQUEUE_NOTIFY_SECRET``)."""
    from tasks.keys import notify_secret

    settings = get_settings()
    if owner == CLI_OWNER and url == settings.notify_url:
        batch.notify_id = None
        session.flush()
        return Attached(None, None)
    endpoint_id, made = _endpoint(session, owner, url)
    batch.notify_id = endpoint_id
    session.flush()
    return Attached(endpoint_id, notify_secret(endpoint_id, owner, url, settings) if made else None)


def _endpoint(session: Session, owner: str, url: str) -> tuple[int, bool]:
    """The endpoint's id, and whether this call made it (of two callers making it at once, one
    fails on the unique key: IntegrityError, and the API tries that request again)."""
    found = session.scalar(select(NotifyEndpoint.id).where(NotifyEndpoint.owner == owner, NotifyEndpoint.url == url))
    if found is not None:
        return found, False
    endpoint = NotifyEndpoint(owner=owner, url=url)
    session.add(endpoint)
    session.flush()
    return endpoint.id, True
