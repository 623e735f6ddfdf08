"""Bearer tokens for the producers' API: made and revoked on the command line, checked per request.

A token is ``vq_`` and 43 URL-safe characters (256 random bits), printed once by
``voxqueue api token create NAME`` and stored as its SHA-256 digest (:class:`models.ApiToken`).
Creating a name that was revoked gives it a new token and keeps its batches (a rotation);
creating a name that is in use is refused, so nobody replaces a producer's token by mistake.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass

from sqlalchemy import select

from models import ApiToken
from models.base import utcnow
from models.db import session_scope

PREFIX = "vq_"
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_TOKEN = re.compile(r"vq_[A-Za-z0-9_-]{43}")


class TokenError(ValueError):
    """A name that cannot be made or revoked (the message says why)."""


@dataclass(frozen=True)
class Caller:
    """Who a valid token belongs to."""

    token_id: int
    name: str


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create(name: str) -> str:
    """A new token for ``name``; the only time its value exists outside the caller."""
    if not NAME.fullmatch(name):
        raise TokenError("a token name is 1 to 100 letters, digits, '.', '_' or '-', starting with a letter or digit")
    token = PREFIX + secrets.token_urlsafe(32)
    with session_scope() as session:
        row = session.scalar(select(ApiToken).where(ApiToken.name == name))
        if row is not None and row.revoked_at is None:
            raise TokenError(f"a token named {name} exists; revoke it first to replace it")
        if row is None:
            session.add(ApiToken(name=name, digest=digest(token)))
        else:
            row.digest, row.revoked_at, row.created_at = digest(token), None, utcnow()
    return token


def revoke(name: str) -> None:
    with session_scope() as session:
        row = session.scalar(select(ApiToken).where(ApiToken.name == name))
        if row is None:
            raise TokenError(f"no token named {name}")
        if row.revoked_at is None:
            row.revoked_at = utcnow()


def authenticate(token: str, database_url: str | None = None) -> Caller | None:
    """The caller a presented token belongs to, or None (unknown, malformed or revoked)."""
    if not _TOKEN.fullmatch(token):
        return None
    with session_scope(database_url) as session:
        row = session.execute(select(ApiToken.id, ApiToken.name)
                              .where(ApiToken.digest == digest(token), ApiToken.revoked_at.is_(None))).first()
    return Caller(row.id, row.name) if row else None
