"""A check's lifecycle: every transition of a check, each a Core statement on a Connection.

The transitions and the states they move a check between (:data:`TRANSITIONS`):

- *claim* (:func:`take_lease`, :func:`take_leases`): pending or running -> running, under a
  lease held by this process (``checks.holder``, whose heartbeat :mod:`tasks.liveness` keeps);
- *renew* (:func:`renew`): a checkpoint, the lease extended; *release* (:func:`release`): the
  lease handed back, the work continues in a retry or another worker (the state is kept);
  *retry later* (:func:`retry_later`): released with the vendor's error, an attempt counted
  or not, failed once the service's :class:`~tasks.policy.RetryPolicy` gives up;
- *finish* (:func:`finish`, :func:`fail`): the holder ends its check done or failed;
  *complete* / *fail* by id (:func:`complete_check`, :func:`fail_check`): a result or an error
  that comes without a lease (a callback, a poll), applied only while the check is open;
- *close* (a live stream asked to end: running -> closing) and *reset* (``voxqueue retry``:
  failed -> pending).

Every transition that ends a check recomputes its job in the same transaction
(:func:`tasks.status.refresh_job_row`). Housekeeping ends the leases of dead holders
(:data:`ENDED`) and sends their checks again; the next claim counts the death.

Every service task claims its check, may checkpoint it, and finishes it. Those
few statements run thousands of times a minute, so they are built once here
(bound parameters, compiled once per engine and prepared by psycopg after a few
uses) and run on a plain connection. On PostgreSQL a three-chunk SOE file whose
job has no other check costs four statements, each committed on its own, one
round trip each: the claim (the check's UPDATE, the read of its job and the job's
start, one statement of data-modifying CTEs), a checkpoint after each chunk but
the last, and the end (:func:`end`: the check and its job, one statement). On
SQLite the claim is three statements (on an autocommit connection a job start
lost between them is harmless: the end sets the job) and the end two, in one
transaction. A moderation task claims its whole group of checks in three
statements (:func:`take_leases`), not three per check: when a worker's threads
all finish a group at once and claim the next, thirty statements per thread
stalled the sends for a few hundred milliseconds.

A check is *claimed* with one conditional ``UPDATE … RETURNING``, atomic on
SQLite and PostgreSQL alike: it succeeds only when the check is not terminal
and no live lease is held, so two deliveries of the same message never work at
once. A lease that is still set when the next delivery arrives means the
previous one died mid-work; those deaths are counted in ``deliveries``, and a
check whose messages keep killing workers ends ``failed`` (:func:`poisoned`).
A death is charged only to a check claimed on its own (SOE claims its files one
at a time): a group claim cannot tell which of its checks killed the worker, so
the checks a dead delivery held together go again one to a message
(:func:`take_leases`), and a poison clip fails alone instead of taking its
message's other checks with it.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, bindparam, case, func, or_, select, update

from config.settings import Settings
from models import Batch, Check, CheckStatus, Job, JobStatus
from models.base import utcnow
from models.db import autocommit, is_postgresql, transaction
from tasks import liveness, metrics, outbox
from tasks.policy import RetryPolicy
from tasks.status import SoleCheck, end_sole_job, refresh_job_row

log = logging.getLogger("voxqueue.tasks")

PENDING, RUNNING = CheckStatus.PENDING.value, CheckStatus.RUNNING.value
CLOSING = CheckStatus.CLOSING.value
DONE, FAILED = CheckStatus.DONE.value, CheckStatus.FAILED.value
ACTIVE = (PENDING, RUNNING)
# transition -> (the states it moves a check from, the state it moves it to). Renewing, releasing
# and retrying later change the lease, not the state; finish is the lease holder's own end.
TRANSITIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "claim": (ACTIVE, RUNNING),
    "complete": ((*ACTIVE, CLOSING), DONE),
    "fail": (ACTIVE, FAILED),
    "close": ((RUNNING,), CLOSING),
    "reset": ((FAILED,), PENDING),
}
# A lease housekeeping ended (its holder died, or it lapsed) and whose check it sent again: still
# "held by a dead delivery" for the next claim, which counts the death, but never sent again for
# the same death (tasks.housekeeping).
ENDED = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
checks, jobs, batches = Check.__table__, Job.__table__, Batch.__table__

_RETURNED = (checks.c.id, checks.c.job_id, checks.c.service, checks.c.deliveries, checks.c.attempts,
             checks.c.session_id, checks.c.chunks_sent, checks.c.vendor_task_id,
             checks.c.deadline_at)


def _claim_statement(with_session_id: bool):
    """One check: free, or its lease lapsed (a death, counted)."""
    extra = {"session_id": func.coalesce(checks.c.session_id, bindparam("p_session"))} if with_session_id else {}
    return (
        update(checks)
        .where(checks.c.id == bindparam("p_check"), checks.c.status.in_(ACTIVE))
        .where(or_(checks.c.lease_until.is_(None), checks.c.lease_until < bindparam("p_now")))
        .values(
            status=CheckStatus.RUNNING.value,
            lease_until=bindparam("p_lease"),
            holder=bindparam("p_holder"),
            updated_at=bindparam("p_now"),  # named: the job's start beside it updates its own (PostgreSQL)
            deliveries=case((checks.c.lease_until.is_not(None), checks.c.deliveries + 1), else_=checks.c.deliveries),
            **extra,
        )
        .returning(*_RETURNED)
    )


_CLAIM = {False: _claim_statement(False), True: _claim_statement(True)}
_GROUP = checks.c.id.in_(bindparam("p_checks", expanding=True))
# A group takes only checks that no delivery holds or held (no lease: nothing to count) ...
_CLAIM_MANY = (update(checks).where(_GROUP, checks.c.status.in_(ACTIVE), checks.c.lease_until.is_(None))
               .values(status=CheckStatus.RUNNING.value, lease_until=bindparam("p_lease"),
                       holder=bindparam("p_holder")).returning(*_RETURNED))
# ... and releases those whose lease lapsed, for them to go again one to a message.
_ISOLATE = (update(checks).where(_GROUP, checks.c.status.in_(ACTIVE), checks.c.lease_until < bindparam("p_now"))
            .values(lease_until=None).returning(checks.c.id))
_JOB_COLUMNS = (jobs.c.id, jobs.c.key, jobs.c.status, jobs.c.audio, jobs.c.stream, jobs.c.options, jobs.c.services,
                batches.c.name.label("batch"), batches.c.notify_id)


def _job_is(many: bool):
    """``jobs.id = :p_jobs``, or ``IN`` a list when ``many`` (expanding the list costs ~50 µs a
    call, so the single-check claim of the SOE hot path keeps the plain ``=``)."""
    return jobs.c.id.in_(bindparam("p_jobs", expanding=True)) if many else jobs.c.id == bindparam("p_jobs")


_READ_JOBS = {many: select(*_JOB_COLUMNS).join_from(jobs, batches, batches.c.id == jobs.c.batch_id)
              .where(_job_is(many)) for many in (False, True)}
_START_JOBS = {many: update(jobs).where(_job_is(many), jobs.c.status == JobStatus.PENDING.value)
               .values(status=JobStatus.RUNNING.value) for many in (False, True)}


def _claim_read_start(with_session_id: bool):
    """PostgreSQL: a check's claim, the read of its job and the job's start as one statement
    (the two UPDATEs data-modifying CTEs; the SELECT reads the job as it was before its start).
    One row holds both halves: the job's columns but its id, which is the check's ``job_id``."""
    claimed = _claim_statement(with_session_id).cte("claimed")
    started = (update(jobs).where(jobs.c.id == claimed.c.job_id, jobs.c.status == JobStatus.PENDING.value)
               .values(status=JobStatus.RUNNING.value, updated_at=bindparam("p_now")).cte("started"))
    return (select(*claimed.c, *(column for column in _JOB_COLUMNS if column is not jobs.c.id))
            .join_from(claimed, jobs, jobs.c.id == claimed.c.job_id)
            .join(batches, batches.c.id == jobs.c.batch_id)
            .add_cte(started))


_CLAIM_READ_START = {False: _claim_read_start(False), True: _claim_read_start(True)}


@functools.lru_cache(maxsize=64)
def _set_check(names: tuple[str, ...]):
    """``UPDATE checks SET <names> WHERE id = :p_check``, built once per set of column names."""
    return update(checks).where(checks.c.id == bindparam("p_check")).values(
        {name: bindparam("v_" + name) for name in names})


def _update_check(conn: Connection, check_id: int, values: dict[str, Any]) -> None:
    names = tuple(sorted(values))
    conn.execute(_set_check(names), {"p_check": check_id, **{"v_" + n: values[n] for n in names}})


@dataclass(frozen=True)
class JobFacts:
    """The job's input, as a claim reads it (what building a vendor request needs)."""

    id: int
    key: str
    batch: str
    audio: str | None
    stream: str | None
    options: dict[str, Any]
    services: tuple[str, ...]
    notify_id: int | None = None  # the batch's notification endpoint (tasks.outbox)


