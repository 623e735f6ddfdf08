"""A job's language at the vendors, Shumei's clusters, and files Shumei never moderated.

The tasks are called as functions, in this process, on a real database (SQLite and
PostgreSQL) and Redis, against the sandbox on a real socket: GME gets ``Lang`` per
ScanVoice call (one call per language), Shumei ``data.lang`` at the language's cluster,
and a check is asked for its result at the cluster it was submitted to. A result with
``auxInfo.errorCode`` (code 1100, riskLevel PASS) fails its check, by query and by callback.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import secrets
import wave
from pathlib import Path

import pytest
import requests
from sqlalchemy import select, update

from config.settings import get_settings, reset_settings
from models import CallbackEvent, Check, Job
from models.base import utcnow
from models.db import session_scope, transaction
from sandbox.moderation import verdict_for
from sandbox.server import SandboxThread
from tasks import clients, gme, poll, results, shumei
from tasks.ingest import ingest
from tests.sandbox.moderation_helpers import audio_with, moderation_config, wait_until
from vendors.tc3 import Credentials

ROWS = {"en-1": "en", "en-2": None, "en-3": "en", "zh-1": "zh", "zh-2": "zh"}  # None: the default


@pytest.fixture
def sandbox(database_url, redis_url, tmp_path, monkeypatch):
    """The sandbox, and the pipeline's settings pointing at it (English Shumei at ``/en``)."""
    credentials = Credentials("AKID" + secrets.token_hex(16), secrets.token_hex(20))
    (tmp_path / "media").mkdir()
    config = moderation_config(credentials, media_dir=str(tmp_path / "media"), result_delay_s=0.1)
    with SandboxThread(config) as running:
        env = {"TENCENT_SECRET_ID": credentials.secret_id, "TENCENT_SECRET_KEY": credentials.secret_key,
               "GME_ENDPOINT": running.url, "GME_BIZ_ID": str(config.gme_biz_id),
               "SHUMEI_ENDPOINT": running.url, "SHUMEI_ENDPOINT_EN": running.url + "/en",
               "SHUMEI_ACCESS_KEY": config.shumei_access_key, "MEDIA_BASE_URL": running.url + "/media",
               "SHUMEI_QPS": "500", "GME_QPS": "500"}
        for name, value in env.items():
            monkeypatch.setenv(f"VOXQUEUE_{name}", value)
        reset_settings()
        yield running


def silent_wav(seconds: float = 0.5) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(bytes(int(32000 * seconds)))
    return out.getvalue()


def ingested(folder: Path, rows: list[dict], audio: dict[str, bytes]) -> dict[str, dict[str, Check]]:
    """Ingest ``rows`` (their files written first); the checks by job id and service."""
    for name, data in audio.items():
        (folder / name).write_bytes(data)
    manifest = folder / "langs.jsonl"
    manifest.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    ingest(manifest, enqueue=lambda pairs, **_: None)  # this test runs the tasks itself
    return checks()


def checks() -> dict[str, dict[str, Check]]:
    with session_scope() as session:
        found: dict[str, dict[str, Check]] = {}
        for check in session.scalars(select(Check).join(Job).order_by(Check.id)):
            found.setdefault(check.job.key, {})[check.service] = check
            session.expunge(check)
        return found


def language_rows(folder: Path) -> dict[str, dict[str, Check]]:
    rows, audio = [], {}
    for n, (key, lang) in enumerate(ROWS.items()):
        audio[f"{key}.wav"] = audio_with(["PASS", "REJECT", "REVIEW"][n % 3])
        rows.append({"id": key, "audio": f"{key}.wav", "services": "gme,shumei"} | ({"lang": lang} if lang else {}))
    return ingested(folder, rows, audio)


def sandbox_tasks(sandbox, vendor: str) -> dict[str, dict]:
    """The sandbox's tasks of ``vendor`` by vendor task id (GME TaskId; Shumei btId)."""
    tasks = sandbox.stats()["services"][vendor]["tasks"]
    return {t["key"] if vendor == "shumei" else task_id: t for task_id, t in tasks.items()}


def poll_when_ready(sandbox) -> None:
    """Once the sandbox has judged everything, make every running check due and poll once."""
    wait_until(lambda: all(t["ready"] for v in ("gme", "shumei") for t in sandbox_tasks(sandbox, v).values()))
    with transaction() as conn:
        conn.execute(update(Check.__table__).values(next_poll_at=utcnow() - dt.timedelta(seconds=1)))
    poll.poll_gme()
    poll.poll_shumei()


