"""Moderation limits: shared rate limits, permanent errors, polling in groups, one beat's worth."""

from __future__ import annotations

import datetime as dt
import json
import math
import time

import pytest
from sqlalchemy import func, select, update

from config.settings import reset_settings
from models import CallbackEvent, Check
from models.base import utcnow
from models.db import session_scope
from tests.moderation_env import (
    moderation_env,
    point_at_sandbox,
    start_webhooks,
    write_moderation_manifest,
)
from tests.pipeline import wait_until

pytestmark = [pytest.mark.e2e]


@pytest.fixture
def pipeline_env(tmp_path, request) -> dict[str, str]:
    return moderation_env(tmp_path, **getattr(request, "param", {}))


def count(service: str, *conditions) -> int:
    with session_scope() as session:
        query = select(func.count()).select_from(Check).where(Check.service == service, *conditions)
        return session.scalar(query)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_shared_limit_holds_across_two_workers_and_other_vendors_proceed(pipeline, tmp_path):
    media = tmp_path / "media"
    shumei = write_moderation_manifest(media, 120, "shumei", name="slow")
    # One ingest, Shumei's rows first: the GME rows (100 of the same files) arrive behind 6 s of
    # Shumei work at 20/s. (Two ingest commands in turn left the second's start-up in the race: on
    # a loaded machine it took as long as Shumei's whole queue.)
    rows = [json.loads(line) for line in shumei.read_text().splitlines()]
    gme_rows = [{**row, "id": "gme-" + row["id"], "services": "gme"} for row in rows[:100]]
    both = media / "both.jsonl"
    both.write_text(shumei.read_text() + "".join(json.dumps(row) + "\n" for row in gme_rows))
    point_at_sandbox(pipeline)
    pipeline.env["VOXQUEUE_SHUMEI_QPS"] = "20"
    pipeline.start_worker("-c", "8")
    pipeline.start_worker("-c", "8")

    pipeline.cli("ingest", str(both))
    wait_until(lambda: count("gme", Check.vendor_task_id.is_not(None)) == 100, 60, interval=0.1)
    shumei_waiting = count("shumei", Check.vendor_task_id.is_(None))
    wait_until(lambda: count("shumei", Check.vendor_task_id.is_not(None)) == 120, 60, interval=0.2)

    stats = pipeline.sandbox("stats")
    print(f"\nshumei peak {stats['peak_rps']['shumei']}/s at a limit of 20/s; "
          f"{shumei_waiting} shumei submissions still waiting when every gme check was in")
    print(f"sandbox event-loop lag at most {stats['max_loop_lag_ms']} ms")
    assert stats["peak_rps"]["shumei"] <= 21
    assert shumei_waiting > 0  # gme was not held behind shumei's queue


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_permanent_errors_fail_at_once(pipeline, tmp_path):
    manifest = write_moderation_manifest(tmp_path / "media", 10, "gme,shumei")
    point_at_sandbox(pipeline)
    pipeline.env["VOXQUEUE_SHUMEI_ACCESS_KEY"] = "not-the-key"  # the vendor answers: no permission
    pipeline.env["VOXQUEUE_GME_BIZ_ID"] = "1400099999"  # an application that is not ours
    pipeline.start_worker("-c", "4")

    pipeline.cli("ingest", str(manifest))
    pipeline.cli("wait", "--batch", "clips", "--timeout", "60")

    stats = pipeline.sandbox("stats")
    for row in pipeline.report("clips"):
        assert row["status"] == "failed"
        assert "9101" in row["moderation"]["shumei"]["error"]
        assert "InvalidParameter" in row["moderation"]["gme"]["error"]
    assert stats["requests"]["shumei.submit"] == 10  # one each: nothing retried that cannot succeed
    assert stats["requests"]["gme.ScanVoice"] == 1
    with session_scope() as session:
        assert session.scalar(select(func.max(Check.attempts))) == 0


