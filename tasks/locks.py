"""Round locks in Redis: one process at a time runs a polling or housekeeping round.

A lock is short (:data:`TTL_S`) and renewed as the round goes, so a process that
dies mid-round (SIGKILL: no ``finally``) blocks the next round for seconds, not
minutes. Only the holder renews or releases it (a token, checked in Lua).
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator

import redis

TTL_S = 15
_RENEW = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('EXPIRE', KEYS[1], ARGV[2]) end return 0"
_RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"


class RoundLock:
    def __init__(self, client: redis.Redis, key: str, ttl: int = TTL_S) -> None:
        self.client, self.key, self.ttl = client, key, ttl
        self.token = secrets.token_hex(8)
        self.held = False

    def acquire(self) -> bool:
        self.held = bool(self.client.set(self.key, self.token, nx=True, ex=self.ttl))
        return self.held

    def renew(self) -> bool:
        """Extend the lock (call it as the round makes progress); False if it was lost."""
        self.held = self.held and bool(self.client.eval(_RENEW, 1, self.key, self.token, self.ttl))
        return self.held

    def release(self) -> None:
        if self.held:
            with contextlib.suppress(redis.RedisError):  # it expires on its own
                self.client.eval(_RELEASE, 1, self.key, self.token)
            self.held = False


@contextlib.contextmanager
def round_lock(client: redis.Redis, key: str, ttl: int = TTL_S) -> Iterator[RoundLock]:
    """``with round_lock(...) as lock: if lock.held: ...`` (released on the way out)."""
    lock = RoundLock(client, key, ttl)
    lock.acquire()
    try:
        yield lock
    finally:
        lock.release()
