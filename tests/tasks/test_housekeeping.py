"""Housekeeping rounds against a real Redis and both databases: which checks go again, and when.

Workers are stood in for by what they leave in the broker (heartbeats, the checks
their messages carry) and in the database (leases with their holder); what a
round sends is read back from the Redis queues.
"""

from __future__ import annotations

import base64
import datetime as dt
import json

import pytest
import redis
from sqlalchemy import select, update

from models import Check, CheckStatus
from models.base import utcnow
from models.db import session_scope, transaction
from tasks import housekeeping, liveness
from tasks.ingest import ingest
from tasks.lifecycle import ENDED
from tests.tasks.test_ingest import write_wav

LIVE, DEAD = "host:1:live", "host:2:dead"


@pytest.fixture
def broker(redis_url, monkeypatch, database_url) -> redis.Redis:
    monkeypatch.setenv("VOXQUEUE_BROKER_URL", redis_url)
    from config.settings import reset_settings

    reset_settings()
    client = redis.Redis.from_url(redis_url)
    housekeeping.run_round()  # the broker's first round: its epoch begins (a new broker, nothing lost)
    client.set(housekeeping.EPOCH_KEY, "1000:old")  # long enough ago that heartbeats count again
    yield client
    client.close()


def checks(tmp_path, rows: int, services: str = "shumei") -> list[int]:
    write_wav(tmp_path / "a.wav")
    lines = ["id,audio,services"] + [f"clip{i},a.wav,{services}" for i in range(rows)]
    (tmp_path / "clips.csv").write_text("\n".join(lines) + "\n")
    ingest(tmp_path / "clips.csv")  # recorded, not sent: no enqueue
    with session_scope() as session:
        return list(session.scalars(select(Check.id).order_by(Check.id)))


def set_checks(ids: list[int], **values) -> None:
    with transaction() as conn:
        conn.execute(update(Check).where(Check.id.in_(ids)).values(**values))


def held_by(holder: str, ids: list[int]) -> None:
    """As a claim leaves them: running, leased for five minutes, by ``holder``."""
    set_checks(ids, status=CheckStatus.RUNNING.value, holder=holder, lease_until=utcnow() + dt.timedelta(minutes=5))


def stale(ids: list[int]) -> None:
    set_checks(ids, updated_at=utcnow() - dt.timedelta(minutes=1))


def beating(client: redis.Redis, holder: str, carries: list[int] | None = None) -> None:
    liveness.Heartbeat(client, holder, (lambda: carries) if carries is not None else None).beat()


def sent(client: redis.Redis, queue: str = "shumei") -> list[list[int]]:
    """The check ids of each message waiting in ``queue`` (Celery's protocol 2 body)."""
    messages = []
    for raw in client.lrange(queue, 0, -1):
        args = json.loads(base64.b64decode(json.loads(raw)["body"]))[0]
        messages.append(args[0] if isinstance(args[0], list) else [args[0]])
    return sorted(messages)


def lease_of(check_id: int) -> dt.datetime | None:
    with session_scope() as session:
        value = session.get(Check, check_id).lease_until
        return value.replace(tzinfo=value.tzinfo or dt.UTC) if value else None


def test_a_dead_workers_checks_go_again_alone_at_once_and_once(broker, tmp_path):
    ids = checks(tmp_path, 4)
    held_by(DEAD, ids[:2])
    held_by(LIVE, ids[2:])
    beating(broker, LIVE)
    broker.zadd(liveness.REGISTRY, {DEAD: 1})  # it beat once, then died: its key has lapsed

    found = housekeeping.run_round()

    assert found.dead == [DEAD]
    assert sent(broker) == [[ids[0]], [ids[1]]]  # alone, where the claim charges the death
    assert lease_of(ids[0]) == ENDED and lease_of(ids[2]) > utcnow()  # the live worker keeps its own
    broker.delete("shumei")
    assert housekeeping.run_round().alone == [] and sent(broker) == []  # not again for the same death
    assert DEAD.encode() not in broker.zrange(liveness.REGISTRY, 0, -1)


def test_what_a_dead_workers_messages_carried_goes_again_grouped(broker, tmp_path):
    ids = checks(tmp_path, 5)
    beating(broker, DEAD, carries=ids[:3])  # received, not yet started
    broker.delete(liveness.ALIVE + DEAD)  # then killed
    beating(broker, LIVE, carries=[ids[2]])  # one of them went again and a live worker has it

    housekeeping.run_round()

    assert sent(broker) == [[ids[0], ids[1]]]  # not stale yet: only what the dead one carried


def test_a_waiting_check_no_live_worker_carries_goes_again_when_its_queue_is_empty(broker, tmp_path):
    ids = checks(tmp_path, 3)
    stale(ids)
    beating(broker, LIVE, carries=[ids[0]])  # a countdown of a retry, in a live worker's memory

    broker.rpush("shumei", "somebody else's message")  # the queue is not empty: wait
    assert housekeeping.run_round().grouped == []
    broker.delete("shumei")

    assert [i for i, _ in housekeeping.run_round().grouped] == ids[1:]
    assert sent(broker) == [ids[1:]]


def test_a_check_updated_recently_or_at_the_vendor_is_not_sent_again(broker, tmp_path):
    ids = checks(tmp_path, 3)
    stale(ids[:2])
    set_checks([ids[1]], status=CheckStatus.RUNNING.value, vendor_task_id="task-1")  # awaiting the result
    stale([ids[1]])

    assert [i for i, _ in housekeeping.run_round().grouped] == [ids[0]]  # ids[2] was just recorded


def test_a_broker_that_lost_its_data_gets_every_waiting_check_again_and_reaps_nobody_at_once(broker, tmp_path):
    ids = checks(tmp_path, 4)
    held_by(DEAD, [ids[0]])  # its heartbeat went with the data, like every other's
    broker.flushdb()

    found = housekeeping.run_round()

    assert found.broker_lost and found.dead == []  # heartbeats are given time to come back
    assert sent(broker) == [ids[1:]]  # waiting ones at once, though recorded just now
    assert lease_of(ids[0]) > utcnow()
    assert not housekeeping.run_round().broker_lost  # the epoch is marked again


def test_a_new_broker_is_not_taken_for_a_lost_one(redis_url, monkeypatch, database_url, tmp_path):
    monkeypatch.setenv("VOXQUEUE_BROKER_URL", redis_url)
    from config.settings import reset_settings

    reset_settings()
    ids = checks(tmp_path, 2)
    found = housekeeping.run_round()
    assert not found.broker_lost and found.grouped == []  # a first round sends nothing recorded just now
    assert len(ids) == 2


def test_one_round_at_a_time(broker, tmp_path):
    broker.set(housekeeping.LOCK_KEY, "another process")
    assert housekeeping.run_round() is None