@dataclass(frozen=True)
class Lease:
    """What a claim returns: the check's progress and its job, read in the claim."""

    check_id: int
    service: str
    job: JobFacts
    deliveries: int
    attempts: int
    session_id: str | None
    chunks_sent: int
    vendor_task_id: str | None
    deadline_at: dt.datetime | None = None  # the end of the vendor's result window (SOE)


def take_lease(conn: Connection, check_id: int, settings: Settings, *,
               new_session_id: str | None = None) -> Lease | None:
    """Claim the check: one ``UPDATE … RETURNING``, one read of its job and the job's start.

    On PostgreSQL the three are one statement, so a claim on an autocommit connection
    (:func:`models.db.autocommit`) is one round trip; on SQLite, three statements.
    Returns None when the check is finished, gone or leased. ``new_session_id``
    becomes the check's vendor session id unless it has one. Poisoned checks are
    returned too: see :func:`poisoned`.
    """
    params = {"p_check": check_id, **_lease_window(settings)}
    if new_session_id is not None:
        params["p_session"] = new_session_id
    if conn.dialect.name == "postgresql":
        row = conn.execute(_CLAIM_READ_START[new_session_id is not None], params).first()
        return None if row is None else _lease(row, row)
    row = conn.execute(_CLAIM[new_session_id is not None], params).first()
    if row is None:
        return None
    job = conn.execute(_READ_JOBS[False], {"p_jobs": row.job_id}).one()
    _start_jobs(conn, [job])
    return _lease(row, job)


