"""A request limit per vendor shared by every worker process on every host.

GCRA (the generic cell rate algorithm) in one Lua script, atomic in Redis: the
key holds the theoretical arrival time of the next request; each caller
reserves the next free slot, ``1/qps`` seconds after the previous one, and
sleeps until it. Slots are spaced evenly, so any one-second window holds at
most ``qps + 1`` requests. A caller whose slot is further away than it is
willing to wait reserves nothing and is told how long to stay away, so a
throttled task can step aside (a countdown) instead of holding a worker thread.
Redis's own clock is the time base, so hosts with skewed clocks agree.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import redis

# KEYS[1] the vendor's key; ARGV[1] interval (µs), ARGV[2] max wait (µs).
# Returns the wait in µs for a reserved slot (>= 0), or -(wait) when refused.
GCRA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local max_wait = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local wait = tat - now
if wait > max_wait then return -wait end
redis.call('SET', KEYS[1], tat + interval, 'PX', math.ceil((wait + interval) / 1000) + 1000)
return wait
"""


@dataclass(frozen=True)
class Slot:
    granted: bool
    wait: float  # seconds: until the reserved slot, or how long to stay away


class RateLimiter:
    def __init__(self, client: redis.Redis, prefix: str = "voxqueue:rate:") -> None:
        self.client = client
        self.prefix = prefix
        self._script = client.register_script(GCRA)

    def reserve(self, vendor: str, qps: float, max_wait: float) -> Slot:
        """Reserve the vendor's next slot if it is at most ``max_wait`` seconds away."""
        if qps <= 0:
            return Slot(True, 0.0)
        interval_us = int(1_000_000 / qps)
        result = int(self._script(keys=[self.prefix + vendor], args=[interval_us, int(max_wait * 1_000_000)]))
        return Slot(result >= 0, abs(result) / 1_000_000)

    def acquire(self, vendor: str, qps: float, max_wait: float, sleep=time.sleep) -> Slot:
        """Reserve and sleep until the slot; a refused slot is returned without sleeping."""
        slot = self.reserve(vendor, qps, max_wait)
        if slot.granted and slot.wait > 0:
            sleep(slot.wait)
        return slot


class Throttled(Exception):
    """The vendor's shared limit is saturated: come back after ``wait`` seconds."""

    def __init__(self, vendor: str, wait: float) -> None:
        super().__init__(f"{vendor}: shared rate limit reached, next slot in {wait:.2f}s")
        self.vendor = vendor
        self.wait = wait


_limiter: RateLimiter | None = None


def limiter() -> RateLimiter:
    """The process's limiter on the broker's Redis."""
    global _limiter
    if _limiter is None:
        from config.broker import broker_url, redis_client
        from config.settings import get_settings

        _limiter = RateLimiter(redis_client(broker_url(get_settings())))
    return _limiter


def take(vendor: str, max_wait: float = 1.0) -> None:
    """Wait for the vendor's next slot, or raise :class:`Throttled` if it is too far away."""
    from config.settings import get_settings

    slot = limiter().acquire(vendor, get_settings().qps(vendor), max_wait)
    if not slot.granted:
        raise Throttled(vendor, slot.wait)
