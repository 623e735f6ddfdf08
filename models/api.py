"""The producers' API and its notifications: bearer tokens, notification URLs, the outbox.

A token is stored as the SHA-256 of its value (it is printed once and never kept): 256
random bits need no salt or slow hash, and a lookup by digest tells nothing about other
tokens. A batch made through the API belongs to its token (``Batch.api_token_id``); a token
sees only its own batches.

An endpoint is a notification URL as one owner gave it; its signing secret is derived from
the deployment's secret (:func:`tasks.keys.notify_secret`), so none is stored. A
:class:`Notification` is one event to deliver, written in the transaction of the state
change it tells about (an outbox), and delivered by ``voxqueue.notify.deliver``.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from config.settings import MAX_NOTIFY_URL
from models.base import Base, created, intpk

MAX_URL = MAX_NOTIFY_URL  # a notification URL, in characters (the unique index holds it)


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[intpk]
    name: Mapped[str] = mapped_column(String(100), unique=True)
    digest: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 hex of the token
    created_at: Mapped[created]
    revoked_at: Mapped[dt.datetime | None]


class NotifyEndpoint(Base):
    """A notification URL of one owner (``cli`` or ``token:<id>``): each has its own secret, so a
    producer who names another's URL cannot have events signed with that one's secret."""

    __tablename__ = "notify_endpoints"
    __table_args__ = (UniqueConstraint("owner", "url", name="uq_notify_endpoints_owner_url"),)

    id: Mapped[intpk]
    owner: Mapped[str] = mapped_column(String(32))
    url: Mapped[str] = mapped_column(String(MAX_URL))
    created_at: Mapped[created]


class NotificationState:
    PENDING = "pending"  # to deliver, now or at next_attempt_at
    DELIVERED = "delivered"  # the receiver answered 2xx
    DEAD = "dead"  # failed for VOXQUEUE_NOTIFY_RETRY_SECONDS: kept, sent again by `notify retry`


class Notification(Base):
    __tablename__ = "notifications"
    __table_args__ = (Index("ix_notifications_due", "state", "next_attempt_at"),)

    id: Mapped[intpk]
    event_id: Mapped[str] = mapped_column(String(40), unique=True)
    type: Mapped[str] = mapped_column(String(32))  # job.finished | batch.finished
    batch_id: Mapped[int] = mapped_column(ForeignKey("batches.id", ondelete="CASCADE"), index=True)
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    # None: the deployment's VOXQUEUE_NOTIFY_URL, signed with VOXQUEUE_NOTIFY_SECRET
    endpoint_id: Mapped[int | None] = mapped_column(ForeignKey("notify_endpoints.id", ondelete="CASCADE"))
    url: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)  # the event exactly as sent (what is signed)
    state: Mapped[str] = mapped_column(String(16), default=NotificationState.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime]
    retry_from: Mapped[dt.datetime]  # retried until VOXQUEUE_NOTIFY_RETRY_SECONDS after this
    lease_until: Mapped[dt.datetime | None]  # a delivery task is sending it
    last_status: Mapped[int | None]  # the receiver's last HTTP status
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[created]
    delivered_at: Mapped[dt.datetime | None]
