"""Delivering notification events: signed, at least once, retried with backoff, off the pipeline's path.

Events are written by :mod:`tasks.outbox` in the transaction of the change they tell about.
Every ``VOXQUEUE_POLL_INTERVAL`` the beat sends ``voxqueue.notify.round``, which finds the
events due and sends one ``voxqueue.notify.deliver`` per URL (up to :data:`PER_TASK` events)
on the ``notify`` queue. A delivery claims its events with one conditional UPDATE (a lease, so
two rounds never send the same event at once), POSTs each one signed, and records the
outcome: 2xx is delivered; anything else (a status, a refused connection, a timeout after
``VOXQUEUE_NOTIFY_TIMEOUT``) is retried with a jittered backoff doubling from 1 s up to
``VOXQUEUE_NOTIFY_BACKOFF_MAX_SECONDS``, until ``VOXQUEUE_NOTIFY_RETRY_SECONDS`` (24 h) have
passed, and then the event is kept as ``dead`` (``voxqueue notify retry`` sends it again).
When one event of a URL fails, the others claimed with it wait as long as it does: a receiver
that is down costs one request per round, and its events never hold up a job (the pipeline
only writes rows; nothing waits on a receiver).

Each event keeps its id and its body across attempts (at least once: a receiver drops
duplicates by id). The signature is Stripe's scheme: ``Voxqueue-Signature: t=<unix>,v1=<hex>``,
HMAC-SHA256 over ``"<t>.<body>"`` with the URL's secret, ``t`` the time of the attempt.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlalchemy import and_, bindparam, func, or_, select, update

from config.celery import NOTIFY_DELIVER, NOTIFY_ROUND
from config.settings import Settings, get_settings
from models import Batch, Notification, NotificationState, NotifyEndpoint
from models.base import utcnow
from models.db import session_scope, transaction
from tasks import keys, policy
from tasks.app import app
from vendors import http
from vendors.errors import VendorError

log = logging.getLogger("voxqueue.notify")

QUEUE = "notify"
ROUND_TASK, DELIVER_TASK = NOTIFY_ROUND, NOTIFY_DELIVER
SIGNATURE_HEADER = "Voxqueue-Signature"
PER_TASK = 50  # events claimed by one delivery task
ROUND_LIMIT = 1000  # events looked at by one round (the next round takes the rest)
LEASE_S = 300  # a delivery task that died lets its events go again after this
TASK_BUDGET_S = 120.0  # a delivery task stops taking events after this and lets the rest go
notifications = Notification.__table__
PENDING, DELIVERED, DEAD = NotificationState.PENDING, NotificationState.DELIVERED, NotificationState.DEAD

_DUE = (notifications.c.state == PENDING, notifications.c.next_attempt_at <= bindparam("p_now"),
        or_(notifications.c.lease_until.is_(None), notifications.c.lease_until < bindparam("p_now")))
_CLAIM = (update(notifications).where(notifications.c.id.in_(bindparam("p_ids", expanding=True)), *_DUE)
          .values(lease_until=bindparam("p_lease"))
          .returning(notifications.c.id, notifications.c.event_id, notifications.c.url, notifications.c.endpoint_id,
                     notifications.c.body, notifications.c.attempts, notifications.c.retry_from))
_SET = update(notifications).where(notifications.c.id == bindparam("p_id"))
_RELEASE = (update(notifications).where(notifications.c.id.in_(bindparam("p_ids", expanding=True)))
            .values(lease_until=None, next_attempt_at=bindparam("p_next")))


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The ``Voxqueue-Signature`` header's value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


@app.task(name=ROUND_TASK, acks_late=True, ignore_result=True)
def deliver_round() -> int:
    """Send a delivery task for each URL that has events due; how many were sent."""
    groups = due_groups()
    for ids in groups:
        app.send_task(DELIVER_TASK, args=[ids], queue=QUEUE, retry=False)
    return len(groups)


def due_groups(limit: int = ROUND_LIMIT) -> list[list[int]]:
    """Ids of the events due, by URL and key, oldest first, :data:`PER_TASK` to a group."""
    query = (select(notifications.c.id, notifications.c.url, notifications.c.endpoint_id).where(*_DUE)
             .order_by(notifications.c.id).limit(limit))
    by_target: dict[tuple[str, int | None], list[int]] = {}
    with transaction() as conn:
        for row in conn.execute(query, {"p_now": utcnow()}):
            by_target.setdefault((row.url, row.endpoint_id), []).append(row.id)
    return [ids[i:i + PER_TASK] for ids in by_target.values() for i in range(0, len(ids), PER_TASK)]


@dataclass(frozen=True)
class Outcome:
    ok: bool
    status: int | None
    error: str | None


@app.task(name=DELIVER_TASK, acks_late=True, ignore_result=True)
def deliver(ids: list[int]) -> int:
    """Send the events ``ids`` (one URL's) in order; how many were delivered."""
    settings = get_settings()
    claimed = _claim(ids)
    started, sent = time.monotonic(), 0
    for i, row in enumerate(claimed):
        if time.monotonic() - started > TASK_BUDGET_S:
            _release([r.id for r in claimed[i:]], utcnow())
            break
        outcome = post(row, settings)
        if outcome.ok:
            _record(row.id, state=DELIVERED, attempts=row.attempts + 1, last_status=outcome.status,
                    last_error=None, delivered_at=utcnow())
            sent += 1
            continue
        retry_at = _failed(row, outcome, settings)
        _release([r.id for r in claimed[i + 1:]], retry_at)  # the URL is failing: the rest wait with it
        break
    return sent


def _claim(ids: list[int]) -> list:
    now = utcnow()
    with transaction() as conn:
        rows = conn.execute(_CLAIM, {"p_ids": list(ids), "p_now": now,
                                     "p_lease": now + dt.timedelta(seconds=LEASE_S)}).all()
    return sorted(rows, key=lambda r: r.id)


def post(row, settings: Settings) -> Outcome:
    """One attempt: the event signed with its URL's secret, POSTed within the timeout."""
    secret = secret_for(row.endpoint_id, settings)
    if secret is None:
        return Outcome(False, None, "VOXQUEUE_NOTIFY_SECRET is not set: nothing to sign with")
    body = row.body.encode()
    headers = {"Content-Type": "application/json", "User-Agent": "voxqueue-notify/1",
               SIGNATURE_HEADER: sign(secret, body, int(time.time()))}
    try:
        response = http.post("notify", row.url, data=body, headers=headers, timeout=settings.notify_timeout)
    except VendorError as error:  # 5xx, 429, or no answer: the vendor taxonomy's words, never the URL
        return Outcome(False, error.status, error.summary()[:300])
    if 200 <= response.status < 300:
        return Outcome(True, response.status, None)
    return Outcome(False, response.status, f"HTTP {response.status}")


def secret_for(endpoint_id: int | None, settings: Settings) -> str | None:
    if endpoint_id is None:
        return settings.notify_secret.get_secret_value() if settings.notify_secret else None
    with session_scope() as session:
        endpoint = session.get(NotifyEndpoint, endpoint_id)
        if endpoint is None:
            return None
        return keys.notify_secret(endpoint.id, endpoint.owner, endpoint.url, settings)


def _failed(row, outcome: Outcome, settings: Settings) -> dt.datetime:
    """Record a failed attempt: a retry after a backoff, or dead once the retry time is spent."""
    now = utcnow()
    attempts = row.attempts + 1
    retry_at = now + dt.timedelta(seconds=policy.notify(settings).delay(attempts))
    spent = (now - _aware(row.retry_from)).total_seconds() >= settings.notify_retry_seconds
    _record(row.id, state=DEAD if spent else PENDING, attempts=attempts, last_status=outcome.status,
            last_error=outcome.error, next_attempt_at=retry_at)
    host = urlsplit(row.url).hostname  # never the whole URL: it may carry a token
    log.warning("notification %s to %s failed (%s)%s", row.event_id, host, outcome.error,
                ": dead" if spent else f"; attempt {attempts + 1} in {(retry_at - now).total_seconds():.0f}s",
                extra={"event_id": row.event_id, "attempts": attempts})
    return retry_at


def _record(notification_id: int, **values) -> None:
    with transaction() as conn:
        conn.execute(_SET.values(lease_until=None, **values), {"p_id": notification_id})


def _release(ids: list[int], when: dt.datetime) -> None:
    if ids:
        with transaction() as conn:
            conn.execute(_RELEASE, {"p_ids": ids, "p_next": when})


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


# ---- `voxqueue notify status` and `voxqueue notify retry` ----

def by_state(batch: str | None = None) -> dict[str, int]:
    query = select(Notification.state, func.count()).group_by(Notification.state)
    with session_scope() as session:
        return dict(session.execute(_in_batch(query, batch)).all())


def listed(batch: str | None = None, state: str | None = None, limit: int = 50) -> list[Notification]:
    """The latest events (newest first), with their batch loaded."""
    query = select(Notification, Batch.name).join(Batch, Batch.id == Notification.batch_id)
    if batch is not None:
        query = query.where(Batch.name == batch)
    if state is not None:
        query = query.where(Notification.state == state)
    with session_scope() as session:
        return list(session.execute(query.order_by(Notification.id.desc()).limit(limit)).all())


def retry(batch: str | None = None, event_id: str | None = None) -> int:
    """Dead events (and those waiting for a retry) due again now, with another
    ``VOXQUEUE_NOTIFY_RETRY_SECONDS`` to go; how many."""
    now = utcnow()
    waiting = (Notification.state == PENDING, Notification.attempts > 0,  # failed, and not being sent now
               or_(Notification.lease_until.is_(None), Notification.lease_until < now))
    query = update(Notification).where(or_(Notification.state == DEAD, and_(*waiting)))
    query = _in_batch(query, batch)
    if event_id is not None:
        query = query.where(Notification.event_id == event_id)
    with session_scope() as session:
        result = session.execute(query.values(state=PENDING, next_attempt_at=now, retry_from=now, lease_until=None),
                                 execution_options={"synchronize_session": False})
        return result.rowcount


def _in_batch(query, batch: str | None):
    if batch is None:
        return query
    return query.where(Notification.batch_id.in_(select(Batch.id).where(Batch.name == batch)))
