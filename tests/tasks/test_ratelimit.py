"""The shared limit in real Redis: slots are spaced, refusals do not reserve, processes agree."""

from __future__ import annotations

import itertools
import multiprocessing
import re
import threading
import time

import pytest
import redis

from tasks.ratelimit import RateLimiter, held_lines, limit_states, paced


@pytest.fixture
def client(redis_url):
    c = redis.Redis.from_url(redis_url)
    yield c
    c.close()


def peak_per_window(stamps: list[float], window: float = 1.0) -> int:
    stamps = sorted(stamps)
    best, start = 0, 0
    for end, t in enumerate(stamps):
        while t - stamps[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


def slot_times(limiter, vendor: str, qps: float, n: int) -> list[float]:
    """When each reserved slot falls, in Redis's clock (the limiter's time base)."""
    times = []
    for _ in range(n):
        seconds, micros = limiter.client.time()
        times.append(seconds + micros / 1e6 + limiter.reserve(vendor, qps=qps, max_wait=10).wait)
    return times


def test_slots_are_spaced_by_the_interval(client):
    """Each gap is measured across two round trips to Redis, so it carries their jitter; the mean does not."""
    limiter = RateLimiter(client, prefix="test:", headroom=1.0)
    slots = slot_times(limiter, "gme", 10, 21)
    gaps = [b - a for a, b in itertools.pairwise(slots)]
    assert all(g == pytest.approx(0.1, abs=0.02) for g in gaps)  # none bunched, none skipped
    assert (slots[-1] - slots[0]) / 20 == pytest.approx(0.1, abs=0.0005)


def test_a_refused_caller_reserves_nothing(client):
    limiter = RateLimiter(client, prefix="test:", headroom=1.0)
    for _ in range(5):
        limiter.reserve("asr", qps=2, max_wait=10)  # books 2.5 s ahead
    refused = limiter.reserve("asr", qps=2, max_wait=0.5)
    assert not refused.granted and refused.wait == pytest.approx(2.5, abs=0.05)
    again = limiter.reserve("asr", qps=2, max_wait=10)
    assert again.granted and again.wait == pytest.approx(2.5, abs=0.05)


def test_vendors_do_not_share_a_budget(client):
    limiter = RateLimiter(client, prefix="test:")
    for _ in range(20):
        limiter.reserve("shumei", qps=1, max_wait=100)
    assert limiter.reserve("gme", qps=1, max_wait=0).granted


def _hammer(url: str, qps: float, count: int, out) -> None:
    limiter = RateLimiter(redis.Redis.from_url(url), prefix="test:")
    stamps = []
    for _ in range(count):
        stamps.append(limiter.acquire("tupu", qps, max_wait=60).sent_at)
    out.put(stamps)


def test_processes_share_one_limit(redis_url):
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_hammer, args=(redis_url, 20, 15, out)) for _ in range(3)]
    for p in procs:
        p.start()
    stamps = [t for _ in procs for t in out.get(timeout=60)]
    for p in procs:
        p.join(10)
    assert len(stamps) == 45
    assert peak_per_window(stamps) <= 21
    assert max(stamps) - min(stamps) >= 44 / 20 - 0.1  # 45 requests at 20/s take at least 2.2 s


def test_pacing_keeps_headroom_below_the_limit(client):
    limiter = RateLimiter(client, prefix="test:")  # the default: two a second spare at 20/s
    slots = slot_times(limiter, "shumei", 20, 21)  # 18/s, not 20/s (mean of 20 gaps: see above)
    assert (slots[-1] - slots[1]) / 19 == pytest.approx(1 / 18, abs=0.0005)
    slots = slot_times(limiter, "gme", 200, 201)  # and 93 % of a high limit (mean of 199 gaps)
    assert (slots[-1] - slots[1]) / 199 == pytest.approx(1 / 186, abs=0.0001)


def test_late_senders_are_held_to_the_limit_in_any_second(client):
    """Slots taken long ago and sent late in a bunch: the send log spreads them out again."""
    limiter = RateLimiter(client, prefix="test:", headroom=1.0)
    stamps = [limiter.admit("gme", qps=5) for _ in range(12)]  # as if every thread woke late together
    assert peak_per_window(stamps) <= 5
    assert max(stamps) - min(stamps) >= 2.0  # 12 sends at 5 per second need two windows more


def _whole_second(client) -> None:
    """Sleep until the next second of Redis's clock begins (the counts' buckets)."""
    micros = client.time()[1]
    time.sleep(1 - micros / 1e6 + 0.01)


def _send_for(limiter, vendor: str, qps: float, seconds: float, threads: int) -> None:
    end = time.monotonic() + seconds

    def sender() -> None:
        while time.monotonic() < end:
            limiter.acquire(vendor, qps=qps, max_wait=5)

    pool = [threading.Thread(target=sender) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()


def test_limit_states_say_when_a_limit_holds_work_back(client, monkeypatch):
    monkeypatch.setenv("VOXQUEUE_SOE_QPS", "20")
    limiter = RateLimiter(client)  # the prefix the workers use
    _whole_second(client)
    _send_for(limiter, "soe", 20, 2.0, threads=6)  # six senders want far more than 20/s
    _whole_second(client)

    states = limit_states(client)
    soe = states["soe"]
    assert soe.saturated and soe.held > 0 and (soe.limit, soe.setting) == (20, "VOXQUEUE_SOE_QPS")
    assert paced(20) * 0.5 <= soe.rate <= 20  # never above the limit
    assert re.fullmatch(r"soe: \d+ req/s, held by VOXQUEUE_SOE_QPS=20", soe.line())
    assert held_lines(client) == [soe.line()]
    assert not states["gme"].saturated and states["gme"].rate == 0  # a vendor nobody called
    assert set(states) == {"soe", "gme", "gme_result", "shumei", "tupu", "asr"}


def test_a_limit_with_room_is_not_reported(client, monkeypatch):
    monkeypatch.setenv("VOXQUEUE_GME_RESULT_QPS", "1200")
    limiter = RateLimiter(client)
    _whole_second(client)
    for _ in range(20):  # one caller, one request at a time: the limit never makes it wait
        assert limiter.acquire("gme_result", qps=1200, max_wait=5).wait == 0
        time.sleep(0.005)
    _whole_second(client)

    state = limit_states(client)["gme_result"]
    assert (state.granted, state.held, state.saturated) == (20, 0, False)
    assert state.rate == 20 and state.setting == "VOXQUEUE_GME_RESULT_QPS" and state.limit == 1200
    assert held_lines(client) == []
