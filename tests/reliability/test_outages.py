"""Outages: a vendor failing every call for 30 s, and the broker restarted mid-batch."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time

import pytest
import redis
from sqlalchemy import func, select

from models import Check
from models.db import session_scope
from tests.e2e.test_soe_pipeline import check_scores, make_manifest
from tests.pipeline import wait_until
from workers.processes import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def done_checks() -> int:
    with session_scope() as session:
        return session.scalar(select(func.count()).select_from(Check).where(Check.status == "done"))


def max_attempts() -> int:
    with session_scope() as session:
        return session.scalar(select(func.max(Check.attempts)))


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_vendor_down_for_thirty_seconds_then_back(pipeline, tmp_path):
    folder = tmp_path / "readings"
    manifest = make_manifest(folder, 16)
    pipeline.start_beat()
    pipeline.start_worker("-c", "4")
    pipeline.cli("ingest", str(manifest))
    wait_until(lambda: done_checks() >= 2, 30, interval=0.05)

    pipeline.sandbox("config", {"faults": [{"kind": "error5xx", "service": "soe", "rate": 1.0}]})
    outage_start = pipeline.sandbox("stats")["requests"]
    time.sleep(30)
    outage_end = pipeline.sandbox("stats")["requests"]
    pipeline.sandbox("config", {"faults": []})
    recovered = time.monotonic()
    pipeline.cli("wait", "--batch", "readings", "--timeout", "150")

    calls = sum(outage_end.values()) - sum(outage_start.values())
    print(f"\nSOE calls during the 30 s outage: {calls}; finished {time.monotonic() - recovered:.1f}s "
          f"after recovery; most attempts spent by one check: {max_attempts()}")
    check_scores(pipeline.report("readings"), folder)
    assert max_attempts() < 8  # the breaker kept the outage from exhausting any check
    assert calls < 14 * 4 * 3  # far fewer than every pending check retrying on its own


@pytest.fixture
def private_redis(tmp_path):
    """A Redis of this test's own, with an append-only file, that the test may restart."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    port = free_port()
    data = tmp_path / "redis-data"
    data.mkdir()
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--appendonly", "yes",
            "--appendfsync", "always", "--save", "", "--dir", str(data)]

    def start() -> subprocess.Popen:
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: _ping(port), 10, interval=0.05)
        return proc

    state = {"proc": start()}
    yield port, state, start
    state["proc"].send_signal(signal.SIGKILL)
    state["proc"].wait(5)


def _ping(port: int) -> bool:
    try:
        return redis.Redis(port=port, socket_timeout=0.5).ping()
    except redis.RedisError:
        return False


@pytest.fixture
def pipeline_env(private_redis) -> dict[str, str]:
    port, _, _ = private_redis
    return {"VOXQUEUE_BROKER_URL": f"redis://127.0.0.1:{port}/0"}


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_broker_restarted_mid_batch(pipeline, private_redis, tmp_path):
    _, state, start = private_redis
    folder = tmp_path / "readings"
    manifest = make_manifest(folder, 30)
    pipeline.sandbox("config", {"latency_ms": 40})
    beat = pipeline.start_beat()
    worker = pipeline.start_worker("-c", "4")
    pipeline.cli("ingest", str(manifest))
    wait_until(lambda: done_checks() >= 3, 60, interval=0.05)

    state["proc"].send_signal(signal.SIGKILL)  # a crash, not a clean shutdown
    state["proc"].wait(5)
    at_restart = done_checks()
    time.sleep(3)
    state["proc"] = start()
    # The same worker reconnects and consumes again (kombu >= 5.7: before it, a consumer could
    # reconnect and take no more messages, celery/kombu#2629). The beat exits when it loses
    # its Redis lock (RedBeat) and is restarted, as compose's restart policy does; its
    # housekeeping re-enqueues the checks that were in flight when the broker died.
    restarts = wait_supervising_beat(pipeline, beat, "readings", 150)

    print(f"\nbroker killed with {at_restart}/30 done; all done after restart; beat restarts: {restarts}")
    assert worker.poll() is None, "the worker that lived through the broker crash is still running"
    check_scores(pipeline.report("readings"), folder)
    assert set(pipeline.sandbox("stats")["accepted"]["soe"].values()) == {1}
    assert at_restart < 30



def wait_supervising_beat(pipeline, beat, batch: str, timeout: float) -> int:
    """Wait for the batch, restarting the beat when it exits, as compose's restart policy does."""
    restarts = 0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pipeline.cli("wait", "--batch", batch, "--timeout", "2", check=False).returncode == 0:
            return restarts
        if beat.poll() is not None:
            beat = pipeline.start_beat()
            restarts += 1
    from tests.pipeline import _unfinished

    raise AssertionError(f"batch {batch} not finished within {timeout}s; open checks:\n"
                         + _unfinished(pipeline.env["VOXQUEUE_DATABASE_URL"]))


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_database_connections_cut_mid_batch(pipeline, tmp_path, database_url):
    """Every connection to the database killed mid-batch; no beat, so no housekeeping rescue:
    tasks that hit the dead connections give their leases back and retry."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from models.db import engine_for

    folder = tmp_path / "readings"
    manifest = make_manifest(folder, 24)
    pipeline.sandbox("config", {"latency_ms": 40})
    pipeline.start_worker("-c", "4")
    pipeline.cli("ingest", str(manifest))
    wait_until(lambda: done_checks() >= 3, 60, interval=0.05)

    admin = create_engine(make_url(database_url).set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        cut = conn.execute(text(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = :db AND pid <> pg_backend_pid()"), {"db": make_url(database_url).database}
        ).scalar()
    admin.dispose()
    engine_for(database_url).dispose()  # this test process's own connections were cut too
    pipeline.wait("readings", 90)

    print(f"\n{cut} database connections cut mid-batch; every job finished without housekeeping")
    check_scores(pipeline.report("readings"), folder)
    assert cut > 0
    worker_log = (pipeline.logs / "worker-0.log").read_text(errors="replace")
    assert "infrastructure error, retrying" in worker_log  # the path under test was taken
