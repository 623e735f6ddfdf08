"""SOE async mode (``soe_mode: async``): a session whose chunks are all in, its result polled.

With ``IsAsync=1`` the final chunk's answer carries no score. The SOE task then leaves
the check ``running`` with ``vendor_task_id`` (the session id), ``next_poll_at`` and
``deadline_at`` (the end of the vendor's result window), as a moderation check waits
for its vendor; the beat's round (:func:`tasks.poll.poll_soe`) calls :func:`poll_one`
for each check whose poll time has come: ``IsQuery=1`` until ``Status`` is
``Finished``. Past the window, or when the vendor has lost the session, the check
starts again with a new session (an attempt spent), sent to the SOE queue.

The SDK calls async mode "not recommended in general": it is never the default.
"""

from __future__ import annotations

import datetime as dt
import logging

from config.settings import Settings
from models import Check, CheckStatus
from models.base import utcnow
from models.db import session_scope
from tasks import clients, common, metrics, policy
from tasks.dispatch import enqueue
from tasks.soe import client, new_session_id, params_for, raw_result, scores_of
from vendors.errors import Disposition, VendorError

log = logging.getLogger("voxqueue.soe")


def poll_one(check_id: int, settings: Settings) -> bool:
    """One ``IsQuery`` for an async session waiting on the beat; True when the vendor was asked."""
    with session_scope() as session:
        check = session.get(Check, check_id)
        if not _waiting(check):
            return False
        session_id, options = check.vendor_task_id, dict(check.job.options or {})
        expired = check.deadline_at is not None and _aware(check.deadline_at) <= utcnow()
    if expired:
        restart(check_id, settings, "result_expired", "soe: no result within the vendor's result window")
        return False
    try:
        soe = client(settings, clients.slot("soe", max_wait=5.0))
        result = soe.query(session_id, params_for(options))
    except VendorError as error:
        metrics.vendor_error("soe", error)
        _after_error(check_id, error, settings)
        return True
    with session_scope() as session:
        check = session.get(Check, check_id)
        if not _waiting(check) or check.vendor_task_id != session_id:
            return True
        if result.finished:
            common.complete(session, check, result=raw_result(result), **scores_of(result))
            log.info("soe evaluated (async)", extra={"check_id": check_id, "session_id": session_id,
                                                     "vendor_request_id": result.request_id})
        elif result.failed:
            fail(check, "evaluation_failed", "soe: the vendor's evaluation failed (Status Failed)")
        else:
            _next_poll(check, utcnow())
    return True


def _waiting(check: Check | None) -> bool:
    """Running, no delivery holding it, every chunk in (a session id as the vendor's task)."""
    return (check is not None and check.status == CheckStatus.RUNNING.value and check.lease_until is None
            and check.vendor_task_id is not None)


def _after_error(check_id: int, error: VendorError, settings: Settings) -> None:
    log.warning("soe poll failed: %s", error.summary(),
                extra={"check_id": check_id, "reason": error.reason, "vendor_request_id": error.request_id})
    if error.disposition is Disposition.RESTART:
        restart(check_id, settings, error.reason, error.summary())
        return
    with session_scope() as session:
        check = session.get(Check, check_id)
        if not _waiting(check):
            return
        if error.disposition is Disposition.PERMANENT:
            fail(check, error.reason, error.summary())
        else:  # transient or throttled: the next poll asks again
            _next_poll(check, utcnow())


def restart(check_id: int, settings: Settings, reason: str, message: str) -> None:
    """A new session from the first chunk, sent to the SOE queue; failed once attempts run out."""
    with session_scope() as session:
        check = session.get(Check, check_id)
        if not _waiting(check):
            return
        check.attempts += 1
        if policy.soe(settings).exhausted(check.attempts):
            fail(check, reason, message)
            return
        check.session_id, check.chunks_sent, check.vendor_task_id = new_session_id(), 0, None
        check.next_poll_at = check.deadline_at = None
        check.error_reason, check.error = reason[:64], message
    log.info("soe async: a new session", extra={"check_id": check_id, "reason": reason})
    enqueue([(check_id, "soe")])


def fail(check: Check, reason: str, message: str) -> None:
    """Failed for good, its session forgotten: ``voxqueue retry`` starts it anew."""
    check.vendor_task_id = check.next_poll_at = None
    common.fail(check, reason, message)


def _next_poll(check: Check, now: dt.datetime) -> None:
    check.polls += 1
    check.next_poll_at = now + dt.timedelta(seconds=policy.SOE_POLL.delay(check.polls))


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
