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

from config.celery import CALLBACK_MERGE
from models import CallbackEvent, Check, CheckStatus
from models.base import utcnow
from models.db import session_scope
from tasks import common, metrics, policy
from tasks.app import app
from tasks.infra import INFRA_ERRORS, retry_after_infra_error
from tasks.status import refresh_job, strictest
from vendors import asr, gme, safejson, shumei, tupu
from vendors.errors import BadResponse, Disposition, VendorError

log = logging.getLogger("voxqueue.results")


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
    """A result, or (``auxInfo.errorCode``, with code 1100) a file the vendor never moderated:
    that one fails with the vendor's reason, never PASS."""
    error = result.error()
    if error is not None:
        common.fail(check, error.reason, error.summary())
        return True
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
        error = event.error()
        common.fail(check, error.reason, error.summary())
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
    """The vendor's result in a stored callback; :class:`BadResponse` when it cannot be read."""
    body = event.body
    if not isinstance(body, dict):
        raise BadResponse(event.vendor, "the stored callback is not an object")
    try:
        safejson.check_text(body)  # text no column can hold (a NUL: PostgreSQL refuses it)
    except safejson.UnsafeJSON as exc:
        raise BadResponse(event.vendor, str(exc)) from exc
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


@app.task(bind=True, name=CALLBACK_MERGE, acks_late=True, ignore_result=True, max_retries=None)
def merge(self, event_id: int) -> None:
    """Merge a stored callback into its check (idempotent). The database or the broker away:
    retried as every task is (``policy.INFRA``)."""
    try:
        _merge_event(self, event_id)
    except INFRA_ERRORS as error:
        raise retry_after_infra_error(self, [], error) from error


def _merge_event(task, event_id: int) -> None:
    with session_scope() as session:
        event = session.get(CallbackEvent, event_id)
        if event is None or event.state != "received":
            return
        check = find_check(session, event)
        if check is None:
            retries = task.request.retries  # it may come before its submission is recorded
            if not policy.CALLBACK_BEFORE_SUBMISSION.exhausted(retries):
                raise task.retry(countdown=policy.CALLBACK_BEFORE_SUBMISSION.countdown(retries + 1))
            event.state, event.note = "unknown", "no check has this vendor task id"
            metrics.count("callback_events", vendor=event.vendor, state="unknown")
            return
        event.check_id = check.id
        _merge(session, event, check)
        vendor, state = event.vendor, event.state
    metrics.count("callback_events", vendor=vendor, state=state)  # merged or ignored


def _merge(session, event: CallbackEvent, check: Check) -> None:
    """Apply the event, or end it ``ignored`` with the reason: an event is tried once."""
    mismatch = _not_this_checks(event, check)
    if mismatch:
        _ignore(event, mismatch)
        return
    try:
        changed = apply(session, check, parse_event(event))
        session.flush()  # a value the database refuses is this event's fault, found here
    except BadResponse as error:
        _ignore(event, f"unreadable callback: {error.message}")
        return
    except VendorError as error:
        changed = _vendor_error(check, event, error)
        if not changed:
            return
    except INFRA_ERRORS:
        raise  # ours, not the event's: the task retries
    except Exception as exc:  # noqa: BLE001  (a shape the parsers missed: ended, never retried forever)
        session.rollback()  # nothing half-applied
        _ignore(event, f"unreadable callback: {type(exc).__name__}")
        return
    event.state = "merged" if changed else "ignored"
    event.note = None if changed else f"check already {check.status}"
    event.merged_at = utcnow()


def _vendor_error(check: Check, event: CallbackEvent, error: VendorError) -> bool:
    """A callback that reports a failure: the check fails, or (Shumei, a code that means "for
    now") is asked again by polling. True when the check failed."""
    if error.disposition is Disposition.PENDING:
        _ignore(event, "not final yet")
        return False
    if check.status not in common.ACTIVE:
        _ignore(event, f"check already {check.status}")
        return False
    if error.retryable and check.service == "shumei":
        reschedule(check, utcnow())
        _ignore(event, f"{error.summary()}: asked again")
        return False
    common.fail(check, error.reason, error.summary())
    return True


def _ignore(event: CallbackEvent, note: str) -> None:
    event.state, event.note = "ignored", note[:500]


def _not_this_checks(event: CallbackEvent, check: Check) -> str | None:
    """Why a Shumei callback for this check's URL does not describe this check's file, if so.

    A result names its ``btId``; a failure has none (seed 004) and is matched by the
    ``requestId`` recorded at submission.
    """
    if event.vendor != "shumei":
        return None
    body = event.body if isinstance(event.body, dict) else {}
    bt_id, request_id = body.get("btId"), body.get("requestId")
    if bt_id and check.vendor_task_id and str(bt_id) != check.vendor_task_id:
        return "its btId is not this check's"
    recorded = check.result.get("requestId") if isinstance(check.result, dict) else None
    if not bt_id and recorded and check.status in common.ACTIVE and str(request_id) != recorded:
        return "its requestId is not this check's"
    return None


def reschedule(check: Check, now: dt.datetime) -> None:
    """The next poll: soon at first, then less often; past the deadline the check fails."""
    check.polls += 1
    if check.deadline_at is not None and _aware(check.deadline_at) <= now:
        common.fail(check, "result_timeout", f"{check.service}: no result before the deadline")
        return
    check.next_poll_at = now + dt.timedelta(seconds=policy.POLL.delay(check.polls))


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
