"""Shumei end to end (sandbox, webhooks, workers): a forged result changes nothing, an
unauthenticated callback only makes voxqueue ask the vendor, and a failure callback (no
btId, seed 004) is answered 200 and fails its check by code."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from pathlib import Path

import pytest
import requests
from sqlalchemy import select

from models import CallbackEvent, Check, Job
from models.db import session_scope
from models.deployment import stored_secret
from sandbox.moderation import verdict_for
from tests.moderation_env import (
    moderation_env,
    point_at_sandbox,
    start_webhooks,
    write_moderation_manifest,
)
from tests.pipeline import wait_until

pytestmark = [pytest.mark.e2e]

OLD_NAMESPACE = uuid.UUID("3f1d8f0e-6c35-4a8e-9d55-6f1f0a6e2b10")  # printed in the source before


@pytest.fixture
def pipeline_env(tmp_path, request) -> dict[str, str]:
    callbacks = getattr(request, "param", True)
    return moderation_env(tmp_path, callbacks=callbacks, delay_s=3.0)


def truth(tmp_path: Path, row_id: str) -> str:
    return verdict_for((tmp_path / "media" / f"clip{row_id[5:]}.wav").read_bytes(), "shumei")[0]


def opposite(verdict: str) -> str:
    return "PASS" if verdict != "PASS" else "REJECT"


def submitted(count: int) -> list[tuple[int, str, str]]:
    """(check id, row id, btId) of the Shumei checks, once all ``count`` are at the vendor."""
    def ready():
        with session_scope() as session:
            rows = session.execute(select(Check.id, Job.key, Check.vendor_task_id).join(Job)
                                   .where(Check.service == "shumei", Check.vendor_task_id.is_not(None))).all()
        return [tuple(row) for row in rows] if len(rows) == count else None

    return wait_until(ready, 60, interval=0.1)


def webhook(pipeline, path: str) -> str:
    return f"http://127.0.0.1:{pipeline.env['WEBHOOK_PORT']}{path}"


def test_forged_results_change_nothing(pipeline, tmp_path, database_url):
    manifest = write_moderation_manifest(tmp_path / "media", 10, "shumei")
    point_at_sandbox(pipeline)
    start_webhooks(pipeline)
    pipeline.start_beat()
    pipeline.start_worker("-c", "4")
    pipeline.cli("ingest", str(manifest))

    tencent = pipeline.env["VOXQUEUE_TENCENT_SECRET_KEY"].encode()
    for check_id, row_id, bt_id in submitted(10):
        forged = {"code": 1100, "riskLevel": opposite(truth(tmp_path, row_id)), "requestId": "forged",
                  "audioText": "forged"}
        computed = "vq-" + uuid.uuid5(OLD_NAMESPACE, f"clips\x00{row_id}\x00shumei").hex  # as the source said
        for bt in (computed, bt_id):  # the second as if it leaked: even then only a query follows
            answer = requests.post(webhook(pipeline, "/callbacks/shumei"), json=forged | {"btId": bt}, timeout=10)
            assert answer.status_code == 200
        for key in (b"", tencent, b"voxqueue"):  # tokens anyone could compute, and the old ASR key
            token = hmac.new(key, f"shumei:{check_id}".encode(), hashlib.sha256).hexdigest()[:32]
            answer = requests.post(webhook(pipeline, f"/callbacks/shumei/{check_id}/{token}"),
                                   json=forged | {"btId": bt_id}, timeout=10)
            assert answer.status_code == 403

    pipeline.wait("clips", 90)
    for row in pipeline.report("clips"):
        assert row["moderation"]["shumei"]["verdict"] == truth(tmp_path, row["id"]), row
        assert row["moderation"]["shumei"]["text"] != "forged"
    with session_scope() as session:
        stored = list(session.scalars(select(CallbackEvent)))
    assert stored and all(e.check_id is not None and e.body.get("requestId") != "forged" for e in stored)
    secret = stored_secret(database_url)
    for log in pipeline.logs.glob("*.log"):
        assert secret not in log.read_text(errors="replace"), log.name


@pytest.mark.parametrize("pipeline_env", [False], indirect=True, ids=["no-callback-url"])
def test_an_unauthenticated_callback_makes_voxqueue_ask_the_vendor(pipeline, tmp_path):
    """No beat and no callback URL: the only way a result arrives is the query a signal causes,
    and what is recorded is the vendor's answer, not the body that caused it."""
    manifest = write_moderation_manifest(tmp_path / "media", 6, "shumei")
    point_at_sandbox(pipeline)
    start_webhooks(pipeline)
    pipeline.start_worker("-c", "4")
    pipeline.cli("ingest", str(manifest))
    checks = submitted(6)
    wait_until(lambda: all(t["ready"] for t in _shumei_tasks(pipeline)), 30)
    assert pipeline.sandbox("stats")["requests"].get("shumei.query", 0) == 0

    for _check_id, row_id, bt_id in checks:
        forged = {"code": 1100, "btId": bt_id, "riskLevel": opposite(truth(tmp_path, row_id)), "requestId": "x"}
        for _ in range(3):  # pushed three times: asked once
            assert requests.post(webhook(pipeline, "/callbacks/shumei"), json=forged, timeout=10).status_code == 200

    pipeline.wait("clips", 60)
    for row in pipeline.report("clips"):
        assert row["moderation"]["shumei"]["verdict"] == truth(tmp_path, row["id"]), row
    stats = pipeline.sandbox("stats")
    assert stats["requests"]["shumei.query"] == 6
    with session_scope() as session:
        assert list(session.scalars(select(CallbackEvent))) == []


def test_a_failure_callback_fails_its_check_by_code(pipeline, tmp_path):
    """The sandbox cannot download one file: its callback carries code 1904, a requestId and no
    btId. No beat runs, so the failure is learned from that callback alone."""
    media = tmp_path / "media"
    manifest = write_moderation_manifest(media, 2, "shumei")
    point_at_sandbox(pipeline)
    with manifest.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps({"id": "gone", "audio": pipeline.sandbox_url + "/media/gone.wav",
                             "services": "shumei"}) + "\n")
    start_webhooks(pipeline)
    pipeline.start_worker("-c", "4")
    pipeline.cli("ingest", str(manifest))

    pipeline.wait("clips", 60)
    rows = {row["id"]: row for row in pipeline.report("clips")}
    gone = rows.pop("gone")
    assert gone["status"] == "failed" and "download_failed" in gone["moderation"]["shumei"]["error"]
    assert "1904" in gone["moderation"]["shumei"]["error"]
    for row in rows.values():
        assert row["moderation"]["shumei"]["verdict"] == truth(tmp_path, row["id"])
    with session_scope() as session:
        events = {e.body.get("btId"): e for e in session.scalars(select(CallbackEvent))}
    failure = events.pop(None)
    assert (failure.state, failure.body["code"]) == ("merged", 1904) and "requestId" in failure.body
    assert {e.state for e in events.values()} == {"merged"} and len(events) == 2
    shumei = pipeline.sandbox("stats")["callbacks"]["shumei"]
    assert shumei.get("delivered") == 3 and not shumei.get("failed_attempts")  # 200 the first time


def _shumei_tasks(pipeline) -> list[dict]:
    return list(pipeline.sandbox("stats")["services"]["shumei"]["tasks"].values())
