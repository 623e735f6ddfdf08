"""Counts for ``voxqueue status`` and ``voxqueue wait``."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models import TERMINAL_JOB, Batch, Check, CheckStatus, Job, JobStatus
from models.base import utcnow

JOB_STATES = tuple(s.value for s in JobStatus)
CHECK_STATES = tuple(s.value for s in CheckStatus if s is not CheckStatus.CLOSING)  # closing counts as running


@dataclass
class BatchCounts:
    batch: str
    jobs: dict[str, int] = field(default_factory=dict)
    checks: dict[str, dict[str, int]] = field(default_factory=dict)  # service -> status -> n
    closing: dict[str, int] = field(default_factory=dict)  # service -> streams closing (counted running)
    oldest_pending: dict[str, dt.timedelta] = field(default_factory=dict)  # service -> age

    @property
    def total(self) -> int:
        return sum(self.jobs.values())

    @property
    def terminal(self) -> int:
        return sum(n for status, n in self.jobs.items() if status in {s.value for s in TERMINAL_JOB})

    def as_object(self) -> dict:
        """The counts as the API answers them and ``batch.finished`` carries them: every state
        named, zeros included."""
        return {
            "batch": self.batch, "total": self.total, "finished": self.terminal >= self.total,
            "jobs": {state: self.jobs.get(state, 0) for state in JOB_STATES},
            "services": {service: {state: states.get(state, 0) for state in CHECK_STATES}
                         for service, states in sorted(self.checks.items())},
        }


def batch_names(session: Session) -> list[str]:
    return list(session.scalars(select(Batch.name).order_by(Batch.id)))


def counts(session: Session, batch: str) -> BatchCounts | None:
    batch_id = session.scalar(select(Batch.id).where(Batch.name == batch))
    if batch_id is None:
        return None
    result = BatchCounts(batch)
    jobs = select(Job.status, func.count()).where(Job.batch_id == batch_id).group_by(Job.status)
    result.jobs = {status: n for status, n in session.execute(jobs)}
    checks = (
        select(Check.service, Check.status, func.count(), func.min(Check.created_at))
        .join(Job).where(Job.batch_id == batch_id).group_by(Check.service, Check.status)
    )
    now = utcnow()
    for service, status, n, oldest in session.execute(checks):
        if status == CheckStatus.CLOSING.value:  # still running for its job, until the stream ends
            result.closing[service] = n
            status = CheckStatus.RUNNING.value
        states = result.checks.setdefault(service, {})
        states[status] = states.get(status, 0) + n
        if status == CheckStatus.PENDING.value and oldest is not None:
            result.oldest_pending[service] = now - _aware(oldest)
    return result


def _aware(value: dt.datetime) -> dt.datetime:
    """SQLite hands back naive datetimes; every stored time is UTC."""
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
