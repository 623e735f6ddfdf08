"""Batches, jobs and per-service checks.

A *job* is one manifest row. A *check* is one service's work on that job (an
SOE evaluation, a GME scan, ...). Uniqueness makes ingestion and submission
idempotent: a batch holds each row key once, a job holds each service once.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Base, created, intpk, short_str, updated


class JobStatus(str, enum.Enum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    REJECTED = "rejected"


class CheckStatus(str, enum.Enum):
    PENDING = "pending"  # recorded, not yet sent
    RUNNING = "running"  # being sent, or sent and awaiting the vendor's result
    CLOSING = "closing"  # a live stream closed by us, its vendor still judging what it pulled
    DONE = "done"
    FAILED = "failed"


TERMINAL_JOB = (JobStatus.DONE, JobStatus.FAILED, JobStatus.REJECTED)
TERMINAL_CHECK = (CheckStatus.DONE, CheckStatus.FAILED)


class Batch(Base):
    __tablename__ = "batches"

    id: Mapped[intpk]
    name: Mapped[str] = mapped_column(String(200), unique=True)
    source: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[created]
    # Made through the API: the token it belongs to (models.api); where its events go, if anywhere.
    # No foreign keys (tokens and endpoints are never deleted): SQLite can add a column in place only
    # without one, and batch mode would copy and drop this table, and with it every job (CASCADE).
    api_token_id: Mapped[int | None] = mapped_column(Integer)
    notify_id: Mapped[int | None] = mapped_column(Integer)

    jobs: Mapped[list[Job]] = relationship(back_populates="batch", order_by="Job.seq")


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (UniqueConstraint("batch_id", "key", name="uq_jobs_batch_key"),)

    id: Mapped[intpk]
    batch_id: Mapped[int] = mapped_column(ForeignKey("batches.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(300))  # caller's id, or "#row N" when it has none
    seq: Mapped[int]  # ingestion order within the batch
    external_id: Mapped[str | None] = mapped_column(String(256))
    audio: Mapped[str | None] = mapped_column(Text)
    stream: Mapped[str | None] = mapped_column(Text)
    services: Mapped[list[Any]] = mapped_column(default=list)
    options: Mapped[dict[str, Any]] = mapped_column(default=dict)  # ref_text, lang, eval_mode, ...
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.PENDING.value, index=True)
    error: Mapped[str | None] = mapped_column(Text)
    verdict: Mapped[str | None] = mapped_column(String(8))
    created_at: Mapped[created]
    updated_at: Mapped[updated]

    batch: Mapped[Batch] = relationship(back_populates="jobs")
    checks: Mapped[list[Check]] = relationship(back_populates="job", order_by="Check.id")


class Check(Base):
    __tablename__ = "checks"
    __table_args__ = (
        UniqueConstraint("job_id", "service", name="uq_checks_job_service"),
        Index("ix_checks_service_status", "service", "status"),
        Index("ix_checks_service_vendor_task", "service", "vendor_task_id"),
    )

    id: Mapped[intpk]
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    service: Mapped[short_str]
    status: Mapped[str] = mapped_column(String(16), default=CheckStatus.PENDING.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # failed vendor calls so far
    deliveries: Mapped[int] = mapped_column(Integer, default=0)  # times a worker took it up
    vendor_task_id: Mapped[str | None] = mapped_column(String(256))
    session_id: Mapped[str | None] = mapped_column(String(128))
    chunks_sent: Mapped[int] = mapped_column(Integer, default=0)  # SOE checkpoint
    polls: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # result polls so far
    chunks_total: Mapped[int | None]
    suggested_score: Mapped[float | None] = mapped_column(Float)
    pron_accuracy: Mapped[float | None] = mapped_column(Float)
    pron_fluency: Mapped[float | None] = mapped_column(Float)
    pron_completion: Mapped[float | None] = mapped_column(Float)
    verdict: Mapped[str | None] = mapped_column(String(8))
    labels: Mapped[list[Any] | None]
    text: Mapped[str | None] = mapped_column(Text)
    result: Mapped[dict[str, Any] | None]  # the vendor's raw result, secrets removed
    error: Mapped[str | None] = mapped_column(Text)
    error_reason: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[dt.datetime | None]
    holder: Mapped[str | None] = mapped_column(String(96))  # the process holding (or last holding) the lease
    next_poll_at: Mapped[dt.datetime | None]
    deadline_at: Mapped[dt.datetime | None]
    created_at: Mapped[created]
    updated_at: Mapped[updated]
    finished_at: Mapped[dt.datetime | None]
    closed_at: Mapped[dt.datetime | None]  # a live stream: when the vendor accepted our close

    job: Mapped[Job] = relationship(back_populates="checks")


class CallbackEvent(Base):
    """A vendor callback as received: kept whole (secrets removed), merged by a task."""

    __tablename__ = "callback_events"
    __table_args__ = (Index("ix_callback_events_vendor_task", "vendor", "vendor_task_id"),)

    id: Mapped[intpk]
    vendor: Mapped[short_str]
    vendor_task_id: Mapped[str | None] = mapped_column(String(256))
    check_id: Mapped[int | None] = mapped_column(ForeignKey("checks.id", ondelete="SET NULL"))
    state: Mapped[str] = mapped_column(String(16), default="received")  # received|merged|unknown|ignored
    body: Mapped[dict[str, Any]]
    note: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[created]
    merged_at: Mapped[dt.datetime | None]


class Marker(Base):
    """A named value the deployment's processes share (the broker epoch housekeeping last saw)."""

    __tablename__ = "markers"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[updated]
