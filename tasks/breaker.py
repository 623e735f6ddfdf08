"""A circuit breaker per vendor, shared by every worker through Redis.

When a vendor keeps failing (``threshold`` retryable failures within ``window``
seconds with no success between them), the circuit opens for ``cooldown``
seconds: work for that vendor steps aside (a countdown, spending no attempt)
instead of burning every job's attempts on an outage. When the cooldown ends,
the next calls probe the vendor; a success closes the circuit, more failures
open it again.
"""

from __future__ import annotations

import redis

from vendors.errors import Disposition, VendorError

OUTAGE = (Disposition.RETRY,)  # throttling is the rate limit's business, not an outage


class Breaker:
    def __init__(self, client: redis.Redis, *, threshold: int = 10, window: float = 30.0,
                 cooldown: float = 10.0, prefix: str = "voxqueue:breaker:") -> None:
        self.client = client
        self.threshold, self.window, self.cooldown = threshold, window, cooldown
        self.prefix = prefix

    def open_for(self, vendor: str) -> float:
        """Seconds until the vendor's circuit closes (0 when closed)."""
        ttl_ms = self.client.pttl(self.prefix + vendor + ":open")
        return max(0.0, ttl_ms / 1000) if ttl_ms and ttl_ms > 0 else 0.0

    def failure(self, vendor: str) -> bool:
        """Count a failure; True when this one opened the circuit."""
        key = self.prefix + vendor + ":failures"
        with self.client.pipeline() as pipe:
            pipe.incr(key)
            pipe.expire(key, int(self.window) + 1, nx=True)
            count = pipe.execute()[0]
        if count < self.threshold:
            return False
        self.client.delete(key)
        return bool(self.client.set(self.prefix + vendor + ":open", "1", nx=True, px=int(self.cooldown * 1000)))

    def success(self, vendor: str) -> None:
        self.client.delete(self.prefix + vendor + ":failures")

    def record(self, vendor: str, error: VendorError | None) -> None:
        """Count a call's outcome; errors of other parties (fetching our audio) do not count."""
        if error is None:
            self.success(vendor)
        elif error.disposition in OUTAGE and error.vendor == vendor:
            self.failure(vendor)


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
