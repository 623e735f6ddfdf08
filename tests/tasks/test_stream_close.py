"""``stream close`` against the sandbox over a real socket: retried like every vendor call,
through the shared limit and circuit breaker; a close that cannot be completed leaves the
stream running, so it can be closed again."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator

import pytest
import redis
import requests

from config.settings import get_settings, reset_settings
from models import Batch, Check, Job
from models.db import session_scope
from sandbox.server import SandboxThread
from sandbox.tupu import UNKNOWN_TASK
from tasks import breaker, clients, ratelimit, streams
from tasks.moderation import MAX_ATTEMPTS
from tests.sandbox.moderation_helpers import moderation_config, private_pem, public_pem, stream_with
from vendors.tc3 import Credentials

NOWHERE = "http://127.0.0.1:9/callbacks/tupu"  # PASS streams with callbackRules 0: never called


@pytest.fixture
def sandbox(database_url, redis_url, monkeypatch, tmp_path) -> Iterator[SandboxThread]:
    config = moderation_config(Credentials("AKID" + secrets.token_hex(16), secrets.token_hex(20)),
                               result_delay_s=30.0)
    (tmp_path / "ours.pem").write_bytes(private_pem("client"))
    (tmp_path / "tupu.pem").write_bytes(public_pem("server"))
    with SandboxThread(config) as running:
        env = {"TUPU_ENDPOINT": running.url, "TUPU_SECRET_ID": config.tupu_secret_id,
               "TUPU_PRIVATE_KEY": str(tmp_path / "ours.pem"), "TUPU_PUBLIC_KEY": str(tmp_path / "tupu.pem"),
               "BROKER_URL": redis_url, "BREAKER_COOLDOWN": "0.5"}
        for name, value in env.items():
            monkeypatch.setenv("VOXQUEUE_" + name, value)
        monkeypatch.setattr(breaker, "_breaker", None)  # this test's Redis and settings
        monkeypatch.setattr(ratelimit, "_limiter", None)
        reset_settings()
        yield running


def configure(sandbox: SandboxThread, **changes) -> None:
    with requests.Session() as http:
        http.trust_env = False
        http.post(sandbox.url + "/_sandbox/config", json=changes, timeout=5).raise_for_status()


def running_streams(n: int) -> list[str]:
    """``n`` streams submitted to the sandbox and recorded as running checks; their job ids."""
    client = clients.tupu(get_settings())
    with session_scope() as session:
        batch = Batch(name="live")
        for i in range(n):
            task_id = client.submit_stream(f"key-{i}", stream_with("PASS"), callback_url=NOWHERE).task_id
            job = Job(batch=batch, key=f"live-{i}", external_id=f"live-{i}", seq=i, stream="rtmp://x/y",
                      services=["tupu"], options={}, status="running")
            session.add(Check(job=job, service="tupu", status="running", vendor_task_id=task_id))
    return [f"live-{i}" for i in range(n)]


def status_of(job_id: str) -> str:
    with session_scope() as session:
        return streams.find_stream(session, job_id, None).status


def closes(sandbox: SandboxThread) -> int:
    return sandbox.stats()["requests"].get("tupu.close", 0)


def test_transient_failures_of_the_close_are_retried(sandbox):
    jobs = running_streams(8)
    configure(sandbox, seed=5, faults=[{"kind": "error5xx", "rate": 0.2, "service": "tupu", "action": "close"},
                                       {"kind": "drop", "rate": 0.1, "service": "tupu", "action": "close"}])
    waits: list[float] = []
    for job_id in jobs:
        assert streams.close(job_id, sleep=waits.append) == streams.Closed("closing", None)
        assert status_of(job_id) == "closing"
    faulted = sandbox.stats()["faults_by_action"].get("tupu.close", 0)
    assert faulted > 0 and closes(sandbox) == len(jobs) + faulted
    assert len(waits) == faulted and all(0 < w <= 8 for w in waits)


def test_a_close_that_keeps_failing_leaves_the_stream_running_to_close_again(sandbox):
    (job_id,) = running_streams(1)
    configure(sandbox, faults=[{"kind": "error5xx", "rate": 1.0, "service": "tupu", "action": "close"}])
    waits: list[float] = []
    with pytest.raises(streams.StreamError) as failed:
        streams.close(job_id, sleep=waits.append)
    message = str(failed.value)
    assert "\n" not in message and "not closed" in message and "still running" in message
    assert f"gave up after {MAX_ATTEMPTS} attempts" in message and "HTTP 503" in message
    assert closes(sandbox) == MAX_ATTEMPTS
    assert len(waits) == MAX_ATTEMPTS - 1 and waits[-1] > waits[0] and sum(waits) < 30  # backoff, bounded
    assert status_of(job_id) == "running"

    configure(sandbox, faults=[])
    assert streams.close(job_id, sleep=waits.append) == streams.Closed("closing", None)
    assert streams.close(job_id) == streams.Closed("closing", None)  # again: harmless, Tupu not asked
    assert closes(sandbox) == MAX_ATTEMPTS + 1


def test_failed_closes_count_towards_the_vendors_circuit(sandbox, monkeypatch):
    monkeypatch.setenv("VOXQUEUE_BREAKER_THRESHOLD", "3")
    monkeypatch.setenv("VOXQUEUE_BREAKER_COOLDOWN", "0.3")
    reset_settings()
    (job_id,) = running_streams(1)
    configure(sandbox, faults=[{"kind": "error5xx", "rate": 1.0, "service": "tupu", "action": "close"}])
    waits: list[float] = []

    def sleep(seconds: float) -> None:  # every wait cut short, so the circuit is still open after one
        waits.append(seconds)
        time.sleep(min(seconds, 0.05))

    with pytest.raises(streams.StreamError):
        streams.close(job_id, sleep=sleep)
    assert breaker.breaker().open_for("tupu") > 0  # the closes' failures opened it: submissions step aside too
    assert closes(sandbox) == MAX_ATTEMPTS
    assert len(waits) > MAX_ATTEMPTS - 1  # the waits for the open circuit spent no attempt


def test_an_open_circuit_delays_the_close_without_spending_attempts(sandbox, redis_url):
    (job_id,) = running_streams(1)
    redis.Redis.from_url(redis_url).set("voxqueue:breaker:tupu:open", "1", px=600)
    started = time.monotonic()
    assert streams.close(job_id).status == "closing"
    assert time.monotonic() - started >= 0.5
    assert closes(sandbox) == 1


def test_closes_keep_to_the_shared_rate_limit(sandbox, monkeypatch):
    jobs = running_streams(5)
    monkeypatch.setenv("VOXQUEUE_TUPU_QPS", "4")
    reset_settings()
    started = time.monotonic()
    for job_id in jobs:
        streams.close(job_id)
    assert time.monotonic() - started >= (len(jobs) - 1) / 4


def test_a_refused_close_is_not_retried(sandbox):
    (job_id,) = running_streams(1)
    with session_scope() as session:
        streams.find_stream(session, job_id, None).vendor_task_id = "5c8213b9bc807806aab0a321"  # not Tupu's
    with pytest.raises(streams.StreamError) as failed:
        streams.close(job_id, sleep=pytest.fail)
    assert str(UNKNOWN_TASK) in str(failed.value) and closes(sandbox) == 1
    assert status_of(job_id) == "running"


@pytest.mark.parametrize(("status", "task_id", "says"), [
    ("pending", None, "not submitted to tupu yet"), ("failed", "t-1", "failed: tupu: code 5001")])
def test_streams_that_cannot_be_closed_say_why(database_url, status, task_id, says):
    with session_scope() as session:
        job = Job(batch=Batch(name="live"), key="s", external_id="s", seq=1, stream="rtmp://x/y",
                  services=["tupu"], options={})
        session.add(Check(job=job, service="tupu", status=status, vendor_task_id=task_id,
                          error="tupu: code 5001" if status == "failed" else None))
    with pytest.raises(streams.StreamError, match=says):
        streams.close("s")
