"""Vendor results into checks, whether they come by polling or by callback.

Every result goes through :func:`apply`, which changes a check only while it is
active: the same callback twice, or a callback and a poll result for the same
check, yield one result. The merge task takes a stored callback event by id.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from sqlalchemy import select

from models import CallbackEvent, Check
from models.base import utcnow
from models.db import session_scope
from tasks import common
from tasks.infra import INFRA_ERRORS
from tasks.status import refresh_job
from vendors import asr, gme, shumei, tupu
from vendors.errors import Disposition, VendorError
from workers.app import app

log = logging.getLogger("voxqueue.results")

UNKNOWN_RETRIES = 5  # a callback may arrive before its submission is recorded


def apply(session, check: Check, vendor_result: Any) -> bool:
    """Merge one parsed vendor result into ``check``; True if it changed the check."""
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


def _tupu(session, check: Check, event: tupu.TupuEvent) -> bool:
    if event.kind == "error":
        common.fail(check, "stream_error", f"tupu: code {event.code}")
        return True
    if event.kind in ("violation", "result"):
        labels = sorted(set(check.labels or []) | set(event.labels))
        worst = "REJECT" if "REJECT" in (check.verdict, event.verdict) else (
            "REVIEW" if "REVIEW" in (check.verdict, event.verdict) else event.verdict)
        check.verdict, check.labels = worst, labels
        refresh_job(check.job)
        return True
    return finish_stream(session, check)


def finish_stream(session, check: Check) -> bool:
    """A live stream ended (end callback or ``voxqueue stream close``): it passes unless hit."""
    common.complete(session, check, verdict=check.verdict or "PASS", labels=check.labels or [])
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
