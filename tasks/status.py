"""Deriving a job's status and verdict from its checks.

This is the one place that decides a job's status, so it is where a job that becomes terminal
gets its notification event, in the same transaction (:mod:`tasks.outbox`), when its batch is
notified at all.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any, NamedTuple

from sqlalchemy import Connection, bindparam, select, update
from sqlalchemy.orm import object_session
from sqlalchemy.orm.attributes import set_committed_value

from models import TERMINAL_JOB, Batch, Check, CheckStatus, Job, JobStatus
from models.base import utcnow
from tasks import outbox

VERDICT_RANK = {"PASS": 0, "REVIEW": 1, "REJECT": 2}
TERMINAL = frozenset(s.value for s in TERMINAL_JOB)
jobs, checks, batches = Job.__table__, Check.__table__, Batch.__table__

# The job's row locked (not its batch's), with where its batch is notified (no extra round trip).
_LOCK_JOB = (select(jobs.c.status, batches.c.notify_id).join_from(jobs, batches, batches.c.id == jobs.c.batch_id)
             .where(jobs.c.id == bindparam("p_job")).with_for_update(of=jobs))
_JOB_CHECKS = select(checks.c.service, checks.c.status, checks.c.error, checks.c.verdict).where(
    checks.c.job_id == bindparam("p_job"))


def _set_job(prefix: str):
    """``UPDATE jobs SET status, error, verdict WHERE id = :p_job``, the values bound as ``<prefix>*``."""
    return update(jobs).where(jobs.c.id == bindparam("p_job")).values(
        status=bindparam(prefix + "status"), error=bindparam(prefix + "error"), verdict=bindparam(prefix + "verdict"))


_SET_JOB = _set_job("v_")
_NOT_REJECTED = jobs.c.status != JobStatus.REJECTED.value
_SET_SOLE_JOB = _SET_JOB.where(_NOT_REJECTED)
# A job that is notified ends only once: an UPDATE that matches only while it is still open.
_END_SOLE_JOB = _SET_JOB.where(jobs.c.status.not_in(sorted(TERMINAL)))
# PostgreSQL: _SET_SOLE_JOB after the caller's UPDATE of the job's only check, given as a
# data-modifying CTE (the job's values bound as j_*, as the check's are v_*; updated_at named,
# as both tables update their own).
_SET_SOLE_JOB_AFTER = _set_job("j_").where(_NOT_REJECTED).values(updated_at=bindparam("j_now"))


class SoleCheck(NamedTuple):
    """The state of a job's only check, just written by the caller."""

    service: str
    status: str
    error: str | None
    verdict: str | None


def strictest(verdicts: Iterable[str | None]) -> str | None:
    known = [v for v in verdicts if v in VERDICT_RANK]
    return max(known, key=VERDICT_RANK.__getitem__) if known else None


def refresh_job_row(conn: Connection, job_id: int, sole: SoleCheck | None = None,
                    endpoint_id: int | None = None) -> dict[str, Any] | None:
    """Recompute the job's status, error and verdict from its checks; return what was set.

    Two checks of one job can finish at the same moment in two transactions; each
    would see the other still running and leave the job ``running`` for good. So
    the job row is locked first (PostgreSQL: FOR UPDATE; SQLite serialises writers
    anyway) and its checks read after the lock, with the caller's own change
    already written in this transaction. A job with one check (``sole``, given by
    the caller that just wrote it) has nothing to race with: one UPDATE (``endpoint_id``: its
    batch's notification endpoint, which the caller read with the job).

    A job that becomes terminal here and is notified gets its event in this transaction.
    """
    if sole is not None:
        values = _values([sole])
        params = {"p_job": job_id, **{"v_" + k: v for k, v in values.items()}}
        notified = values["status"] in TERMINAL and outbox.wanted(endpoint_id)
        if notified and conn.execute(_END_SOLE_JOB, params).rowcount:  # it ended just now, once
            outbox.job_finished(conn, job_id, endpoint_id)
            return values
        conn.execute(_SET_SOLE_JOB, params)
        return values
    row = conn.execute(_LOCK_JOB, {"p_job": job_id}).first()
    if row is None or row.status == JobStatus.REJECTED.value:
        return None
    values = _values(conn.execute(_JOB_CHECKS, {"p_job": job_id}).all())
    conn.execute(_SET_JOB, {"p_job": job_id, **{"v_" + k: v for k, v in values.items()}})
    if values["status"] in TERMINAL and row.status not in TERMINAL and outbox.wanted(row.notify_id):
        outbox.job_finished(conn, job_id, row.notify_id)
    return values


@functools.lru_cache(maxsize=64)
def _after(check_update):
    return _SET_SOLE_JOB_AFTER.add_cte(check_update.cte("ended"))


def end_sole_job(conn: Connection, job_id: int, sole: SoleCheck, check_update, params: dict[str, Any]) -> None:
    """PostgreSQL: ``check_update`` (an UPDATE of the job's only check, bound with ``params``)
    and the job's status from it, as one statement: on an autocommit connection, one round trip
    for the two, committed together. For a job that is not notified (a notified job's event is
    written in the same transaction: :func:`refresh_job_row`)."""
    values = _values([sole])
    conn.execute(_after(check_update), {**params, "p_job": job_id, "j_now": utcnow(),
                                        **{"j_" + k: v for k, v in values.items()}})


def _values(rows: list[Any]) -> dict[str, Any]:
    status, error = _status(rows)
    return {"status": status, "error": error, "verdict": strictest(r.verdict for r in rows if r.service != "soe")}


def refresh_job(job: Job) -> None:
    """:func:`refresh_job_row` for a job loaded in an ORM session (its changes flushed first)."""
    session = object_session(job)
    session.flush()
    values = refresh_job_row(session.connection(), job.id)
    for name, value in (values or {}).items():
        set_committed_value(job, name, value)


def _status(checks_: list[Any]) -> tuple[str, str | None]:
    states = {c.status for c in checks_}
    failed = [c for c in checks_ if c.status == CheckStatus.FAILED.value]
    if failed:
        return JobStatus.FAILED.value, "; ".join(f"{c.service}: {c.error}" for c in failed)
    if states <= {CheckStatus.DONE.value}:
        return JobStatus.DONE.value, None
    if states & {CheckStatus.RUNNING.value, CheckStatus.CLOSING.value, CheckStatus.DONE.value}:
        return JobStatus.RUNNING.value, None  # a closing stream's job runs until the stream ends
    return JobStatus.PENDING.value, None
