"""The report of CONTRACT.md: one object per job, in ingestion order."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from models import Batch, Check, CheckStatus, Job, JobStatus

MODERATION = ("gme", "shumei", "tupu", "asr")


def iter_jobs(session: Session, batch: str | None = None, page: int = 500, *,
              status: str | None = None, verdict: str | None = None) -> Iterator[Job]:
    """Jobs with their checks, in ingestion order, a page at a time (bounded memory); only
    those with ``status`` and ``verdict`` where given."""
    query = select(Job).join(Batch).options(selectinload(Job.checks), selectinload(Job.batch))
    query = query.where(*_filters(batch, status, verdict))
    query = query.order_by(Job.batch_id, Job.seq)
    last = (0, 0)
    while True:
        rows = session.scalars(query.where(_after(last)).limit(page)).all()
        yield from rows
        if len(rows) < page:
            return
        last = (rows[-1].batch_id, rows[-1].seq)


def job_counts(session: Session, batch: str | None = None, *, status: str | None = None,
               verdict: str | None = None) -> dict[tuple[str, str | None], int]:
    """How many jobs have each (status, verdict), with the same filters as :func:`iter_jobs`."""
    query = (select(Job.status, Job.verdict, func.count()).join(Batch)
             .where(*_filters(batch, status, verdict)).group_by(Job.status, Job.verdict))
    return {(s, v): n for s, v, n in session.execute(query)}


def _filters(batch: str | None, status: str | None, verdict: str | None) -> list:
    where = []
    if batch is not None:  # "" is a name (of no batch), not "every batch"
        where.append(Batch.name == batch)
    if status is not None:
        where.append(Job.status == status)
    if verdict is not None:
        where.append(Job.verdict == verdict)
    return where


def _after(last: tuple[int, int]):
    from sqlalchemy import and_, or_

    batch_id, seq = last
    return or_(Job.batch_id > batch_id, and_(Job.batch_id == batch_id, Job.seq > seq))


def job_report(job: Job) -> dict[str, Any]:
    checks = {c.service: c for c in job.checks}
    return {
        "id": job.external_id if job.external_id is not None else job.key,
        "batch": job.batch.name,
        "audio": job.audio or job.stream,
        "status": job.status,
        "error": job.error,
        "verdict": job.verdict,
        "soe": _soe(checks["soe"]) if "soe" in checks else None,
        "moderation": {s: _moderation(checks[s]) for s in MODERATION if s in checks},
    }


def result_seconds(job: Job) -> float | None:
    """Seconds from ingestion to the job's result (its last check finished), for a job that
    is done or failed; None otherwise."""
    if job.status not in (JobStatus.DONE.value, JobStatus.FAILED.value):
        return None
    finished = [c.finished_at for c in job.checks if c.finished_at is not None]
    if not finished or job.created_at is None:
        return None
    return max(0.0, (_aware(max(finished)) - _aware(job.created_at)).total_seconds())


def failure_reasons(job: Job) -> list[str]:
    """Why the job did not get its results: ``service: reason`` per failed check (the reason
    vendors' errors are classified by), or the rejection's reason."""
    if job.status == JobStatus.REJECTED.value:
        return [f"rejected: {_first_clause(job.error or 'invalid input')}"]
    return [f"{c.service}: {c.error_reason or _first_clause(c.error or 'failed')}"
            for c in job.checks if c.status == CheckStatus.FAILED.value]


def _first_clause(text: str) -> str:
    """A reason without its particulars (``audio file not found: a.wav`` -> the part before
    ``:`` or `` (``), so that rows group by kind; at most 60 characters."""
    return " ".join(text.split(":", 1)[0].split(" (", 1)[0].split())[:60]


def _aware(value: dt.datetime) -> dt.datetime:
    """SQLite hands back naive datetimes; every stored time is UTC."""
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _soe(check: Check) -> dict[str, Any]:
    return {
        "status": check.status,
        "session_id": check.session_id,
        "suggested_score": check.suggested_score,
        "pron_accuracy": check.pron_accuracy,
        "pron_fluency": check.pron_fluency,
        "pron_completion": check.pron_completion,
        "chunks": check.chunks_sent,
        "error": check.error,
    }


def _moderation(check: Check) -> dict[str, Any]:
    return {
        "status": check.status,
        "vendor_task_id": check.vendor_task_id,
        "verdict": check.verdict,
        "labels": list(check.labels or []),
        "text": check.text,
        "error": check.error,
    }


def flatten(obj: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested fields flattened with ``.``, lists joined with ``|`` (the CSV form)."""
    flat: dict[str, Any] = {}
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, name + "."))
        elif isinstance(value, list):
            flat[name] = "|".join(map(str, value))
        else:
            flat[name] = value
    return flat
