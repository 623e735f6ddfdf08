"""What every hostile-manifest test checks afterwards: the database is consistent."""

from __future__ import annotations

import math
import wave
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from models import Batch, Job
from models.db import session_scope


def write_wav(path: Path, seconds: float = 0.1, rate: int = 16000, channels: int = 1) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"\x01\x00" * int(rate * seconds) * channels)
    return path


def recorded(batch: str) -> list[Job]:
    """The batch's jobs in ingestion order, with their checks."""
    with session_scope() as session:
        query = (select(Job).join(Batch).where(Batch.name == batch).order_by(Job.seq)
                 .options(selectinload(Job.checks)))
        return list(session.scalars(query))


def assert_consistent(batch: str) -> list[Job]:
    """Every job whole: a rejected one has a one-line reason and no checks, a pending one a
    pending check per service and no error; ingestion order without gaps; no NaN stored."""
    jobs = recorded(batch)
    assert [j.seq for j in jobs] == list(range(1, len(jobs) + 1))
    for job in jobs:
        if job.status == "rejected":
            assert job.error and "\n" not in job.error and "Traceback" not in job.error, job.error
            assert job.checks == [], job.key
        else:
            assert job.status == "pending" and job.error is None, (job.key, job.status, job.error)
            assert job.services and sorted(c.service for c in job.checks) == sorted(job.services)
            assert {c.status for c in job.checks} == {"pending"}
            assert job.external_id == job.key
        assert len(job.key) <= 300 and (job.external_id is None or len(job.external_id) <= 256)
        coeff = (job.options or {}).get("score_coeff")
        assert coeff is None or math.isfinite(coeff)
    return jobs
