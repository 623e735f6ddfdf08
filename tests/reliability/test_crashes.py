"""Crashes: a worker SIGKILLed mid-chunking, and a poison job that kills every worker it meets.

Each case ends with every job terminal and the sandbox counting one accepted
submission per check; the figures are printed.
"""

from __future__ import annotations

import time

import pytest
from sqlalchemy import func, select

from models import Check
from models.db import session_scope
from tests.e2e.test_soe_pipeline import check_scores, make_manifest
from tests.pipeline import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
PREFORK = ("--pool", "prefork", "-c", "2")  # a poison job kills its child process, not the whole worker


def checks_in_flight() -> int:
    with session_scope() as session:
        return session.scalar(
            select(func.count()).select_from(Check)
            .where(Check.status == "running", Check.chunks_sent >= 1, Check.lease_until.is_not(None))
        )


def test_worker_killed_mid_chunking_resumes_every_session(pipeline, tmp_path):
    folder = tmp_path / "readings"
    manifest = make_manifest(folder, 20)
    # Slow enough calls that a file sits between its chunks for a while: at 60 ms the 20 files
    # were all done once before a loaded CI machine's poll saw one mid-chunking.
    pipeline.sandbox("config", {"latency_ms": 150})
    pipeline.start_beat()
    worker = pipeline.start_worker("-c", "4")
    pipeline.cli("ingest", str(manifest))

    in_flight = wait_until(checks_in_flight, 60, interval=0.05)
    pipeline.kill_worker(worker)
    started = time.monotonic()
    pipeline.start_worker("-c", "4")
    pipeline.cli("wait", "--batch", "readings", "--timeout", "120")
    print(f"\nkilled with {in_flight} SOE sessions mid-chunking; recovered in {time.monotonic() - started:.1f}s")

    report = pipeline.report("readings")
    check_scores(report, folder)
    accepted = pipeline.sandbox("stats")["accepted"]["soe"]
    assert sorted(accepted) == sorted(r["soe"]["session_id"] for r in report)  # resumed, not restarted
    assert set(accepted.values()) == {1}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_poison_job_fails_after_bounded_deliveries(pipeline, tmp_path):
    folder = tmp_path / "readings"
    manifest = make_manifest(folder, 6)
    pipeline.env["VOXQUEUE_CRASH_JOBS"] = "pupil-003"
    pipeline.start_beat()
    worker = pipeline.start_worker(*PREFORK)
    pipeline.cli("ingest", str(manifest))
    pipeline.wait_restarting("readings", worker, *PREFORK, timeout=120)

    report = {r["id"]: r for r in pipeline.report("readings")}
    poison = report.pop("pupil-003")
    assert poison["status"] == "failed"
    assert "died 3 times" in poison["soe"]["error"]
    assert all(r["status"] == "done" for r in report.values())
