"""Vendor results into checks, whether they come by polling or by callback.

Every result goes through :func:`apply`, which changes a check only while it is
active: the same callback twice, or a callback and a poll result for the same
check, yield one result. The merge task takes a stored callback event by id.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from sqlalchemy import select, update

from models import CallbackEvent, Check, CheckStatus
from models.base import utcnow
from models.db import session_scope
from tasks import common
from tasks.infra import INFRA_ERRORS
from tasks.status import refresh_job, strictest
from vendors import asr, gme, shumei, tupu
from vendors.errors import Disposition, VendorError
from workers.app import app

log = logging.getLogger("voxqueue.results")

UNKNOWN_RETRIES = 5  # a callback may arrive before its submission is recorded


def apply(session, check: Check, vendor_result: Any) -> bool:
    """Merge one parsed vendor result into ``check``; True if it changed the check.

    A check takes results only while it is active, except a Tupu stream: the vendor
    judges the audio it pulled until its end callback, so a violation counts in any
    state (:func:`_tupu`).
    """
    if check.service == "tupu":
        return _tupu(session, check, vendor_result)
    if check.status not in common.ACTIVE:
        return False
    handler = APPLY[check.service]
    return handler(session, check, vendor_result)


def _gme(session, check: Check, result: gme.GmeScanResult) -> bool:
    error = result.error()
    if error is not None:
        common.fail(check, error.reason, error.summary())
        return True
    if result.pending:  # a live stream that already hit is not pending: it is REJECT now
        return False
    common.complete(session, check, verdict=result.verdict, labels=result.labels,
                    result=result.raw)
    return True


def _shumei(session, check: Check, result: shumei.ShumeiResult) -> bool:
    common.complete(session, check, verdict=result.verdict, labels=result.labels,
                    text=result.text, result=shumei.redact(result.raw))
    return True


def _asr(session, check: Check, result: asr.AsrResult) -> bool:
    error = result.error()
    if error is not None:
        common.fail(check, error.reason, error.summary())
        return True
    common.complete(session, check, text=result.text, result=result.raw, verdict=None, labels=[])
    return True


STREAM_OPEN = (*common.ACTIVE, CheckStatus.CLOSING.value)  # not ended yet: the end callback ends it


def _tupu(session, check: Check, event: tupu.TupuEvent) -> bool:
    """A stream's callback. Violations and results raise its verdict (REJECT over REVIEW
    over PASS) whatever its state, even after its end; an error fails a stream still
    running; the end callback (one that carries ``status``) ends a running or closing one.

    The check is re-read under a row lock first: a violation and the end callback
    merged at the same moment would otherwise each write what it read, and the end
    could put back the verdict from before the violation.
    """
    lock_check(session, check)
    if event.kind in ("violation", "result"):
        return _take_verdict(session, check, event)
    if event.kind == "error":
        if check.status not in common.ACTIVE:  # closing: we stopped it; its end is near
            return False
        common.fail(check, "stream_error", f"tupu: code {event.code}")
        return True
    if check.status not in STREAM_OPEN:
        return False
    return finish_stream(session, check, ended_by="end callback", code=event.code)


def lock_check(session, check: Check) -> None:
    """Take the check's row lock (an UPDATE: PostgreSQL locks the row, SQLite takes its write
    lock), then read the row as it is now."""
    session.execute(update(Check.__table__).where(Check.__table__.c.id == check.id).values(updated_at=utcnow()))
    session.refresh(check)


def _take_verdict(session, check: Check, event: tupu.TupuEvent) -> bool:
    was, had = check.verdict, sorted(check.labels or [])
    verdict = strictest([was, event.verdict])
    labels = sorted(set(had) | set(event.labels))
    check.verdict, check.labels = verdict, labels
    if check.status in STREAM_OPEN:
        refresh_job(check.job)
        return True  # counted, even when it adds nothing: the stream is still being judged
    if (verdict, labels) == (was, had):
        return False  # the same violation again: nothing to change
    history = (check.result or {}).get("after_end", [])
    change = {"at": utcnow().isoformat(), "verdict": verdict, "was": was, "labels": event.labels}
    check.result = {**(check.result or {}), "after_end": [*history, change]}
    refresh_job(check.job)
    log.warning("tupu stream %s: a result after its end changed its verdict %s -> %s", check.vendor_task_id,
                was, verdict, extra={"check_id": check.id, "service": "tupu", "labels": event.labels})
    return True


def finish_stream(session, check: Check, *, ended_by: str, code: int | None = None) -> bool:
    """A live stream ended (its end callback, or the grace period after ``stream close``):
    done with the strictest verdict merged for it, PASS when nothing was found."""
    result = {**(check.result or {}), "ended_by": ended_by, **({"end_code": code} if code is not None else {})}
    common.complete(session, check, verdict=check.verdict or "PASS", labels=check.labels or [], result=result)
    return True


APPLY = {"gme": _gme, "shumei": _shumei, "asr": _asr, "tupu": _tupu}


def parse_event(event: CallbackEvent) -> Any:
    body = event.body
    if event.vendor == "gme":
        return gme.GmeScanResult.from_dict(body)
    if event.vendor == "shumei":
        return shumei.parse_callback(body)
    if event.vendor == "asr":
        return asr.parse_callback(body)
    return tupu.parse_event(body)


def find_check(session, event: CallbackEvent) -> Check | None:
    if event.check_id is not None:
        return session.get(Check, event.check_id)
    if not event.vendor_task_id:
        return None
    query = select(Check).where(Check.service == event.vendor, Check.vendor_task_id == event.vendor_task_id)
    return session.scalar(query)


@app.task(bind=True, name="voxqueue.callbacks.merge", acks_late=True, ignore_result=True, max_retries=None,
          autoretry_for=INFRA_ERRORS, retry_backoff=True, retry_backoff_max=60, retry_jitter=True)
def merge(self, event_id: int) -> None:
    """Merge a stored callback into its check (idempotent)."""
    with session_scope() as session:
        event = session.get(CallbackEvent, event_id)
        if event is None or event.state != "received":
            return
        check = find_check(session, event)
        if check is None:
            if self.request.retries < UNKNOWN_RETRIES:
                raise self.retry(countdown=2 ** self.request.retries)
            event.state, event.note = "unknown", "no check has this vendor task id"
            return
        event.check_id = check.id
        _merge(session, event, check)


def _merge(session, event: CallbackEvent, check: Check) -> None:
    try:
        changed = apply(session, check, parse_event(event))
    except VendorError as error:
        if error.disposition is Disposition.PENDING:
            event.state, event.note = "ignored", "not final yet"
            return
        common.fail(check, error.reason, error.summary())
        changed = True
    except (KeyError, TypeError, ValueError) as exc:
        event.state, event.note = "ignored", f"unreadable callback: {type(exc).__name__}"
        return
    event.state = "merged" if changed else "ignored"
    event.note = None if changed else f"check already {check.status}"
    event.merged_at = utcnow()


def reschedule(check: Check, now: dt.datetime, *, first: float = 2.0, cap: float = 60.0) -> None:
    """The next poll: soon at first, then less often; past the deadline the check fails."""
    check.polls += 1
    if check.deadline_at is not None and _aware(check.deadline_at) <= now:
        common.fail(check, "result_timeout", f"{check.service}: no result before the deadline")
        return
    check.next_poll_at = now + dt.timedelta(seconds=min(cap, first * 2 ** min(check.polls - 1, 10)))


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
