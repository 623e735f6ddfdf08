"""Deriving a job's status and verdict from its checks."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, select, update
from sqlalchemy.orm import object_session
from sqlalchemy.orm.attributes import set_committed_value

from models import Check, CheckStatus, Job, JobStatus

VERDICT_RANK = {"PASS": 0, "REVIEW": 1, "REJECT": 2}
jobs, checks = Job.__table__, Check.__table__


def strictest(verdicts: Iterable[str | None]) -> str | None:
    known = [v for v in verdicts if v in VERDICT_RANK]
    return max(known, key=VERDICT_RANK.__getitem__) if known else None


def refresh_job_row(conn: Connection, job_id: int) -> dict[str, Any] | None:
    """Recompute the job's status, error and verdict from its checks; return what was set.

    Two checks of one job can finish at the same moment in two transactions; each
    would see the other still running and leave the job ``running`` for good. So
    the job row is locked first (PostgreSQL: FOR UPDATE; SQLite serialises writers
    anyway) and its checks read after the lock, with the caller's own change
    already written in this transaction.
    """
    current = conn.execute(select(jobs.c.status).where(jobs.c.id == job_id).with_for_update()).scalar()
    if current is None or current == JobStatus.REJECTED.value:
        return None
    rows = conn.execute(
        select(checks.c.service, checks.c.status, checks.c.error, checks.c.verdict).where(checks.c.job_id == job_id)
    ).all()
    status, error = _status(rows)
    values = {"status": status, "error": error, "verdict": strictest(r.verdict for r in rows if r.service != "soe")}
    conn.execute(update(jobs).where(jobs.c.id == job_id).values(**values))
    return values


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
    if states & {CheckStatus.RUNNING.value, CheckStatus.DONE.value}:
        return JobStatus.RUNNING.value, None
    return JobStatus.PENDING.value, None
