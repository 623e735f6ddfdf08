"""Ending live-stream jobs: ``voxqueue stream close ID`` (Tupu's close API), and the grace period.

Tupu keeps judging the audio it already pulled after it accepts a close, and a
task has ended only when a callback carries ``status`` (seed 001). So a close
does not finish the check: it becomes ``closing`` (its job still runs), every
violation that arrives still raises its verdict (:func:`tasks.results._tupu`),
and Tupu's end callback makes it ``done``. When that callback does not come,
housekeeping ends the stream ``VOXQUEUE_TUPU_CLOSE_GRACE_SECONDS`` after the
close (:func:`end_overdue`), with the verdict it has; a violation after that
still raises it.

The close call is retried as every vendor call is: a bounded number of attempts
with jittered backoff, through the shared rate limit and circuit breaker; waiting
on those spends no attempt. A close that cannot be completed leaves the stream
running, so it can be closed again.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select

from config.settings import get_settings
from models import Batch, Check, CheckStatus, Job
from models.base import utcnow
from models.db import session_scope, transaction
from tasks import breaker, clients, lifecycle, metrics, policy
from tasks.ratelimit import Throttled
from tasks.results import finish_stream, lock_check
from vendors.errors import Disposition, VendorError

log = logging.getLogger("voxqueue.streams")

VENDOR = "tupu"
checks = Check.__table__


class StreamError(Exception):
    """The stream cannot be closed (unknown id, ambiguous id, not a Tupu stream, the vendor refused)."""


@dataclass(frozen=True)
class Closed:
    """What ``stream close`` found or did: the check's state and the verdict it has so far."""

    status: str  # "closing", or "done" once the stream ended
    verdict: str | None

    def line(self, job_id: str) -> str:
        verdict = self.verdict or "PASS"
        if self.status == CheckStatus.DONE.value:
            return f"stream {job_id} closed: {verdict}"
        grace = get_settings().tupu_close_grace_seconds
        return (f"stream {job_id} closing: verdict so far {verdict}; the final verdict follows "
                f"Tupu's end callback (or the {grace:g} s grace period)")


def find_stream(session, job_id: str, batch: str | None) -> Check:
    query = (select(Check).join(Job).join(Batch)
             .where(Job.external_id == job_id, Check.service == VENDOR))
    if batch:
        query = query.where(Batch.name == batch)
    found = list(session.scalars(query))
    if not found:
        raise StreamError(f"no tupu stream job with id {job_id!r}" + (f" in batch {batch!r}" if batch else ""))
    if len(found) > 1:
        raise StreamError(f"id {job_id!r} is in several batches: name one with --batch")
    return found[0]


def close(job_id: str, batch: str | None = None, *, sleep: Callable[[float], None] = time.sleep) -> Closed:
    """Close the stream at Tupu and mark its check ``closing``; harmless on a closing or ended one."""
    with session_scope() as session:
        check = find_stream(session, job_id, batch)
        if check.status in (CheckStatus.CLOSING.value, CheckStatus.DONE.value):
            return Closed(check.status, check.verdict)  # closed before: nothing to ask Tupu again
        if check.status == CheckStatus.FAILED.value:
            raise StreamError(f"stream {job_id!r} failed: {check.error}")
        if not check.vendor_task_id:
            raise StreamError(f"stream {job_id!r} is not submitted to tupu yet: close it once it runs")
        check_id, task_id = check.id, check.vendor_task_id
    try:
        close_at_tupu(task_id, sleep=sleep)  # the vendor first, then our record
    except VendorError as error:
        raise StreamError(f"stream {job_id!r} not closed: {error.summary()}; it is still running: "
                          "run `voxqueue stream close` again") from error
    return mark_closing(check_id)


def close_at_tupu(task_id: str, *, sleep: Callable[[float], None] = time.sleep) -> None:
    """Tupu's close call, retried like every vendor call; raises the last error when it gives up."""
    client = clients.tupu(get_settings(), clients.slot(VENDOR))  # a slot per close call
    attempts, paused = 0, 0.0
    while True:
        try:
            _close_once(client, task_id)
            return
        except VendorError as error:
            if not error.retryable:
                raise
            if error.disposition is Disposition.THROTTLED:  # waiting spends no attempt, within a budget
                wait = error.retry_after or policy.STREAM_CLOSE.delay(attempts + 1)
                paused += wait
                if paused > policy.STREAM_CLOSE_PAUSE_BUDGET_S:
                    raise
            else:
                attempts += 1
                if policy.STREAM_CLOSE.exhausted(attempts):
                    raise VendorError(VENDOR, error.reason, f"gave up after {attempts} attempts: {error.message}",
                                      code=error.code, status=error.status) from error
                wait = policy.STREAM_CLOSE.delay(attempts)
            log.debug("tupu close failed, again in %.1f s: %s", wait, error.summary())
            metrics.count("vendor_retries", vendor=VENDOR, scope="request")
        sleep(wait)


def _close_once(client, task_id: str) -> None:
    """One close call through the circuit breaker and the shared limit; the breaker counts its outcome."""
    try:
        breaker.check(VENDOR)
        client.close_stream(task_id)
    except (Throttled, breaker.CircuitOpen) as pause:
        raise VendorError(VENDOR, "paused", str(pause).removeprefix(f"{VENDOR}: "),
                          disposition=Disposition.THROTTLED, retry_after=pause.wait) from pause
    except VendorError as error:
        metrics.vendor_error(VENDOR, error)
        breaker.breaker().record(VENDOR, error)
        raise
    breaker.breaker().record(VENDOR, None)


def mark_closing(check_id: int) -> Closed:
    """A running stream becomes ``closing`` (one conditional UPDATE: an end callback merged
    meanwhile has made it ``done``, and stays so); what it is now."""
    with transaction() as conn:
        lifecycle.close(conn, check_id)
        now = select(checks.c.status, checks.c.verdict).where(checks.c.id == check_id)
        row = conn.execute(now).one()
        return Closed(row.status, row.verdict)


def end_overdue(limit: int = 500) -> int:
    """End the streams closing for longer than the grace period, whose end callback did not
    come: done with the verdict they have (a later violation still raises it). Returns how many."""
    grace = get_settings().tupu_close_grace_seconds
    cutoff = utcnow() - dt.timedelta(seconds=grace)
    with session_scope() as session:
        overdue = list(session.scalars(
            select(Check.id).where(Check.status == CheckStatus.CLOSING.value, Check.closed_at < cutoff)
            .order_by(Check.id).limit(limit)))
    ended = 0
    for check_id in overdue:
        with session_scope() as session:
            check = session.get(Check, check_id)
            lock_check(session, check)
            if check.status != CheckStatus.CLOSING.value:  # its end callback came meanwhile
                continue
            finish_stream(session, check, ended_by=f"no end callback {grace:g} s after the close")
            ended += 1
            log.warning("tupu stream %s ended without its end callback, %g s after the close: %s",
                        check.vendor_task_id, grace, check.verdict,
                        extra={"check_id": check_id, "service": VENDOR})
    return ended
