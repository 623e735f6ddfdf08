"""The deployment's secret: one row, written by ``voxqueue db upgrade``, read by every process.

Every key of ours that a vendor sees (GME ``DataId``, Shumei ``btId``, Tupu ``forumId``,
the tokens in callback URLs) is derived from it (:mod:`tasks.keys`), so nobody who reads
the source and knows a batch name and a row id can compute one. ``VOXQUEUE_SECRET_KEY``,
when set, wins over the stored row. The database is the record every worker, beat and
receiver of a deployment shares, so a secret generated there is the same for all of them.
"""

from __future__ import annotations

import secrets

from sqlalchemy import String, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, created
from models.db import engine_for

ROW_ID = 1  # the only row


class DeploymentSecret(Base):
    __tablename__ = "deployment_secret"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    value: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[created]


def new_secret() -> str:
    return secrets.token_urlsafe(32)  # 256 bits


def stored_secret(url: str) -> str | None:
    with engine_for(url).connect() as conn:
        return conn.scalar(select(DeploymentSecret.value).where(DeploymentSecret.id == ROW_ID))


def ensure_secret(url: str) -> bool:
    """Store a generated secret unless one is stored; True when this call stored it.

    Two upgrades at once cannot store two: the row has a fixed primary key, so the
    second insert fails and that caller keeps the first one's secret.
    """
    if stored_secret(url) is not None:
        return False
    try:
        with engine_for(url).begin() as conn:
            conn.execute(insert(DeploymentSecret).values(id=ROW_ID, value=new_secret()))
    except IntegrityError:
        return False
    return True
