"""A dead delivery of a moderation message holding several checks (Shumei takes ten to a message).

Nothing tells which of them killed the worker, so each goes again alone: a poison clip
fails on its own deaths, and the other clips of its message are submitted once and finish.
"""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select, update

from models import Check
from models.base import utcnow
from models.db import session_scope
from tests.moderation_env import moderation_env, point_at_sandbox, write_moderation_manifest
from tests.pipeline import wait_until
from tests.reliability.test_crashes import PREFORK

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture
def pipeline_env(tmp_path) -> dict[str, str]:
    return moderation_env(tmp_path, callbacks=False)


def test_a_poison_clip_fails_alone_and_its_message_mates_finish(pipeline, tmp_path):
    manifest = write_moderation_manifest(tmp_path / "media", 6, "shumei")
    point_at_sandbox(pipeline)
    pipeline.env["VOXQUEUE_CRASH_JOBS"] = "clip-003"
    pipeline.start_beat()
    worker = pipeline.start_worker(*PREFORK)
    pipeline.cli("ingest", str(manifest))
    pipeline.wait_restarting("clips", worker, *PREFORK, timeout=150)

    report = {r["id"]: r for r in pipeline.report("clips")}
    poison = report.pop("clip-003")
    assert poison["status"] == "failed"
    assert "died 3 times" in poison["moderation"]["shumei"]["error"]
    assert {key: r["status"] for key, r in report.items()} == dict.fromkeys(report, "done")
    accepted = pipeline.sandbox("stats")["accepted"]["shumei"]
    assert len(accepted) == 5 and set(accepted.values()) == {1}  # each mate submitted once


def submitted() -> bool:
    with session_scope() as session:
        return session.scalar(select(func.count()).where(Check.vendor_task_id.is_(None))) == 0


def test_a_group_redelivered_after_its_worker_died_sends_each_check_alone(pipeline, tmp_path):
    manifest = write_moderation_manifest(tmp_path / "media", 3, "shumei")
    point_at_sandbox(pipeline)
    pipeline.cli("ingest", str(manifest))  # one message of three checks, waiting
    with session_scope() as session:  # as a delivery that claimed them and died leaves them
        session.execute(update(Check).values(status="running", lease_until=utcnow() - dt.timedelta(seconds=1)))
    pipeline.start_worker("-c", "2")  # no beat yet: the redelivered message alone must sort it out
    wait_until(submitted, 30)
    pipeline.start_beat()  # to poll the results
    pipeline.wait("clips", timeout=60)

    assert {r["id"]: r["status"] for r in pipeline.report("clips")} == dict.fromkeys(
        ["clip-000", "clip-001", "clip-002"], "done")
    accepted = pipeline.sandbox("stats")["accepted"]["shumei"]
    assert len(accepted) == 3 and set(accepted.values()) == {1}
    with session_scope() as session:  # nobody is charged a death nobody can pin on them
        assert set(session.scalars(select(Check.deliveries))) == {0}
    log = (pipeline.logs / "worker-0.log").read_text()
    assert "a delivery died holding 3 shumei check(s): each goes again alone" in log
