"""Vendor fidelity end to end (sandbox, workers, webhooks or beat as real processes).

A batch of English and Chinese jobs: every GME task arrives in a ScanVoice call whose
``Lang`` is its job's (``en``; unsent for Chinese, the vendor's default), every Shumei file
with its ``data.lang`` at its language's cluster (English at ``/en``), and is asked for
its result there. Two files Shumei answers with code 1100 and ``auxInfo.errorCode`` (2007
silence, 2003 a failed download) end ``failed`` with that reason, by callback and by
query. Tupu streams whose callbacks carry speech review's string labels: "Normal" ends
PASS, a violation REJECT.
"""

from __future__ import annotations

import json
import wave
from pathlib import Path

import pytest
from sqlalchemy import select

from models import CallbackEvent, Check, Job
from models.db import session_scope
from sandbox.moderation import verdict_for
from tests.moderation_env import moderation_env, point_at_sandbox, start_webhooks
from tests.pipeline import write_speech_like_wav
from tests.sandbox.moderation_helpers import stream_with

pytestmark = [pytest.mark.e2e]

CLIPS = 12
SPEECH_REVIEW = "5caee6b2a76925c55a09a6d2"


@pytest.fixture
def pipeline_env(tmp_path, request) -> dict[str, str]:
    return moderation_env(tmp_path, callbacks=getattr(request, "param", "callbacks") == "callbacks")


def lang_of(i: int) -> str | None:
    """Even clips English (every other one by the manifest's default), odd ones Chinese."""
    return "zh" if i % 2 else ("en" if i % 4 == 0 else None)


def silent_wav(path: Path) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(bytes(16000))


def write_manifest(pipeline, media: Path, *, streams: bool) -> Path:
    rows = []
    for i in range(CLIPS):
        write_speech_like_wav(media / f"clip{i:02}.wav", 0.1 + (i % 4) * 0.05, seed=500 + i)
        lang = lang_of(i)
        rows.append({"id": f"clip-{i:02}", "audio": f"clip{i:02}.wav", "services": "gme,shumei"}
                    | ({"lang": lang} if lang else {}))
    silent_wav(media / "silent.wav")
    rows += [{"id": "silent", "audio": "silent.wav", "services": "shumei"},
             {"id": "gone", "audio": pipeline.sandbox_url + "/media/gone.wav", "services": "shumei", "lang": "zh"}]
    if streams:
        rows += [{"id": f"live-{v.lower()}", "stream": stream_with(v), "services": "tupu"} for v in ("PASS", "REJECT")]
    manifest = media / "fidelity.jsonl"
    manifest.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return manifest


def start(pipeline) -> None:
    point_at_sandbox(pipeline)
    pipeline.env["VOXQUEUE_SHUMEI_ENDPOINT_EN"] = pipeline.sandbox_url + "/en"
    pipeline.sandbox("config", {"shumei_download_failure": 2003})


def vendor_task_ids() -> dict[tuple[str, str], str]:
    with session_scope() as session:
        rows = session.execute(select(Job.key, Check.service, Check.vendor_task_id).join(Job))
        return {(key, service): task_id for key, service, task_id in rows}


def assert_languages_and_clusters(pipeline) -> None:
    ids = vendor_task_ids()
    services = pipeline.sandbox("stats")["services"]
    gme = services["gme"]["tasks"]
    shumei = {t["key"]: t for t in services["shumei"]["tasks"].values()}
    for i in range(CLIPS):
        key, english = f"clip-{i:02}", lang_of(i) != "zh"
        assert gme[ids[key, "gme"]]["lang"] == ("en" if english else None), key
        task = shumei[ids[key, "shumei"]]
        assert (task["cluster"], task["lang"]) == (("en", "en") if english else ("default", "zh")), key
    for key, task in shumei.items():  # asked, if at all, only where it was sent
        assert set(task["queries"]) <= {task["cluster"]}, key


def assert_outcomes(pipeline, media: Path) -> dict[str, dict]:
    rows = {row["id"]: row for row in pipeline.report("fidelity")}
    for i in range(CLIPS):
        row = rows[f"clip-{i:02}"]
        verdict = verdict_for((media / f"clip{i:02}.wav").read_bytes(), "shumei")[0]
        assert row["status"] == "done", row
        assert row["moderation"]["shumei"]["verdict"] == verdict, row
        assert row["moderation"]["gme"]["verdict"] == ("REJECT" if verdict == "REJECT" else "PASS"), row
    for key, code, words in (("silent", 2007, "no valid data"), ("gone", 2003, "audio download failed")):
        row, check = rows[key], rows[key]["moderation"]["shumei"]
        assert (row["status"], row["verdict"], check["status"], check["verdict"]) == ("failed", None, "failed", None)
        assert f"shumei_{code}" in check["error"] and f"auxInfo.errorCode {code}: {words}" in check["error"], row
    return rows


def test_by_callback(pipeline, tmp_path):
    """No beat: every result, the auxInfo failures and the streams' ends come by callback."""
    media = tmp_path / "media"
    start(pipeline)
    manifest = write_manifest(pipeline, media, streams=True)
    start_webhooks(pipeline)
    pipeline.start_worker("-c", "6")
    out = pipeline.cli("ingest", str(manifest))
    assert f"{CLIPS + 4} accepted, 0 rejected" in out.stdout
    pipeline.wait("fidelity", 90)

    rows = assert_outcomes(pipeline, media)
    assert_languages_and_clusters(pipeline)
    stats = pipeline.sandbox("stats")
    assert stats["requests"].get("shumei.query", 0) == 0  # nothing was polled
    for verdict in ("PASS", "REJECT"):
        tupu = rows[f"live-{verdict.lower()}"]["moderation"]["tupu"]
        assert (tupu["status"], tupu["verdict"]) == ("done", verdict)
        assert tupu["labels"] == verdict_for(stream_with(verdict).encode(), "tupu")[1]
    with session_scope() as session:
        passed = session.scalar(select(Check.id).join(Job).where(Job.key == "live-pass"))
        events = session.scalars(select(CallbackEvent).where(CallbackEvent.check_id == passed)).all()
    labels = [s["label"] for e in events for s in e.body.get(SPEECH_REVIEW, {}).get("speechs", [])]
    assert labels == ["Normal"] and {e.state for e in events} == {"merged"}  # read as clean, merged


@pytest.mark.parametrize("pipeline_env", ["polling"], indirect=True)
def test_by_polling(pipeline, tmp_path):
    """No callback URL: every result, and the auxInfo failures, come from queries at the
    cluster each file was sent to."""
    media = tmp_path / "media"
    start(pipeline)
    manifest = write_manifest(pipeline, media, streams=False)
    pipeline.start_beat()
    pipeline.start_worker("-c", "6")
    pipeline.cli("ingest", str(manifest))
    pipeline.wait("fidelity", 90)

    assert_outcomes(pipeline, media)
    assert_languages_and_clusters(pipeline)
    shumei = pipeline.sandbox("stats")["services"]["shumei"]["tasks"].values()
    assert all(set(t["queries"]) == {t["cluster"]} for t in shumei)
    assert {t["cluster"] for t in shumei} == {"en", "default"}
    with session_scope() as session:
        assert session.scalars(select(CallbackEvent)).all() == []
