"""A circuit breaker per vendor, shared by every worker through Redis.

When a vendor keeps failing (``threshold`` retryable failures within ``window``
seconds with no success between them), the circuit opens for ``cooldown``
seconds: work for that vendor steps aside (a countdown, spending no attempt)
instead of burning every job's attempts on an outage. When the cooldown ends,
the next calls probe the vendor; a success closes the circuit, more failures
open it again.

Each process reads a vendor's state (open? failures counted?) at most once per
``cache_s`` (one second): a worker asks before every file, and a second of delay
in noticing an outage, or in a success resetting another worker's count, costs
little next to a Redis round trip per file.
"""

from __future__ import annotations

import time
from typing import NamedTuple

import redis

from tasks import metrics
from vendors.errors import Disposition, VendorError

OUTAGE = (Disposition.RETRY,)  # throttling is the rate limit's business, not an outage


class _Seen(NamedTuple):
    at: float  # time.monotonic() of the read
    open_until: float  # monotonic time the circuit closes (<= at: closed)
    failures: int


class Breaker:
    def __init__(self, client: redis.Redis, *, threshold: int = 10, window: float = 30.0,
                 cooldown: float = 10.0, prefix: str = "voxqueue:breaker:", cache_s: float = 1.0) -> None:
        self.client = client
        self.threshold, self.window, self.cooldown = threshold, window, cooldown
        self.prefix = prefix
        self.cache_s = cache_s
        self._seen: dict[str, _Seen] = {}

    def open_key(self, vendor: str) -> str:
        """The Redis key that exists (with the cooldown as its TTL) while the vendor's circuit is open."""
        return self.prefix + vendor + ":open"

    def _state(self, vendor: str) -> _Seen:
        now = time.monotonic()
        seen = self._seen.get(vendor)
        if seen is None or now - seen.at >= self.cache_s:
            with self.client.pipeline(transaction=False) as pipe:
                pipe.pttl(self.open_key(vendor))
                pipe.get(self.prefix + vendor + ":failures")
                ttl_ms, failures = pipe.execute()
            seen = self._seen[vendor] = _Seen(now, now + max(0, ttl_ms or 0) / 1000, int(failures or 0))
        return seen

    def open_for(self, vendor: str) -> float:
        """Seconds until the vendor's circuit closes (0 when closed)."""
        return max(0.0, self._state(vendor).open_until - time.monotonic())

    def failure(self, vendor: str) -> bool:
        """Count a failure; True when this one opened the circuit."""
        key = self.prefix + vendor + ":failures"
        with self.client.pipeline() as pipe:
            pipe.incr(key)
            pipe.expire(key, int(self.window) + 1, nx=True)
            count = pipe.execute()[0]
        self._seen.pop(vendor, None)  # read it afresh next time
        if count < self.threshold:
            return False
        self.client.delete(key)
        return bool(self.client.set(self.open_key(vendor), "1", nx=True, px=int(self.cooldown * 1000)))

    def success(self, vendor: str) -> None:
        """Reset the vendor's failure count (a round trip only when failures were counted)."""
        if self._state(vendor).failures:
            self.client.delete(self.prefix + vendor + ":failures")
            self._seen.pop(vendor, None)

    def record(self, vendor: str, error: VendorError | None) -> None:
        """Count a call's outcome; errors of other parties (fetching our audio) do not count."""
        if error is None:
            self.success(vendor)
        elif error.disposition in OUTAGE and error.vendor == vendor and self.failure(vendor):
            metrics.count("breaker_openings", vendor=vendor)


class CircuitOpen(Exception):
    def __init__(self, vendor: str, wait: float) -> None:
        super().__init__(f"{vendor}: circuit open after repeated failures, retrying in {wait:.1f}s")
        self.vendor, self.wait = vendor, wait


_breaker: Breaker | None = None


def breaker() -> Breaker:
    global _breaker
    if _breaker is None:
        from config.broker import broker_url, redis_client
        from config.settings import get_settings

        settings = get_settings()
        _breaker = Breaker(redis_client(broker_url(settings)), threshold=settings.breaker_threshold,
                           cooldown=settings.breaker_cooldown)
    return _breaker


def check(vendor: str) -> None:
    """Raise :class:`CircuitOpen` while the vendor's circuit is open."""
    wait = breaker().open_for(vendor)
    if wait > 0:
        raise CircuitOpen(vendor, wait)
