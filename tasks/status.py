"""Deriving a job's status and verdict from its checks."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import object_session

from models import Check, CheckStatus, Job, JobStatus

VERDICT_RANK = {"PASS": 0, "REVIEW": 1, "REJECT": 2}


def strictest(verdicts: list[str | None]) -> str | None:
    known = [v for v in verdicts if v in VERDICT_RANK]
    return max(known, key=VERDICT_RANK.__getitem__) if known else None


def refresh_job(job: Job) -> None:
    """Set ``job.status``, ``job.error`` and ``job.verdict`` from its checks.

    Two checks of one job can finish at the same moment in two transactions; each
    would see the other still running and leave the job ``running`` for good. So
    the check's own change is flushed, the job row locked (PostgreSQL: FOR UPDATE;
    SQLite serialises writers anyway), and every check re-read after the lock.
    """
    if job.status == JobStatus.REJECTED.value:
        return
    session = object_session(job)
    session.flush()
    session.execute(select(Job.id).where(Job.id == job.id).with_for_update())
    checks = list(session.scalars(
        select(Check).where(Check.job_id == job.id).execution_options(populate_existing=True)))
    job.status, job.error = _status(checks)
    job.verdict = strictest([c.verdict for c in checks if c.service != "soe"])


def _status(checks: list[Check]) -> tuple[str, str | None]:
    states = {c.status for c in checks}
    failed = [c for c in checks if c.status == CheckStatus.FAILED.value]
    if failed:
        return JobStatus.FAILED.value, "; ".join(f"{c.service}: {c.error}" for c in failed)
    if states <= {CheckStatus.DONE.value}:
        return JobStatus.DONE.value, None
    if states & {CheckStatus.RUNNING.value, CheckStatus.DONE.value}:
        return JobStatus.RUNNING.value, None
    return JobStatus.PENDING.value, None
