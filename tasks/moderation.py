"""Submitting checks to moderation vendors: the part every vendor shares.

A submission task claims its checks, skips any that already carry a vendor
task id (submitted by an earlier delivery), waits for a slot of the vendor's
shared rate limit, submits, and records the vendor's task id. Retryable errors
come back as a task retry with capped, jittered backoff and a bounded number
of attempts; waiting on the rate limit or on vendor throttling spends no
attempt. Permanent errors fail the check at once with the vendor's reason.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import bindparam, update

from config.settings import get_settings
from models.base import utcnow
from models.db import transaction
from tasks import (
    breaker,
    common,
    crashpoints,
    keys,
    lifecycle,
    liveness,
    logctx,
    metrics,
    outcome,
    policy,
)
from tasks.dispatch import enqueue
from tasks.infra import INFRA_ERRORS, retry_after_infra_error
from tasks.lifecycle import Lease, checks
from tasks.outcome import Outcome
from tasks.ratelimit import Throttled
from vendors.errors import Disposition, VendorError

log = logging.getLogger("voxqueue.moderation")

MAX_ATTEMPTS = policy.MODERATION.attempts
FIRST_POLL_S = 2.0
RESULT_DEADLINE = dt.timedelta(hours=2)


def idempotency_key(lease: Lease) -> str:
    """A key derived from the job (batch, row key, service) under the deployment's secret:
    the same on every attempt, and not computable by someone who knows only the job."""
    return keys.vendor_key(lease.job.batch, lease.job.key, lease.service, get_settings())


@dataclass
class Accepted:
    """What a vendor said when it took a check."""

    vendor_task_id: str
    result: dict[str, Any] | None = None
    polled: bool = True  # results come by polling (else only by callback)


@dataclass
class Claimed:
    """Checks claimed by one delivery, with the payload each one needs."""

    service: str
    checks: dict[int, dict[str, Any]] = field(default_factory=dict)  # check id -> request facts
    outcomes: dict[int, Outcome] = field(default_factory=dict)  # checks the claim already settled


def claim_all(service: str, check_ids: list[int], describe: Callable[[Lease], dict[str, Any]]) -> Claimed:
    """Claim the checks (three statements, one transaction); fail those whose input cannot be sent;
    skip submitted ones; send those a dead delivery held again, one to a message."""
    settings = get_settings()
    batch = Claimed(service)
    job_keys: list[str] = []
    with transaction() as conn:
        claim = lifecycle.take_leases(conn, check_ids, settings)
        for lease in claim.leases:
            check_id = lease.check_id
            if lifecycle.poisoned(conn, lease, settings):
                batch.outcomes[check_id] = outcome.failed("poison")
                continue
            if lease.vendor_task_id:  # an earlier delivery submitted it: never send twice
                lifecycle.release(check_id, conn)
                batch.outcomes[check_id] = Outcome(outcome.SUBMITTED)
                continue
            job_keys.append(lease.job.key)
            try:
                batch.checks[check_id] = describe(lease) | {"key": idempotency_key(lease), "job": lease.job.key}
            except VendorError as error:
                lifecycle.fail(conn, lease, error.reason, error.summary())
                batch.outcomes[check_id] = outcome.failed(error.reason)
            except INFRA_ERRORS:
                raise
            except Exception as exc:  # noqa: BLE001  (an input no request can be built from: fail it now)
                error = common.unexpected(service, exc)
                lifecycle.fail(conn, lease, error.reason, error.summary())
                batch.outcomes[check_id] = outcome.failed(error.reason)
    if claim.isolated:  # after the commit: released, so the new messages can claim them
        log.warning("a delivery died holding %d %s check(s): each goes again alone", len(claim.isolated), service,
                    extra={"service": service, "check_ids": claim.isolated})
        enqueue([(check_id, service) for check_id in claim.isolated], alone=True)
    for key in job_keys:  # after the claim committed, so a crash here is counted
        crashpoints.hit(key)
    return batch


def _record_statement(with_result: bool):
    extra = {"result": bindparam("v_result")} if with_result else {}
    return (update(checks).where(checks.c.id == bindparam("p_check"), checks.c.vendor_task_id.is_(None))
            .values(vendor_task_id=bindparam("v_task"), lease_until=None, next_poll_at=bindparam("v_poll"),
                    deadline_at=bindparam("v_deadline"), **extra))


_RECORD = {False: _record_statement(False), True: _record_statement(True)}


def record(accepted: dict[int, Accepted]) -> None:
    """Store the vendors' task ids (one transaction); a check that already has one keeps it."""
    now = utcnow()
    with transaction() as conn:
        for check_id, a in accepted.items():
            row = {"p_check": check_id, "v_task": a.vendor_task_id, "v_deadline": now + RESULT_DEADLINE,
                   "v_poll": now + dt.timedelta(seconds=FIRST_POLL_S) if a.polled else None}
            if a.result:
                row["v_result"] = a.result
            conn.execute(_RECORD[bool(a.result)], row)


@dataclass
class Later:
    """Checks of one delivery to send again, and after how long: one retry message for them all."""

    ids: list[int] = field(default_factory=list)
    wait: float = 0.0
    paused: bool = False  # the vendor's limit or circuit said stop: the rest of a group waits too
    outcomes: dict[int, Outcome] = field(default_factory=dict)  # what happened to each check

    def add(self, ids: list[int], wait: float, reason: str | None = None) -> None:
        self.ids += ids
        self.wait = max(self.wait, wait)
        self.outcomes.update(dict.fromkeys(ids, outcome.retry(wait, reason)))


