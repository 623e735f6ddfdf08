"""A request limit per vendor shared by every worker process on every host.

GCRA (the generic cell rate algorithm) in one Lua script, atomic in Redis: the
key holds the theoretical arrival time of the next request; each caller
reserves the next free slot, ``1/qps`` seconds after the previous one, and
sleeps until it. Slots are spaced evenly, so any one-second window holds at
most ``qps + 1`` requests. A caller whose slot is further away than it is
willing to wait reserves nothing and is told how long to stay away, so a
throttled task can step aside (a countdown) instead of holding a worker thread.
Redis's own clock is the time base, so hosts with skewed clocks agree.

Slots are paced a little below the configured limit (:func:`paced`): 93 % of
it, and at least two requests a second spare below about 30/s (18/s for a
limit of 20). A thread that wakes late from its wait (CPU or GIL contention) would send
late while the next one sends on time, bunching requests; so after its wait
each request is also admitted through a sliding one-second log of actual send
times (a sorted set), which holds any one-second window of sends to the paced
rate. The spare requests absorb jitter between sending and arrival: a thread
that waits for the GIL between its slot and its send, a vendor that stalls
(measured here: up to three requests bunched at 20/s; at 200/s, 190 paced gave
peaks of 197-206 in a sliding second while the sandbox, starved of CPU, stalled
up to 60 ms; scheduled ahead of the workers, as a vendor's own machines would
be, 186 paced gives peaks of 190-192).
When the slot is free at once and the log has room, reserving and admitting
are one script, one round trip.

The same scripts count, per vendor and per second of Redis time, the requests
granted and those the limit held back (that waited for their slot or for room in
the log, or were told to stay away): :func:`limit_states` reads the last
:data:`WINDOW_S` seconds of them, so ``voxqueue status``, ``voxqueue wait`` and the
worker's log can say when a limit, not the vendor or the workers, sets the pace.
They also add the request to the pipeline's counters (:mod:`tasks.metrics`:
``vendor_requests``, or ``vendor_throttles`` when it is sent away), so a vendor call
costs one round trip to Redis before it leaves, not two.
"""

from __future__ import annotations

import functools
import time
import uuid
from dataclasses import dataclass

import redis

from tasks import metrics

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local function count(base, field)
  local key = base .. ':' .. t[1]
  redis.call('HINCRBY', key, field, 1)
  redis.call('EXPIRE', key, 120)
end
-- One more of a pipeline counter (tasks.metrics: its hash and a field), none when field is ''.
local function tally(key, field)
  if field ~= '' then redis.call('HINCRBY', key, field, 1) end
end
"""

# The wait in µs for a reserved slot (>= 0), or -(wait) when it is further than max_wait (refused).
_RESERVE = """
local function reserve(key, interval, max_wait)
  local tat = tonumber(redis.call('GET', key) or now)
  if tat < now then tat = now end
  local wait = tat - now
  if wait > max_wait then return -wait end
  redis.call('SET', key, tat + interval, 'PX', math.ceil((wait + interval) / 1000) + 1000)
  return wait
end
"""

# The (positive) Redis time in µs at which the send was admitted and logged,
# else minus the µs until the oldest send leaves the one-second window.
_ADMIT = """
local function admit(key, limit, member)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - 1000000)
  if redis.call('ZCARD', key) < limit then
    redis.call('ZADD', key, now, member)
    redis.call('PEXPIRE', key, 2000)
    return now
  end
  local oldest = tonumber(redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')[2])
  return -(oldest + 1000000 - now + 1)
end
"""

# Counts (KEYS[n], the vendor's stats prefix, one hash per second): "g" granted, "h" held back.
# KEYS[1] the vendor's slot key, KEYS[2] stats; ARGV[1] interval (µs), ARGV[2] max wait (µs).
GCRA = _NOW + _RESERVE + """
local wait = reserve(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]))
if wait ~= 0 then count(KEYS[2], 'h') end
return wait
"""

# KEYS[1] the vendor's send log, KEYS[2] stats, KEYS[3] the metrics hash; ARGV[1] limit per
# second, ARGV[2] a unique member, ARGV[3] the metrics field of a granted request ('' for none).
WINDOW = _NOW + _ADMIT + """
local admitted = admit(KEYS[1], tonumber(ARGV[1]), ARGV[2])
if admitted > 0 then
  count(KEYS[2], 'g')
  tally(KEYS[3], ARGV[3])
