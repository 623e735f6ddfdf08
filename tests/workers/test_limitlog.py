"""The worker's log line while a shared limit holds work back: once a minute per host."""

from __future__ import annotations

import logging

import redis

from workers.limitlog import LimitLog


def test_a_saturated_limit_is_logged_once_a_minute(redis_url, monkeypatch, caplog):
    monkeypatch.setenv("VOXQUEUE_ASR_QPS", "20")
    client = redis.Redis.from_url(redis_url)
    now = int(client.time()[0])
    for second in range(now - 3, now):  # 3 s of 18 sent and 40 kept waiting, as the limiter counts
        client.hset(f"voxqueue:rate:asr:stats:{second}", mapping={"g": 18, "h": 40})
    keeper = LimitLog(client)
    with caplog.at_level(logging.WARNING, logger="voxqueue.ratelimit"):
        assert keeper.check() and not keeper.check()
    assert [r.getMessage() for r in caplog.records] == [
        "shared rate limit holding work back: asr: 18 req/s, held by VOXQUEUE_ASR_QPS=20"]


def test_nothing_is_logged_while_no_limit_holds_work_back(redis_url, caplog):
    with caplog.at_level(logging.WARNING, logger="voxqueue.ratelimit"):
        assert not LimitLog(redis.Redis.from_url(redis_url)).check()
    assert not caplog.records
