"""What the recovery tests and the recovery benchmark read from the database."""

from __future__ import annotations

from sqlalchemy import func, select

from models import Check, Job
from models.db import session_scope


def done_jobs() -> int:
    with session_scope() as session:
        return session.scalar(select(func.count()).select_from(Job).where(Job.status == "done"))


def in_flight() -> int:
    """Checks a worker holds right now (claimed, lease running)."""
    with session_scope() as session:
        return session.scalar(select(func.count()).select_from(Check)
                              .where(Check.status == "running", Check.lease_until.is_not(None)))