end
return admitted
"""

# Both in one round trip when the slot is free now (the common case below the limit):
# KEYS slot key, send log, stats, metrics hash; ARGV interval, max wait, limit, member, and the
# metrics fields of a granted and of a refused request ('' for none). Returns {reserve, admit},
# admit 0 when the slot lies ahead (the caller sleeps, then admits).
TAKE = _NOW + _RESERVE + _ADMIT + """
local wait = reserve(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]))
if wait ~= 0 then
  count(KEYS[3], 'h')
  if wait < 0 then tally(KEYS[4], ARGV[6]) end
  return {wait, 0}
end
local admitted = admit(KEYS[2], tonumber(ARGV[3]), ARGV[4])
count(KEYS[3], admitted > 0 and 'g' or 'h')
if admitted > 0 then tally(KEYS[4], ARGV[5]) end
return {0, admitted}
"""


@dataclass(frozen=True)
class Slot:
    granted: bool
    wait: float  # seconds: until the reserved slot, or how long to stay away
    sent_at: float | None = None  # Redis time of the admitted send (acquire only)
    counted: bool = False  # the script added it to the pipeline's counters (acquire's ``tally``)


@dataclass(frozen=True)
class Tally:
    """Where :meth:`RateLimiter.acquire` counts the request in the same round trip: the metrics
    hash and the fields of a granted request and of one sent away (``tasks.metrics``)."""

    key: str
    granted: str
    refused: str


HEADROOM = 0.93  # the share of a high limit that is used
SPARE = 2.0  # requests a second kept spare at least (limits under ~30/s), never more than a tenth


def paced(qps: float, headroom: float = HEADROOM) -> float:
    """The rate the limiter sends at for a limit of ``qps`` (``headroom`` 1.0: the limit itself)."""
    if headroom >= 1.0:
        return qps
    return qps - max(qps * (1 - headroom), min(SPARE, qps * 0.1))


class RateLimiter:
    HEADROOM = HEADROOM

    def __init__(self, client: redis.Redis, prefix: str = "voxqueue:rate:", headroom: float = HEADROOM) -> None:
        self.client = client
        self.prefix = prefix
        self.headroom = headroom
        self._script = client.register_script(GCRA)
        self._window = client.register_script(WINDOW)
        self._take = client.register_script(TAKE)

    def reserve(self, vendor: str, qps: float, max_wait: float) -> Slot:
        """Reserve the vendor's next slot if it is at most ``max_wait`` seconds away."""
        if qps <= 0:
            return Slot(True, 0.0)
        result = int(self._script(keys=[self.prefix + vendor, self._stats(vendor)],
                                  args=[self._interval_us(qps), int(max_wait * 1_000_000)]))
        return Slot(result >= 0, abs(result) / 1_000_000)

    def admit(self, vendor: str, qps: float, sleep=time.sleep, tally: Tally | None = None) -> float:
        """Wait until a send fits in the last second's log of sends; log it, return its Redis time."""
        member = uuid.uuid4().hex
        keys = [self.prefix + vendor + ":log", self._stats(vendor), tally.key if tally else self._stats(vendor)]
        while (answer := int(self._window(keys=keys, args=[self._window_limit(qps), member,
                                                           tally.granted if tally else ""]))) < 0:
            sleep(-answer / 1_000_000)
        return answer / 1_000_000

    def acquire(self, vendor: str, qps: float, max_wait: float, sleep=time.sleep,
                tally: Tally | None = None) -> Slot:
        """Reserve and sleep until the slot, then be admitted; a refused slot returns at once.

        One round trip when the slot is free and the window has room; otherwise the
        caller sleeps until its slot and is admitted through :meth:`admit`. With ``tally`` the
        request is also counted in the pipeline's counters by the same scripts (no round trip
        of its own); the slot says so (``counted``). No limit (``qps`` <= 0) counts nothing.
        """
        if qps <= 0:
            return Slot(True, 0.0)
        key = self.prefix + vendor
        wait_us, admitted_us = (int(v) for v in self._take(
            keys=[key, key + ":log", self._stats(vendor), tally.key if tally else self._stats(vendor)],
            args=[self._interval_us(qps), int(max_wait * 1_000_000), self._window_limit(qps), uuid.uuid4().hex,
                  tally.granted if tally else "", tally.refused if tally else ""]))
        counted = tally is not None
        if wait_us < 0:
            return Slot(False, -wait_us / 1_000_000, counted=counted)
        if admitted_us > 0:
            return Slot(True, 0.0, admitted_us / 1_000_000, counted=counted)
        if wait_us > 0:
            sleep(wait_us / 1_000_000)
        return Slot(True, wait_us / 1_000_000, self.admit(vendor, qps, sleep, tally), counted=counted)

    def _stats(self, vendor: str) -> str:
        return self.prefix + vendor + ":stats"

    def counts(self, vendors: tuple[str, ...], window: int) -> dict[str, tuple[int, int, int]]:
        """Per vendor: requests granted and held back in the last ``window`` whole seconds (Redis
        time), and how many of those seconds saw a request."""
        now = int(self.client.time()[0])
        with self.client.pipeline(transaction=False) as pipe:
            for vendor in vendors:
                for second in range(now - window, now):
                    pipe.hmget(f"{self._stats(vendor)}:{second}", "g", "h")
            replies = iter(pipe.execute())
        found = {}
        for vendor in vendors:
            rows = [(int(g or 0), int(h or 0)) for g, h in (next(replies) for _ in range(window))]
            found[vendor] = (sum(g for g, _ in rows), sum(h for _, h in rows),
                             sum(1 for g, h in rows if g or h))
        return found

    def _interval_us(self, qps: float) -> int:
        return int(1_000_000 / paced(qps, self.headroom))

    def _window_limit(self, qps: float) -> int:
        return max(1, int(paced(qps, self.headroom)))