@dataclass(frozen=True)
class GroupClaim:
    """What a group claim took (in the order asked), and the checks a dead delivery held."""

    leases: list[Lease]
    isolated: list[int]  # released: the caller sends each again in a message of its own


def take_leases(conn: Connection, check_ids: list[int], settings: Settings) -> GroupClaim:
    """Claim a group of checks at once, in three statements whatever the group's size: one
    ``UPDATE … RETURNING`` for all of them, one read of their jobs, one start of those still
    pending. Finished, gone and leased checks are left out.

    A group never takes over a lapsed lease: the delivery that held it died, and nothing
    tells which of the group's checks killed it. Those checks are released (one more
    statement, only when some check was not taken) and come back as ``isolated``; alone in
    a message, a check claimed with a lapsed lease is charged the death (:func:`take_lease`,
    which a group of one is)."""
    ids = list(dict.fromkeys(check_ids))
    if len(ids) <= 1:
        lease = take_lease(conn, ids[0], settings) if ids else None
        return GroupClaim([lease] if lease else [], [])
    window = _lease_window(settings)
    claim = {"p_checks": ids, "p_lease": window["p_lease"], "p_holder": window["p_holder"]}
    rows = {row.id: row for row in conn.execute(_CLAIM_MANY, claim)}
    isolated = [] if len(rows) == len(ids) else _isolate(conn, [i for i in ids if i not in rows], window["p_now"])
    if not rows:
        return GroupClaim([], isolated)
    job_ids = sorted({row.job_id for row in rows.values()})
    found = {job.id: job for job in conn.execute(_READ_JOBS[True], {"p_jobs": job_ids})}
    _start_jobs(conn, found.values())
    return GroupClaim([_lease(rows[i], found[rows[i].job_id]) for i in ids if i in rows], isolated)


def _isolate(conn: Connection, check_ids: list[int], now: dt.datetime) -> list[int]:
    released = {row.id for row in conn.execute(_ISOLATE, {"p_checks": check_ids, "p_now": now})}
    return [i for i in check_ids if i in released]