def submit_with_retries(task, batch: Claimed,
                        submit: Callable[[Claimed], dict[int, Accepted]]) -> str:
    """Take a rate-limit slot, submit, record; on failure retry or fail as the error says.
    Returns what happened (:mod:`tasks.outcome`)."""
    if not batch.checks:
        return outcome.summary(list(batch.outcomes.values()))
    ids = list(batch.checks)
    jobs = ",".join(facts["job"] for facts in batch.checks.values())
    later = Later()
    with logctx.bound(job=jobs, service=batch.service, check_id=ids[0] if len(ids) == 1 else None):
        try:
            _submit(batch, submit, ids, later)
        except INFRA_ERRORS as error:
            raise retry_after_infra_error(task, ids, error) from error
    return _send_again(task, batch, later)


def submit_each(task, batch: Claimed, submit_one: Callable[[int, dict[str, Any]], Accepted]) -> str:
    """Submit a group of checks one request each, in turn (vendors that take one file per request).

    One message and one claim for the group; each check takes its own rate-limit
    slot and is recorded as soon as the vendor accepts it; the checks that must
    go again leave in one retry message. Returns what happened (:mod:`tasks.outcome`).
    """
    later, pending, handed_back = Later(), list(batch.checks), []
    try:
        while pending:
            check_id = pending[0]
            facts = batch.checks[check_id]
            if later.paused:
                lifecycle.release(check_id)
                later.add([check_id], later.wait, later.outcomes[later.ids[0]].reason)
            elif liveness.stopping.is_set():  # the worker is stopping: the rest go to another one
                lifecycle.release(check_id)
                handed_back.append(check_id)
                later.outcomes[check_id] = Outcome(outcome.HANDED_BACK)
            else:
                one = Claimed(batch.service, {check_id: facts})
                with logctx.bound(job=facts["job"], service=batch.service, check_id=check_id):
                    _submit(one, lambda b, i=check_id, f=facts: {i: submit_one(i, f)}, [check_id], later)
            pending.pop(0)
    except INFRA_ERRORS as error:
        raise retry_after_infra_error(task, pending + later.ids + handed_back, error) from error
    if handed_back:
        log.info("worker stopping: handing back %d %s check(s)", len(handed_back), batch.service)
        enqueue([(check_id, batch.service) for check_id in handed_back])
    return _send_again(task, batch, later)


def _submit(batch: Claimed, submit, ids: list[int], later: Later) -> None:
    try:
        breaker.check(batch.service)
        accepted = submit(batch)  # its client takes a slot of the shared limit per request
    except (Throttled, breaker.CircuitOpen) as pause:
        _step_aside(ids, pause.wait, later, outcome.retry_reason(pause))
    except VendorError as error:
        metrics.vendor_error(batch.service, error)
        breaker.breaker().record(batch.service, error)
        _on_error(ids, error, later)
    except INFRA_ERRORS:
        raise
    except Exception as exc:  # noqa: BLE001  (fails these checks now: see common.unexpected)
        _on_error(ids, common.unexpected(batch.service, exc), later)
    else:
        breaker.breaker().record(batch.service, None)
        record(accepted)
        later.outcomes.update(dict.fromkeys(accepted, Outcome(outcome.SUBMITTED)))
        for taken in accepted.values():
            request_id = (taken.result or {}).get("requestId")
            log.info("submitted", extra={"vendor_task_id": taken.vendor_task_id,
                                         "vendor_request_id": request_id})
        missing = [i for i in ids if i not in accepted]
        if missing:  # the vendor answered for some tasks only: the rest go again
            _on_error(missing, VendorError(batch.service, "partial", "no task id returned",
                                           disposition=Disposition.RETRY), later)


def _step_aside(ids: list[int], wait: float, later: Later, reason: str) -> None:
    for check_id in ids:
        lifecycle.release(check_id)
    later.add(ids, wait, reason)
    later.paused = True


def _on_error(ids: list[int], error: VendorError, later: Later) -> None:
    log.info("submission failed: %s", error.summary(),
             extra={"service": error.vendor, "reason": error.reason, "checks": ids})
    if error.disposition is Disposition.PERMANENT:
        for check_id in ids:
            common.fail_by_id(check_id, error)
            later.outcomes[check_id] = outcome.failed(error.reason)
        return
    counted = error.disposition is not Disposition.THROTTLED
    with transaction() as conn:
        again = lifecycle.retry_later(conn, ids, error.reason, error.summary(), counted=counted,
                                      policy=policy.MODERATION)
    later.outcomes.update(dict.fromkeys(again.failed, outcome.failed(error.reason)))
    if again.ids:
        wait = policy.MODERATION.countdown(again.attempts + 1, error.retry_after)
        later.add(again.ids, wait, outcome.retry_reason(error))
        later.paused = later.paused or not counted  # the vendor throttles: the rest of a group waits too
        metrics.add("vendor_retries", len(again.ids), vendor=error.vendor, scope="check")


def _send_again(task, batch: Claimed, later: Later) -> str:
    """One retry message for the checks that go again; what happened to each check, in a line."""
    outcomes = batch.outcomes | later.outcomes
    if later.ids:
        countdown = policy.MODERATION.countdown(0, later.wait)  # a hint, within the visibility rule
        line = outcome.summary(list(outcome.sent_again(outcomes, countdown).values()))
        raise task.retry(args=[later.ids], countdown=countdown, exc=outcome.SentAgain(line),
                         max_retries=None)
    return outcome.summary(list(outcomes.values()))