class Throttled(Exception):
    """The vendor's shared limit is saturated: come back after ``wait`` seconds."""

    def __init__(self, vendor: str, wait: float) -> None:
        super().__init__(f"{vendor}: shared rate limit reached, next slot in {wait:.2f}s")
        self.vendor = vendor
        self.wait = wait


_limiter: RateLimiter | None = None


@functools.cache
def _tally(vendor: str) -> Tally:
    """The counters :func:`tasks.metrics.slot` would add, for the limiter's scripts to add."""
    return Tally(metrics.KEY, metrics.field("vendor_requests", {"vendor": vendor}),
                 metrics.field("vendor_throttles", {"vendor": vendor, "source": "shared_limit"}))


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

    slot = limiter().acquire(vendor, get_settings().qps(vendor), max_wait, tally=_tally(vendor))
    if not slot.counted:  # no limit: counted on its own (a round trip the script spares otherwise)
        metrics.slot(vendor, slot.granted)  # a request leaves now (its before_send hook), or steps aside
    if not slot.granted:
        raise Throttled(vendor, slot.wait)


# The limits the limiter knows: a vendor's, or one API's where it has its own (GME's results).
LIMITS = ("soe", "gme", "gme_result", "shumei", "tupu", "asr")
WINDOW_S = 10  # seconds of counts a reading covers
HELD_SHARE = 0.1  # saturated: at least this share of the window's requests was held back ...
BUSY_SHARE = 0.5  # ... while the granted rate was at least this share of the paced rate


@dataclass(frozen=True)
class LimitState:
    """One shared limit over the last :data:`WINDOW_S` seconds."""

    service: str  # a vendor, or vendor_api (gme_result: DescribeScanResultList)
    rate: float  # requests granted per second, over the seconds of the window that had requests
    limit: float  # the configured requests per second
    setting: str  # the variable that sets it
    saturated: bool  # the limit, not the work, set the pace: requests waited for it
    granted: int = 0
    held: int = 0  # requests that waited for a slot, or were sent away to come back later
    window: int = WINDOW_S

    def line(self) -> str:
        """``soe: 46 req/s, held by VOXQUEUE_SOE_QPS=50``"""
        return f"{self.service}: {self.rate:.0f} req/s, held by {self.setting}={self.limit:g}"


def setting_name(service: str) -> str:
    return f"VOXQUEUE_{service.upper()}_QPS"


def limit_states(client: redis.Redis | None = None) -> dict[str, LimitState]:
    """Every shared limit's state over the last :data:`WINDOW_S` seconds, by service (a Redis
    round trip for the time, one pipelined for the counts). Raises redis errors."""
    from config.settings import get_settings

    settings = get_settings()
    rl = limiter() if client is None else RateLimiter(client)
    states = {}
    for service, (granted, held, busy) in rl.counts(LIMITS, WINDOW_S).items():
        limit = settings.qps(service)
        rate = granted / busy if busy else 0.0
        saturated = (held > 0 and held >= HELD_SHARE * (granted + held)
                     and rate >= BUSY_SHARE * paced(limit, rl.headroom))
        states[service] = LimitState(service, rate, limit, setting_name(service), saturated,
                                     granted, held)
    return states


def held_lines(client: redis.Redis | None = None) -> list[str]:
    """A line per limit that is holding work back now (empty when none is)."""
    return [state.line() for state in limit_states(client).values() if state.saturated]