def test_each_language_reaches_its_vendors_and_its_cluster(sandbox, tmp_path):
    found = language_rows(tmp_path / "media")

    gme.submit([c["gme"].id for c in found.values()])  # one message: a ScanVoice call per language
    shumei.submit([c["shumei"].id for c in found.values()])

    stats = sandbox.stats()
    assert stats["requests"]["gme.ScanVoice"] == 2
    gme_tasks, shumei_tasks = sandbox_tasks(sandbox, "gme"), sandbox_tasks(sandbox, "shumei")
    submitted = checks()
    for key, lang in ROWS.items():
        lang = lang or "en"
        assert gme_tasks[submitted[key]["gme"].vendor_task_id]["lang"] == ("en" if lang == "en" else None), key
        task = shumei_tasks[submitted[key]["shumei"].vendor_task_id]
        assert (task["cluster"], task["lang"]) == (("en", "en") if lang == "en" else ("default", "zh")), key
        endpoint = submitted[key]["shumei"].result["endpoint"]
        assert endpoint == sandbox.url + ("/en" if lang == "en" else ""), key

    poll_when_ready(sandbox)

    done = checks()
    for key in ROWS:
        audio = (tmp_path / "media" / f"{key}.wav").read_bytes()
        verdict = verdict_for(audio, "shumei")[0]
        assert (done[key]["shumei"].status, done[key]["shumei"].verdict) == ("done", verdict), key
        assert done[key]["gme"].verdict == ("REJECT" if verdict == "REJECT" else "PASS"), key
    for key, task in sandbox_tasks(sandbox, "shumei").items():
        assert task["queries"] == {task["cluster"]: 1}, key  # asked where it was sent, once


def test_without_an_english_cluster_english_goes_to_the_default_one_with_lang_en(sandbox, tmp_path, monkeypatch):
    monkeypatch.delenv("VOXQUEUE_SHUMEI_ENDPOINT_EN")
    reset_settings()
    found = language_rows(tmp_path / "media")
    shumei.submit([c["shumei"].id for c in found.values()])
    tasks = sandbox_tasks(sandbox, "shumei")
    assert {(t["cluster"], t["lang"]) for t in tasks.values()} == {("default", "en"), ("default", "zh")}
    poll_when_ready(sandbox)
    assert {c["shumei"].status for c in checks().values()} == {"done"}


def test_a_signal_asks_the_cluster_the_check_was_sent_to(sandbox, tmp_path):
    found = language_rows(tmp_path / "media")
    english = found["en-1"]["shumei"].id
    shumei.submit([english])
    wait_until(lambda: all(t["ready"] for t in sandbox_tasks(sandbox, "shumei").values()))

    shumei.query(english)  # what an unauthenticated callback naming it makes the receiver send

    assert checks()["en-1"]["shumei"].status == "done"
    (task,) = sandbox_tasks(sandbox, "shumei").values()
    assert task["queries"] == {"en": 1}


def aux_rows(sandbox, folder: Path) -> dict[str, dict[str, Check]]:
    """A silent file (auxInfo 2007) and a file the vendor cannot download (auxInfo 2003)."""
    requests.post(sandbox.url + "/_sandbox/config", json={"shumei_download_failure": 2003}, timeout=5).raise_for_status()
    rows = [{"id": "silent", "audio": "silent.wav", "services": "shumei"},
            {"id": "gone", "audio": sandbox.url + "/media/gone.wav", "services": "shumei", "lang": "zh"},
            {"id": "speech", "audio": "speech.wav", "services": "shumei"}]
    found = ingested(folder, rows, {"silent.wav": silent_wav(), "speech.wav": audio_with("PASS")})
    shumei.submit([c["shumei"].id for c in found.values()])
    return found


def assert_not_moderated(found: dict[str, dict[str, Check]]) -> None:
    """The two files failed with the vendor's reason, their jobs failed; the third passed."""
    for key, code, words in (("silent", 2007, "no valid data"), ("gone", 2003, "audio download failed")):
        check = found[key]["shumei"]
        assert (check.status, check.error_reason, check.verdict) == ("failed", f"shumei_{code}", None), key
        assert f"auxInfo.errorCode {code}: {words}" in check.error and "not moderated" in check.error
    with session_scope() as session:
        jobs = {job.key: (job.status, job.error) for job in session.scalars(select(Job))}
    assert jobs["silent"][0] == jobs["gone"][0] == "failed" and "shumei_2007" in jobs["silent"][1]
    assert found["speech"]["shumei"].verdict == "PASS" and jobs["speech"] == ("done", None)


def test_auxinfo_errors_by_query_fail_their_checks(sandbox, tmp_path):
    aux_rows(sandbox, tmp_path / "media")
    poll_when_ready(sandbox)
    assert_not_moderated(checks())


def test_auxinfo_errors_by_callback_fail_their_checks(sandbox, tmp_path):
    aux_rows(sandbox, tmp_path / "media")
    wait_until(lambda: all(t["ready"] for t in sandbox_tasks(sandbox, "shumei").values()))
    found = checks()  # as submitted
    for key in ("silent", "speech", "gone"):  # the body the vendor pushes is its query answer
        check = found[key]["shumei"]
        client = clients.shumei(get_settings(), shumei.endpoint_of(check.result))
        body = client.query(check.vendor_task_id).raw
        with session_scope() as session:
            event = CallbackEvent(vendor="shumei", check_id=check.id, vendor_task_id=check.vendor_task_id, body=body)
            session.add(event)
            session.flush()
            event_id = event.id
        results.merge(event_id)
        with session_scope() as session:
            assert session.get(CallbackEvent, event_id).state == "merged", key
    assert_not_moderated(checks())