@pytest.mark.parametrize("pipeline_env", [{"callbacks": False, "delay_s": 600}], indirect=True)
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_one_round_polls_250_gme_checks_in_three_calls(pipeline, tmp_path, monkeypatch):
    manifest = write_moderation_manifest(tmp_path / "media", 250, "gme")
    point_at_sandbox(pipeline)
    pipeline.start_worker("-c", "4")
    pipeline.cli("ingest", str(manifest))
    wait_until(lambda: count("gme", Check.vendor_task_id.is_not(None)) == 250, 60, interval=0.2)
    assert pipeline.sandbox("stats")["requests"]["gme.ScanVoice"] == math.ceil(250 / 100)

    for name, value in pipeline.env.items():  # this process polls, with the workers' settings
        if name.startswith("VOXQUEUE_"):
            monkeypatch.setenv(name, value)
    reset_settings()
    import tasks.poll
    from tasks.poll import poll_gme

    started = utcnow()
    with session_scope() as session:
        session.execute(update(Check).values(next_poll_at=started))
    before = pipeline.sandbox("stats")["requests"].get("gme.DescribeScanResultList", 0)
    assert poll_gme() == 3
    # nothing is due again before its time (the first wait is 2 s): asked 1.9 s after the round
    # began, by a clock that a loaded machine's slow round cannot carry past the wait
    monkeypatch.setattr(tasks.poll, "utcnow", lambda: started + dt.timedelta(seconds=1.9))
    assert poll_gme() == 0
    after = pipeline.sandbox("stats")["requests"]["gme.DescribeScanResultList"]
    assert after - before == 3
    assert count("gme", Check.status == "running", Check.polls == 1) == 250


@pytest.mark.parametrize("pipeline_env", [{"callbacks": False, "delay_s": 600}], indirect=True)
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_two_beats_poll_no_more_than_one(pipeline, tmp_path):
    manifest = write_moderation_manifest(tmp_path / "media", 30, "gme")
    point_at_sandbox(pipeline)
    pipeline.start_worker("-c", "4")
    pipeline.cli("ingest", str(manifest))
    wait_until(lambda: count("gme", Check.vendor_task_id.is_not(None)) == 30, 60, interval=0.2)

    pipeline.start_beat()
    pipeline.stack.enter_context(_second_beat(pipeline))
    window = 12.0
    time.sleep(window)

    rounds = _rounds_run(pipeline)
    calls = pipeline.sandbox("stats")["requests"].get("gme.DescribeScanResultList", 0)
    print(f"\n{rounds} polling rounds and {calls} DescribeScanResultList calls in {window:.0f}s with two beats")
    assert rounds <= window / 1.0 + 2  # one round per second: what one beat schedules
    with session_scope() as session:
        assert session.scalar(select(func.max(Check.polls))) <= 4  # due at 2, 4, 8 s: never early


def _second_beat(pipeline):
    from workers.processes import running, voxqueue_command

    return running(voxqueue_command("beat"), pipeline.env, pipeline.logs / "beat-2.log")


def _rounds_run(pipeline) -> int:
    logs = [p.read_text(errors="replace") for p in pipeline.logs.glob("worker-*.log")]
    return sum(log.count("Task voxqueue.poll.gme[") for log in logs) // 2  # received + succeeded


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_forged_callbacks_change_nothing(pipeline, tmp_path):
    manifest = write_moderation_manifest(tmp_path / "media", 8, "gme")
    point_at_sandbox(pipeline)
    pipeline.sandbox("config", {"callback_signing": "forged"})
    start_webhooks(pipeline)
    pipeline.start_worker("-c", "4")
    pipeline.cli("ingest", str(manifest))
    wait_until(lambda: pipeline.sandbox("stats")["callbacks"].get("gme", {}).get("failed_attempts", 0) >= 8, 60)

    assert count("gme", Check.status == "running") == 8
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(CallbackEvent)) == 0

    pipeline.sandbox("config", {"callback_signing": "corrupt"})
    pipeline.cli("ingest", str(write_moderation_manifest(tmp_path / "media", 8, "gme", name="more")))
    time.sleep(4)
    assert count("gme", Check.status == "done") == 0
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(CallbackEvent)) == 0
