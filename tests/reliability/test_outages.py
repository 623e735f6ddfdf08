"""Outages: a vendor failing every call for 30 s, the broker restarted mid-batch with its data, the
database's connections cut."""

from __future__ import annotations

import signal
import time

import pytest
from sqlalchemy import func, select

from config.settings import Settings
from models import Check
from models.db import session_scope
from tests.e2e.test_soe_pipeline import check_scores, make_manifest
from tests.pipeline import wait_until

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
    # The circuit opens after `threshold` failed calls (10), for 10 s: at most four openings in
    # 30 s, each after its ten failures and the four threads' calls in flight. Without the
    # breaker every pending check would retry on its own: 14 checks x 4 tries x 3 chunks.
    defaults = {name: field.default for name, field in Settings.model_fields.items()}
    openings = 30 // defaults["breaker_cooldown"] + 1
    assert calls <= openings * (defaults["breaker_threshold"] + 4), calls


@pytest.fixture
def pipeline_env(private_redis) -> dict[str, str]:
    port, _, _ = private_redis
    return {"VOXQUEUE_BROKER_URL": f"redis://127.0.0.1:{port}/0"}


@pytest.mark.persistent_redis
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_broker_restarted_mid_batch_with_its_data(pipeline, private_redis, tmp_path):
    """A broker that keeps its data (an append-only file) restarts: the same worker and beat
    reconnect and go on, and nothing is evaluated twice (tests/e2e/test_recovery.py: without it)."""
    _, state, start = private_redis
    folder = tmp_path / "readings"
    manifest = make_manifest(folder, 30)
    # 90 calls of 150 ms on 4 threads: at least 3.4 s, whatever the CPU, so the crash lands
    # mid-batch (at 40 ms a call, a loaded CI machine noticed the third file only once all 30 were done).
    pipeline.sandbox("config", {"latency_ms": 150})
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
    # reconnect and take no more messages, celery/kombu#2629); the beat takes its lock again.
    pipeline.wait("readings", 90)

    print(f"\nbroker killed with {at_restart}/30 done; all done after its restart")
    assert worker.poll() is None, "the worker that lived through the broker crash is still running"
    assert beat.poll() is None, "the beat lived through the broker crash"
    check_scores(pipeline.report("readings"), folder)
    assert set(pipeline.sandbox("stats")["accepted"]["soe"].values()) == {1}
    assert at_restart < 30


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_database_connections_cut_mid_batch(pipeline, tmp_path, database_url):
    """Every connection to the database killed mid-batch: tasks that hit the dead connections give
    their leases back and retry (the worker's own housekeeping would resend them only later)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from models.db import engine_for

    folder = tmp_path / "readings"
    # Long enough (48 files of 3 chunks at 150 ms a call on 4 threads: about 5 s) for the cuts to
    # land mid-batch: a file costs four quick statements, so a short batch ended before them.
    manifest = make_manifest(folder, 48)
    pipeline.sandbox("config", {"latency_ms": 150})
    pipeline.start_worker("-c", "4")
    pipeline.cli("ingest", str(manifest))
    wait_until(lambda: done_checks() >= 3, 60, interval=0.05)

    admin = create_engine(make_url(database_url).set(database="postgres"), isolation_level="AUTOCOMMIT")
    cut = 0
    with admin.connect() as conn:
        # Cut a few times while the batch runs: one cut can land between two tasks' statements,
        # when every connection is idle in its pool and is only found dead at its next use.
        for _ in range(5):
            cut += conn.execute(text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = :db AND pid <> pg_backend_pid()"), {"db": make_url(database_url).database}
            ).scalar()
            time.sleep(0.3)
    admin.dispose()
    engine_for(database_url).dispose()  # this test process's own connections were cut too
    left = 48 - done_checks()
    pipeline.wait("readings", 90)

    print(f"\n{cut} database connections cut mid-batch; every job finished")
    check_scores(pipeline.report("readings"), folder)
    assert cut > 0 and left > 0, (cut, left)  # the cuts came while checks were still to do
    worker_log = (pipeline.logs / "worker-0.log").read_text(errors="replace")
    assert "infrastructure error, retrying" in worker_log  # the path under test was taken
