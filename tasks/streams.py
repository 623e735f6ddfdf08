"""Ending live-stream jobs: ``voxqueue stream close ID`` (Tupu's close API)."""

from __future__ import annotations

from sqlalchemy import select

from config.settings import get_settings
from models import Batch, Check, CheckStatus, Job
from models.db import session_scope
from tasks import clients
from tasks.results import finish_stream


class StreamError(Exception):
    """The stream cannot be closed (unknown id, ambiguous id, not a running Tupu stream)."""


def find_stream(session, job_id: str, batch: str | None) -> Check:
    query = (select(Check).join(Job).join(Batch)
             .where(Job.external_id == job_id, Check.service == "tupu"))
    if batch:
        query = query.where(Batch.name == batch)
    checks = list(session.scalars(query))
    if not checks:
        raise StreamError(f"no tupu stream job with id {job_id!r}" + (f" in batch {batch!r}" if batch else ""))
    if len(checks) > 1:
        raise StreamError(f"id {job_id!r} is in several batches: name one with --batch")
    return checks[0]


def close(job_id: str, batch: str | None = None) -> str:
    """Close the stream at Tupu and record the check's final verdict; returns it."""
    with session_scope() as session:
        check = find_stream(session, job_id, batch)
        if check.status != CheckStatus.RUNNING.value or not check.vendor_task_id:
            raise StreamError(f"stream {job_id!r} is {check.status}, not running at tupu")
        task_id = check.vendor_task_id
    clients.tupu(get_settings()).close_stream(task_id)  # the vendor first, then our record
    with session_scope() as session:
        check = session.get(Check, check.id)
        if check.status == CheckStatus.RUNNING.value:
            finish_stream(session, check)
        return check.verdict or "PASS"
