"""What happens after a callback is verified: unknown tasks, the merge message, the event loop."""

from __future__ import annotations

import base64
import json
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import redis
import requests
from celery import Celery
from click.testing import CliRunner

from config.celery import celery_config
from config.settings import get_settings, reset_settings
from tests.workers.webhook_helpers import (
    Client,
    asr_form,
    events,
    gme_body,
    make_check,
    serve,
    shumei_body,
    tupu_data,
    tupu_envelope,
)
from vendors.gme import sign_callback
from workers.cli import cli
from workers.webhooks import MERGE_TASK, QUERY_TASK, create_app, merge_sender


def test_unknown_gme_and_tupu_tasks_are_kept_for_the_merge(receiver, keys, tupu_key):
    """The callback may beat the recording of the vendor's task id: stored, merged later."""
    body = gme_body("gme-unknown")
    assert receiver.gme(body, sign_callback(body, keys["gme"])).status_code == 200
    envelope = tupu_envelope(tupu_key, tupu_data("tupu-unknown"))
    assert receiver.post("/callbacks/tupu", json=envelope).status_code == 200
    rows = events(receiver.database_url)
    assert [(e.vendor, e.vendor_task_id, e.check_id, e.state) for e in rows] == [
        ("gme", "gme-unknown", None, "received"), ("tupu", "tupu-unknown", None, "received")]
    assert receiver.sent == [e.id for e in rows]


def test_unknown_shumei_bt_id_asks_nothing_and_stores_nothing(receiver):
    make_check(receiver.database_url, "shumei", "vq-ours")
    make_check(receiver.database_url, "gme", "vq-other")  # same id, another service: not ours
    for bt_id in ("vq-unknown", "vq-other"):
        answer = receiver.shumei_unauthenticated(shumei_body(bt_id, "k"))
        assert (answer.status_code, answer.json()) == (200, {"ok": True})
    assert events(receiver.database_url) == []
    assert receiver.sent == [] and receiver.queried == []


def test_shumei_callback_for_a_missing_check_is_recorded_as_unknown(receiver):
    answer = receiver.shumei(424242, "vq-bt")
    assert (answer.status_code, answer.json()) == (200, {"ok": True})
    (event,) = events(receiver.database_url)
    assert (event.vendor, event.check_id, event.state, event.note) == (
        "shumei", None, "unknown", "no shumei check 424242")
    assert receiver.sent == []


def test_asr_callback_for_a_missing_check_is_recorded_as_unknown(receiver):
    answer = receiver.post(receiver.asr_path(424242), data=asr_form("77"))
    assert (answer.status_code, answer.json()) == (200, {"code": 0, "message": "success"})
    (event,) = events(receiver.database_url)
    assert (event.vendor, event.vendor_task_id, event.check_id, event.state, event.note) == (
        "asr", "77", None, "unknown", "no asr check 424242")
    assert receiver.sent == []


def test_broker_failure_answers_503_and_keeps_the_row(database_url, keys, caplog):
    def broken(_event_id: int) -> None:
        raise ConnectionRefusedError("redis://:hunter2@broker:6379 refused")

    check_id = make_check(database_url, "shumei", "vq-bt")
    with serve(create_app(get_settings(), broken)) as url:
        answer = Client(url, database_url).shumei(check_id, "vq-bt")
    assert (answer.status_code, answer.json()) == (503, {"error": "unavailable"})
    assert [e.state for e in events(database_url)] == ["received"]
    assert "enqueue_failed" in caplog.text and "hunter2" not in caplog.text


def test_event_loop_answers_while_a_broker_call_blocks(database_url, keys):
    entered, release = threading.Event(), threading.Event()

    def slow(_event_id: int) -> None:
        entered.set()
        release.wait(10)

    check_id = make_check(database_url, "shumei", "vq-bt")
    app = create_app(get_settings(), slow, broker_probe=lambda: None)
    with serve(app) as url, ThreadPoolExecutor(1) as pool:
        client = Client(url, database_url)
        pending = pool.submit(client.shumei, check_id, "vq-bt")
        assert entered.wait(10)
        assert requests.get(url("/healthz"), timeout=2).status_code == 200
        assert not pending.done()
        release.set()
        assert pending.result(10).status_code == 200


def test_merge_message_lands_in_redis(database_url, keys, redis_url, monkeypatch):
    monkeypatch.setenv("VOXQUEUE_BROKER_URL", redis_url)
    reset_settings()
    broker = Celery("voxqueue-webhooks-test", set_as_current=False)
    broker.conf.update(celery_config(get_settings()))
    check_id = make_check(database_url, "shumei", "vq-bt")
    try:
        with serve(create_app(get_settings(), merge_sender(broker))) as url:
            assert Client(url, database_url).shumei(check_id, "vq-bt").ok
    finally:
        broker.close()
    (event,) = events(database_url)
    assert event.check_id == check_id
    client = redis.Redis.from_url(redis_url)
    try:
        messages = client.lrange("callbacks", 0, -1)
    finally:
        client.close()
    assert len(messages) == 1
    message = json.loads(messages[0])
    assert message["headers"]["task"] == MERGE_TASK
    args, kwargs, _embed = json.loads(base64.b64decode(message["body"]))
    assert (args, kwargs) == ([event.id], {})


def test_default_enqueue_sends_the_merge_task_by_name(database_url, keys, monkeypatch):
    from workers.app import app

    calls = []
    monkeypatch.setattr(app, "send_task", lambda name, **kw: calls.append((name, kw)))
    check_id = make_check(database_url, "shumei", "vq-bt")
    with serve(create_app()) as url:
        client = Client(url, database_url)
        assert client.shumei(check_id, "vq-bt").ok
        assert client.shumei_unauthenticated(shumei_body("vq-bt", "k")).ok
    (event,) = events(database_url)
    assert calls == [(MERGE_TASK, {"args": [event.id], "queue": "callbacks", "retry": False}),
                     (QUERY_TASK, {"args": [check_id], "retry": False})]


def test_cli_has_the_webhooks_command():
    result = CliRunner().invoke(cli, ["webhooks", "--help"])
    assert result.exit_code == 0
    assert "--host" in result.output and "127.0.0.1" in result.output and "8080" in result.output


def test_voxqueue_webhooks_serves_until_terminated(database_url, redis_url, monkeypatch):
    monkeypatch.setenv("VOXQUEUE_BROKER_URL", redis_url)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "workers.cli", "webhooks", "--port", str(port)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        answer = _wait_for(f"http://127.0.0.1:{port}/healthz", process)
        assert (answer.status_code, answer.json()) == (200, {"database": "ok", "broker": "ok"})
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=10)
    assert process.returncode in (0, -signal.SIGTERM) and b"Traceback" not in stderr


def _wait_for(url: str, process: subprocess.Popen) -> requests.Response:
    deadline = time.monotonic() + 20
    while True:
        try:
            return requests.get(url, timeout=1)
        except requests.ConnectionError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise
            time.sleep(0.1)
