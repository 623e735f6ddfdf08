"""The report of CONTRACT.md: one object per job, in ingestion order."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from models import Batch, Check, Job

MODERATION = ("gme", "shumei", "tupu", "asr")


def iter_jobs(session: Session, batch: str | None = None, page: int = 500, *,
              status: str | None = None, verdict: str | None = None) -> Iterator[Job]:
    """Jobs with their checks, in ingestion order, a page at a time (bounded memory); only those
    with ``status`` and ``verdict`` when given (filtered in SQL)."""
    query = select(Job).join(Batch).options(selectinload(Job.checks), selectinload(Job.batch))
    if batch is not None:  # "" is a name (of no batch), not "every batch"
        query = query.where(Batch.name == batch)
    if status is not None:
        query = query.where(Job.status == status)
    if verdict is not None:
        query = query.where(Job.verdict == verdict)
    query = query.order_by(Job.batch_id, Job.seq)
    last = (0, 0)
    while True:
        rows = session.scalars(query.where(_after(last)).limit(page)).all()
        yield from rows
        if len(rows) < page:
            return
        last = (rows[-1].batch_id, rows[-1].seq)


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