def _lease_window(settings: Settings) -> dict[str, Any]:
    """A claim's ``p_now`` (a lease that ended before it has lapsed), ``p_lease`` (the new end) and
    ``p_holder`` (this process, whose heartbeat housekeeping watches: :mod:`tasks.liveness`)."""
    now = utcnow()
    return {"p_now": now, "p_lease": now + dt.timedelta(seconds=settings.lease_seconds),
            "p_holder": liveness.holder_id()}


def _start_jobs(conn: Connection, found) -> None:
    """Move the claimed checks' pending jobs to running (a claim only ever does that)."""
    pending = [job.id for job in found if job.status == JobStatus.PENDING.value]
    if pending:
        many = len(pending) > 1
        conn.execute(_START_JOBS[many], {"p_jobs": pending if many else pending[0]})


def _lease(row, job) -> Lease:
    facts = JobFacts(row.job_id, job.key, job.batch, job.audio, job.stream, job.options or {}, tuple(job.services or ()),
                     job.notify_id)
    deadline = row.deadline_at
    if deadline is not None and deadline.tzinfo is None:  # SQLite keeps no time zone
        deadline = deadline.replace(tzinfo=dt.UTC)
    return Lease(row.id, row.service, facts, row.deliveries, row.attempts, row.session_id, row.chunks_sent,
                 row.vendor_task_id, deadline)


def poisoned(conn: Connection | None, lease: Lease, settings: Settings) -> bool:
    """Fail a check whose deliveries keep killing workers (True when it was failed); ``conn``
    None: in a transaction of its own, opened only then."""
    if lease.deliveries < settings.max_deliveries:
        return False
    if conn is None:
        with transaction() as own:
            return poisoned(own, lease, settings)
    fail(conn, lease, "poison", f"its worker died {lease.deliveries} times while processing it")
    metrics.count("checks_poisoned", service=lease.service, cause="deliveries")
    return True


def finish(conn: Connection, lease: Lease, status: CheckStatus, **values: Any) -> None:
    """End a check (done or failed), recording ``values``, and recompute its job."""
    _finish(conn, lease, _ending(status, values))


def _finish(conn: Connection, lease: Lease, values: dict[str, Any]) -> None:
    _update_check(conn, lease.check_id, values)
    refresh_job_row(conn, lease.job.id, sole=_sole(lease, values), endpoint_id=lease.job.notify_id)


def end(lease: Lease, status: CheckStatus, **values: Any) -> None:
    """:func:`finish` on a connection of its own. On PostgreSQL, a job's only check whose batch
    is not notified ends with its job in one statement, committed on its own: one round trip
    instead of four (BEGIN, the check, the job, COMMIT)."""
    values = _ending(status, values)
    sole = _sole(lease, values)
    if sole is not None and not outbox.wanted(lease.job.notify_id) and is_postgresql():
        names = tuple(sorted(values))
        params = {"p_check": lease.check_id, **{"v_" + n: values[n] for n in names}}
        with autocommit() as conn:
            end_sole_job(conn, lease.job.id, sole, _set_check(names), params)
        return
    with transaction() as conn:
        _finish(conn, lease, values)


def _ending(status: CheckStatus, values: dict[str, Any]) -> dict[str, Any]:
    """What ending a check ``status`` writes besides ``values``."""
    if status is CheckStatus.DONE:
        values = {"error": None, "error_reason": None, **values}
    return {**values, "status": status.value, "lease_until": None, "finished_at": utcnow()}


def _sole(lease: Lease, values: dict[str, Any]) -> SoleCheck | None:
    """The check as its job's only one (nothing to race with, nothing to re-read), or None."""
    if len(set(lease.job.services)) != 1:
        return None
    return SoleCheck(lease.service, values["status"], values.get("error"), values.get("verdict"))


def fail(conn: Connection, lease: Lease, reason: str, message: str, **values: Any) -> None:
    finish(conn, lease, CheckStatus.FAILED, error_reason=reason[:64], error=message, **values)
    log.warning("check failed", extra={"check_id": lease.check_id, "service": lease.service, "reason": reason})


def renew(check_id: int, settings: Settings, **values: Any) -> None:
    """Record progress and extend the lease: one statement, committed on its own."""
    lease = utcnow() + dt.timedelta(seconds=settings.lease_seconds)
    with autocommit() as conn:
        _update_check(conn, check_id, {**values, "lease_until": lease})


