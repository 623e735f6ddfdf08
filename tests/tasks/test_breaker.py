"""The circuit breaker in real Redis: opens on an outage, closes after the cooldown."""

from __future__ import annotations

import time

import pytest
import redis

from tasks.breaker import Breaker
from vendors.errors import Disposition, TransportError, VendorError


@pytest.fixture
def breaker(redis_url):
    client = redis.Redis.from_url(redis_url)
    yield Breaker(client, threshold=3, window=5, cooldown=0.5, prefix="test:breaker:")
    client.close()


def test_opens_after_threshold_failures_and_closes_after_cooldown(breaker):
    outage = TransportError("gme", "connection refused")
    for _ in range(2):
        breaker.record("gme", outage)
    assert breaker.open_for("gme") == 0
    breaker.record("gme", outage)
    assert 0.3 < breaker.open_for("gme") <= 0.5
    assert breaker.open_for("shumei") == 0  # one vendor's outage is its own
    time.sleep(0.6)
    assert breaker.open_for("gme") == 0


def test_a_success_resets_the_count(breaker):
    outage = TransportError("asr", "timeout")
    breaker.record("asr", outage)
    breaker.record("asr", outage)
    breaker.record("asr", None)
    breaker.record("asr", outage)
    breaker.record("asr", outage)
    assert breaker.open_for("asr") == 0


def test_throttling_and_permanent_errors_are_not_outages(breaker):
    for disposition in (Disposition.THROTTLED, Disposition.PERMANENT):
        for _ in range(5):
            breaker.record("soe", VendorError("soe", "x", disposition=disposition))
    assert breaker.open_for("soe") == 0


def test_errors_of_other_parties_do_not_open_the_circuit(breaker):
    for _ in range(5):
        breaker.record("soe", TransportError("audio", "could not fetch the file"))
    assert breaker.open_for("soe") == 0


def test_an_soe_request_stops_retrying_in_place_once_its_failures_open_the_circuit(breaker, monkeypatch):
    from tasks import breaker as breaker_module
    from tasks.breaker import CircuitOpen
    from tasks.soe import with_chunk_retries

    monkeypatch.setattr(breaker_module, "_breaker", breaker)
    calls = []

    def down():
        calls.append(1)
        raise VendorError("soe", "http_5xx", "HTTP 503", disposition=Disposition.RETRY)

    with pytest.raises(CircuitOpen):
        with_chunk_retries(down, None, sleep=lambda s: None)
    assert len(calls) == 3  # the threshold: each failed call counted, none sent once it opened

    breaker.client.delete("test:breaker:soe:open")
    breaker._seen.clear()
    calls.clear()
    monkeypatch.setattr(breaker, "threshold", 10)
    with pytest.raises(VendorError):  # below the threshold: the request's own four tries
        with_chunk_retries(down, None, sleep=lambda s: None)
    assert len(calls) == 4
