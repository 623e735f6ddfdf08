"""The API's and notifications' commands, run as the real `voxqueue` (SQLite and PostgreSQL): tokens
printed once and stored hashed, `ingest --notify`, `notify status` and `notify retry`, the settings
they need, and the API answering 202 while the broker does not answer."""

from __future__ import annotations

import hashlib
import json
import time

import requests
from sqlalchemy import select, update

from models import ApiToken, Batch, Notification, NotifyEndpoint
from models.db import session_scope, transaction
from tasks.tokens import authenticate
from tests.tasks.test_ingest import write_wav
from tests.workers.cli_helpers import one_line_error, run
from workers.processes import free_port, running, voxqueue_command, wait_http


def test_a_token_is_printed_once_stored_hashed_and_revoked(database_url):
    env = {"VOXQUEUE_DATABASE_URL": database_url}
    made = run("api", "token", "create", "reading-app", env_extra=env)
    assert made.returncode == 0
    token = made.stdout.strip()
    assert token.startswith("vq_") and "not shown again" in made.stderr
    with session_scope() as session:
        row = session.scalars(select(ApiToken)).one()
    assert row.digest == hashlib.sha256(token.encode()).hexdigest() and token not in (row.digest, row.name)
    assert authenticate(token).name == "reading-app"
    again = run("api", "token", "create", "reading-app", env_extra=env)
    assert again.returncode == 1 and "revoke it first" in one_line_error(again)
    assert run("api", "token", "revoke", "reading-app", env_extra=env).returncode == 0
    assert authenticate(token) is None
    renewed = run("api", "token", "create", "reading-app", env_extra=env).stdout.strip()
    assert authenticate(renewed).token_id == row.id  # the same producer, with its batches
    missing = run("api", "token", "revoke", "nobody", env_extra=env)
    assert missing.returncode == 1 and one_line_error(missing) == "voxqueue: error: no token named nobody"


def test_ingest_notify_sets_the_url_and_shows_its_secret_once(database_url, redis_url, tmp_path):
    write_wav(tmp_path / "a.wav")
    (tmp_path / "clips.csv").write_text("id,audio,ref_text\nc1,a.wav,red\n")
    env = {"VOXQUEUE_DATABASE_URL": database_url}
    hook = "https://hooks.example/voxqueue"
    first = run("ingest", str(tmp_path / "clips.csv"), "--notify", hook, env_extra=env)
    assert first.returncode == 0, first.stderr
    assert f"notifications to {hook} are signed with vqwh_" in first.stdout
    second = run("ingest", str(tmp_path / "clips.csv"), "--notify", hook, env_extra=env)
    assert "signed with" not in second.stdout
    with session_scope() as session:
        endpoint = session.scalars(select(NotifyEndpoint)).one()
        assert session.scalar(select(Batch.notify_id)) == endpoint.id and endpoint.url == hook
    bad = run("ingest", str(tmp_path / "clips.csv"), "--notify", "ftp://x", env_extra=env)
    assert bad.returncode == 2 and "http(s) URL" in one_line_error(bad)


def test_notify_status_and_retry(database_url, redis_url, tmp_path):
    from tests.tasks.test_outbox import _batch, _finish

    for check_id in _batch(tmp_path, 1):
        _finish(check_id)
    with transaction() as conn:
        conn.execute(update(Notification).where(Notification.type == "batch.finished")
                     .values(state="dead", attempts=7, last_status=503))
    env = {"VOXQUEUE_DATABASE_URL": database_url}
    status = run("notify", "status", env_extra=env)
    assert status.returncode == 0
    lines = status.stdout.splitlines()
    assert lines[0] == "notifications: 1 pending, 0 delivered, 1 dead"
    assert "batch.finished" in lines[1] and "dead" in lines[1] and "attempts 7" in lines[1] and "HTTP 503" in lines[1]
    assert len(run("notify", "status", "--state", "dead", env_extra=env).stdout.splitlines()) == 2
    retried = run("notify", "retry", "--batch", "clips", env_extra=env)
    assert retried.stdout.startswith("1 notification(s) to send again")
    assert run("notify", "status", env_extra=env).stdout.splitlines()[0] == "notifications: 2 pending, 0 delivered, 0 dead"


def test_a_notification_url_needs_its_secret():
    proc = run("status", env_extra={"VOXQUEUE_NOTIFY_URL": "https://hooks.example/x"})
    assert proc.returncode == 2
    assert "VOXQUEUE_NOTIFY_SECRET must be set" in one_line_error(proc)
    short = run("status", env_extra={"VOXQUEUE_NOTIFY_URL": "https://hooks.example/x", "VOXQUEUE_NOTIFY_SECRET": "abc"})
    assert short.returncode == 2 and "VOXQUEUE_NOTIFY_SECRET: must be at least 16 characters" in one_line_error(short)


def test_the_api_records_jobs_and_answers_202_while_the_broker_does_not_answer(database_url, tmp_path,
                                                                              silent_server):
    port = free_port()
    env = {"VOXQUEUE_DATABASE_URL": database_url, "VOXQUEUE_BROKER_URL": f"redis://127.0.0.1:{silent_server}/0",
           "VOXQUEUE_BROKER_WAIT_SECONDS": "1", "VOXQUEUE_VAR_DIR": str(tmp_path / "var")}
    token = run("api", "token", "create", "producer", env_extra=env).stdout.strip()
    import os

    with running(voxqueue_command("api", "--port", str(port)), dict(os.environ) | env, tmp_path / "api.log") as proc:
        wait_http(f"http://127.0.0.1:{port}/v1/openapi.json", proc)
        started = time.monotonic()
        response = requests.post(f"http://127.0.0.1:{port}/v1/batches/b/jobs", timeout=60,
                                 json=[{"id": "x", "audio": "https://media.example/a.wav", "ref_text": "red"}],
                                 headers={"Authorization": f"Bearer {token}"})
        took = time.monotonic() - started
        health = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=10)
    assert response.status_code == 202, response.text
    assert (response.json()["queued"], response.json()["deferred"]) == (0, 1)
    assert took < 20, took
    assert health.status_code == 503 and json.loads(health.text) == {"database": "ok", "broker": "down"}
    with session_scope() as session:
        from models import Check

        assert session.scalars(select(Check.status)).all() == ["pending"]  # recorded: housekeeping sends it