def release(check_id: int, conn: Connection | None = None, **values: Any) -> None:
    """Give the lease back (the work will continue in a retry), recording ``values``."""
    if conn is not None:
        _update_check(conn, check_id, {**values, "lease_until": None})
        return
    with autocommit() as own:
        _update_check(own, check_id, {**values, "lease_until": None})


@functools.lru_cache(maxsize=64)
def _move(names: tuple[str, ...], sources: tuple[str, ...]):
    """``UPDATE checks SET <names> WHERE id = :p_check AND status IN <sources>
    RETURNING job_id``."""
    return (update(checks).where(checks.c.id == bindparam("p_check"), checks.c.status.in_(sources))
            .values({name: bindparam("v_" + name) for name in names}).returning(checks.c.job_id))


def move(conn: Connection, check_id: int, transition: str, **values: Any) -> bool:
    """Apply ``transition`` (:data:`TRANSITIONS`) to a check, recording ``values``, if the check is
    in one of the states it moves from; recompute its job. True when the check moved."""
    sources, target = TRANSITIONS[transition]
    values = {**values, "status": target}
    names = tuple(sorted(values))
    params = {"p_check": check_id, **{"v_" + n: values[n] for n in names}}
    row = conn.execute(_move(names, sources), params).first()
    if row is None:
        return False
    refresh_job_row(conn, row.job_id)
    return True


def fail_check(conn: Connection, check_id: int, reason: str, message: str, **values: Any) -> bool:
    """An open check fails (an error that came without its lease: a poll, a callback, a give-up)."""
    failed = move(conn, check_id, "fail", error_reason=reason[:64], error=message, lease_until=None,
                  finished_at=utcnow(), **values)
    if failed:
        log.warning("check failed", extra={"check_id": check_id, "reason": reason})
    return failed


def complete_check(conn: Connection, check_id: int, **values: Any) -> bool:
    """An open (or closing) check is done with ``values`` (a vendor's result)."""
    return move(conn, check_id, "complete", error=None, error_reason=None, lease_until=None,
                finished_at=utcnow(), **values)


def _retry_statement(counted: bool):
    attempts = checks.c.attempts + 1 if counted else checks.c.attempts
    return (update(checks).where(_GROUP, checks.c.status.in_(ACTIVE))
            .values(attempts=attempts, lease_until=None, error_reason=bindparam("v_reason"),
                    error=bindparam("v_error"))
            .returning(checks.c.id, checks.c.attempts))


_RETRY_LATER = {counted: _retry_statement(counted) for counted in (False, True)}


@dataclass(frozen=True)
class Later:
    """What :func:`retry_later` decided: the checks to send again, and the most attempts among
    them; the checks it failed."""

    ids: list[int]
    attempts: int
    failed: list[int]


def retry_later(conn: Connection, check_ids: list[int], reason: str, message: str, *, counted: bool,
                policy: RetryPolicy) -> Later:
    """Release open checks after a retryable error (one statement), an attempt counted unless
    the vendor only throttled; those whose attempts ``policy`` has used up fail."""
    params = {"p_checks": list(check_ids), "v_reason": reason[:64], "v_error": message}
    attempts = {row.id: row.attempts for row in conn.execute(_RETRY_LATER[counted], params)}
    failed = [i for i in check_ids if i in attempts and policy.exhausted(attempts[i])]
    for check_id in failed:
        gave_up = f"gave up after {attempts[check_id]} attempts: {message}"
        fail_check(conn, check_id, reason, gave_up)
    again = [i for i in check_ids if i in attempts and i not in failed]
    return Later(again, max((attempts[i] for i in again), default=0), failed)


def reset(conn: Connection, check_id: int) -> bool:
    """``voxqueue retry``: a failed check is pending again, from nothing (a failed SOE session
    starts anew)."""
    return move(conn, check_id, "reset", attempts=0, deliveries=0, error=None, error_reason=None,
                finished_at=None, session_id=None, chunks_sent=0)


def close(conn: Connection, check_id: int) -> bool:
    """A running live stream is asked to end: closing, until its end callback."""
    return move(conn, check_id, "close", closed_at=utcnow())
