"""Deriving a job's status and verdict from its checks."""

from __future__ import annotations

from models import Check, CheckStatus, Job, JobStatus

VERDICT_RANK = {"PASS": 0, "REVIEW": 1, "REJECT": 2}


def strictest(verdicts: list[str | None]) -> str | None:
    known = [v for v in verdicts if v in VERDICT_RANK]
    return max(known, key=VERDICT_RANK.__getitem__) if known else None


def refresh_job(job: Job) -> None:
    """Set ``job.status``, ``job.error`` and ``job.verdict`` from its checks."""
    if job.status == JobStatus.REJECTED.value:
        return
    checks: list[Check] = job.checks
    states = {c.status for c in checks}
    failed = [c for c in checks if c.status == CheckStatus.FAILED.value]
    if failed:
        job.status = JobStatus.FAILED.value
        job.error = "; ".join(f"{c.service}: {c.error}" for c in failed)
    elif states <= {CheckStatus.DONE.value}:
        job.status = JobStatus.DONE.value
        job.error = None
    elif states & {CheckStatus.RUNNING.value, CheckStatus.DONE.value}:
        job.status = JobStatus.RUNNING.value
    else:
        job.status = JobStatus.PENDING.value
    job.verdict = strictest([c.verdict for c in checks if c.service != "soe"])
