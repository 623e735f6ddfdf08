"""Hostile callbacks: what a stranger (or a broken vendor) can send never gives a 5xx, a
traceback in the receiver's log, a stored row it should not, or a merge that loops.

Every case runs on SQLite and PostgreSQL. After each: the status is one of the expected
4xx (or the connection was closed), the log has no traceback, "Unhandled exception" or
"Error handling request", and the database holds what it should (for a refusal:
nothing new, the check untouched).
"""

from __future__ import annotations

import base64
import json
import logging
import time
import uuid
from urllib.parse import urlsplit

import pytest
import requests
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from sqlalchemy import text

from config.settings import get_settings, reset_settings
from models.db import engine_for
from tasks.results import merge
from tests.workers import hostile
from tests.workers.hostile import (
    ASR_SIGNED,
    GME_SIGNED,
    RAW_REQUESTS,
    SHUMEI_OPEN,
    SHUMEI_SIGNED,
    Body,
)
from tests.workers.webhook_helpers import (
    Client,
    check_row,
    events,
    make_check,
    serve,
    shumei_body,
    tupu_data,
    tupu_envelope,
)
from vendors.gme import sign_callback
from workers.webhooks import Limits, create_app

pytestmark = pytest.mark.usefixtures("keys")


@pytest.fixture
def logged(caplog) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO)
    return caplog


def post(receiver: Client, path: str, body: Body, **kwargs) -> requests.Response:
    return receiver.post(path, data=body.raw, headers={"Content-Type": body.content_type}, **kwargs)


def assert_clean(receiver: Client, logged, status: int | None, allowed: tuple[int | None, ...],
                 check_id: int | None = None) -> None:
    """The refusal a careful receiver gives: an expected status, a clean log, nothing stored."""
    assert status in allowed, status
    assert hostile.log_problems(logged.records) == []
    assert events(receiver.database_url) == [] and receiver.sent == [] and receiver.queried == []
    if check_id is not None:
        check = check_row(receiver.database_url, check_id)
        assert (check.status, check.verdict, check.error) == ("running", None, None)


def _ids(cases: list[Body]) -> list[str]:
    return [case.name for case in cases]


# -- bodies, endpoint by endpoint ------------------------------------------------------------
@pytest.mark.parametrize("body", SHUMEI_OPEN, ids=_ids(SHUMEI_OPEN))
def test_shumei_without_token(receiver, logged, body):
    check_id = make_check(receiver.database_url, "shumei", hostile.BT_ID)
    answer = post(receiver, "/callbacks/shumei", body)
    assert_clean(receiver, logged, answer.status_code, body.allowed, check_id)


@pytest.mark.parametrize("body", SHUMEI_SIGNED, ids=_ids(SHUMEI_SIGNED))
def test_shumei_with_its_token(receiver, logged, body):
    check_id = make_check(receiver.database_url, "shumei", hostile.BT_ID)
    answer = post(receiver, receiver.shumei_path(check_id), body)
    assert_clean(receiver, logged, answer.status_code, body.allowed, check_id)


@pytest.mark.parametrize("body", GME_SIGNED, ids=_ids(GME_SIGNED))
def test_gme_signed(receiver, logged, keys, body):
    check_id = make_check(receiver.database_url, "gme", "gme-hostile")
    answer = receiver.gme(body.raw, sign_callback(body.raw, keys["gme"]))
    assert_clean(receiver, logged, answer.status_code, body.allowed, check_id)


@pytest.mark.parametrize("body", ASR_SIGNED, ids=_ids(ASR_SIGNED))
def test_asr_with_its_token(receiver, logged, body):
    check_id = make_check(receiver.database_url, "asr", "1")
    answer = post(receiver, receiver.asr_path(check_id), body)
    assert_clean(receiver, logged, answer.status_code, body.allowed, check_id)


def _signed_text(key, text_: str) -> str:
    signature = key.sign(text_.encode("utf-8", "surrogatepass"), padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(signature).decode("ascii")


def _tupu_cases(key) -> dict[str, tuple[bytes, tuple[int, ...]]]:
    """Tupu envelopes: raw bytes and the statuses allowed (the envelope is read unauthenticated)."""
    good = tupu_envelope(key, tupu_data("tupu-hostile"))

    def envelope(json_text: str, signature: str | None = None) -> bytes:
        return json.dumps({"json": json_text, "signature": signature or _signed_text(key, json_text)}).encode()

    deep = hostile.nested_arrays(hostile.DEEP).decode()
    refused = (400, 401, 403)
    return {
        "envelope-nested-10000": (hostile.nested_objects(hostile.DEEP), refused),
        "signature-non-ascii": (json.dumps({**good, "signature": "é" * 40}).encode(), (403,)),
        "signature-lone-surrogate": (b'{"json": "{}", "signature": "\\ud800AAAA"}', refused),
        "json-lone-surrogate": (b'{"json": "{\\"a\\": \\"\\ud800\\"}", "signature": "QUFB"}', refused),
        "json-non-ascii-forged": (json.dumps({"json": '{"a": "é"}', "signature": good["signature"]}).encode(),
                                  (403,)),
        "signature-number": (json.dumps({"json": good["json"], "signature": 12345}).encode(), refused),
        "signature-list": (json.dumps({"json": good["json"], "signature": ["x"]}).encode(), refused),
        "json-number": (json.dumps({"json": 5, "signature": good["signature"]}).encode(), refused),
        "signature-not-base64": (json.dumps({"json": good["json"], "signature": "!!!!"}).encode(), (403,)),
        "signed-nested-10000": (envelope(deep), (400,)),
        "signed-500-deep": (envelope(hostile.nested_objects(500).decode()), (400,)),
        "signed-overflow": (envelope('{"status": "end", "code": 1e999, "requestId": "t"}'), (400,)),
        "signed-nan": (envelope('{"code": NaN, "requestId": "t"}'), (400,)),
        "signed-nul": (envelope('{"requestId": "t\\u0000", "status": "end"}'), (400,)),
        "signed-array": (envelope("[1, 2]"), (400,)),
        "signed-not-json": (envelope("{not json"), (400,)),
        "signed-task-id-300": (envelope(json.dumps({"requestId": "t" * 300, "status": "end"})), (400,)),
    }


@pytest.mark.parametrize("name", [
    "envelope-nested-10000", "signature-non-ascii", "signature-lone-surrogate", "json-lone-surrogate",
    "json-non-ascii-forged", "signature-number", "signature-list", "json-number", "signature-not-base64",
    "signed-nested-10000", "signed-500-deep", "signed-overflow", "signed-nan", "signed-nul", "signed-array",
    "signed-not-json", "signed-task-id-300"])
def test_tupu_envelopes(receiver, logged, tupu_key, name):
    raw, allowed = _tupu_cases(tupu_key)[name]
    check_id = make_check(receiver.database_url, "tupu", "tupu-hostile")
    answer = receiver.post("/callbacks/tupu", data=raw, headers={"Content-Type": "application/json"})
    assert_clean(receiver, logged, answer.status_code, allowed, check_id)


def test_gme_signature_that_is_not_text(receiver, logged):
    check_id = make_check(receiver.database_url, "gme", "gme-hostile")
    raw = hostile.gme_result()
    for query in ("Signatue=%ED%A0%80", "Signatue=%FF%FE", "Signatue=" + "é" * 30, "Signatue=%00"):
        answer = requests.post(receiver.url("/callbacks/gme") + "?" + query, data=raw, timeout=10)
        assert_clean(receiver, logged, answer.status_code, (401, 403), check_id)


# -- raw HTTP that the parser refuses ------------------------------------------------------
@pytest.mark.parametrize("name", list(RAW_REQUESTS))
def test_raw_http_refused_without_a_traceback(receiver, logged, name):
    parts = urlsplit(receiver.url("/"))
    answer = hostile.raw_exchange(parts.hostname, parts.port, RAW_REQUESTS[name])
    status = hostile.status_of(answer)
    assert_clean(receiver, logged, status, (None, 400, 403, 404, 405, 413, 431, 501))
    assert requests.get(receiver.url("/healthz"), timeout=5).status_code == 200  # still serving


# -- slow bodies -------------------------------------------------------------------------------
SLOW = {
    "content-length": ((b"POST /callbacks/shumei HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                        b"Content-Length: 1000\r\n\r\n"), b'{"btId": '),
    "chunked": (b"POST /callbacks/gme HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", b"5\r\n{\"a\":\r\n"),
    "no-body-yet": (b"POST /callbacks/tupu HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n", b""),
}


@pytest.mark.parametrize("name", list(SLOW))
def test_slow_body_is_cut_off(database_url, logged, name):
    sent: list[int] = []
    app = create_app(get_settings(), sent.append, broker_probe=lambda: None, limits=Limits(body_s=1.0))
    with serve(app) as url:
        parts = urlsplit(url("/"))
        head, first = SLOW[name]
        answer, took = hostile.slow_body(parts.hostname, parts.port, head, first, timeout=10)
    assert hostile.status_of(answer) in (408, None) and took < 4, (answer[:60], took)
    assert hostile.log_problems(logged.records) == []
    assert events(database_url) == [] and sent == []


# -- Shumei without its token is a signal, never a result --------------------------------
def test_forged_shumei_result_computed_from_the_source_changes_nothing(receiver, logged):
    """The attack of issue 20: btId = "vq-" + uuid5(namespace in the source, batch + row + service)."""
    check_id = make_check(receiver.database_url, "shumei", "vq-" + uuid.uuid4().hex)
    with engine_for(receiver.database_url).connect() as conn:
        batch = conn.scalar(text("SELECT b.name FROM batches b JOIN jobs j ON j.batch_id = b.id "
                                 "JOIN checks c ON c.job_id = j.id WHERE c.id = :c"), {"c": check_id})
    namespace = uuid.UUID("3f1d8f0e-6c35-4a8e-9d55-6f1f0a6e2b10")
    forged_bt_id = "vq-" + uuid.uuid5(namespace, f"{batch}\x00row-1\x00shumei").hex
    forged = {"code": 1100, "btId": forged_bt_id, "riskLevel": "PASS", "requestId": "r"}
    for path in ("/callbacks/shumei", f"/callbacks/shumei/{check_id}/{'0' * 32}"):
        answer = receiver.post(path, json=forged)
        assert answer.status_code in (200, 403)
    assert_clean(receiver, logged, 200, (200,), check_id)


def test_unauthenticated_bodies_are_never_stored(receiver, logged):
    check_id = make_check(receiver.database_url, "shumei", hostile.BT_ID)
    answers = [receiver.shumei_unauthenticated(shumei_body(f"vq-{i}", "k")).status_code for i in range(118)]
    answers.append(receiver.shumei_unauthenticated(shumei_body(hostile.BT_ID, "k")).status_code)
    assert set(answers) == {200}
    assert events(receiver.database_url) == [] and receiver.queried == [check_id]
    assert hostile.log_problems(logged.records) == []


# -- the merge: a stored event it cannot read ends ignored after one try --------------------
MERGE_CASES = {
    "gme": ['{"ScanPiece": 5}', '{"Code": 1e999, "Status": "Success"}', '{"Status": "Success", "ScanPiece": [1, 2]}',
            '{"Status": "Success", "HitFlag": true, "ScanPiece": [{"HitFlag": true, "MainType": {"a": 1}}]}',
            '{"Status": "Success", "HitFlag": true, "ScanPiece": [{"HitFlag": true, "ScanDetail": 5}]}',
            '[1, 2]', '{"Status": null}'],
    "shumei": ['{"code": 1100, "audioDetail": [1, 2]}', '{"code": 1e999}', '{"code": 1100, "riskLevel": ["PASS"]}',
               '{"code": 1100, "riskLevel": "PASS", "audioTags": 5}', '"text"',
               '{"code": 1100, "riskLevel": "PASS", "audioText": "a\\u0000b"}',
               '{"code": 1100, "riskLevel": "PASS", "audioDetail": [{"riskLevel": "REJECT", "riskLabel1": ["x"]}]}'],
    "asr": ['{"code": 1e999}', '{"code": "0", "text": ["a"]}', '{"code": [0]}', '{}', '{"code": 0, "text": "a\\u0000"}'],
    "tupu": ['{"code": 1e999}', '{"status": "end", "code": 1e999, "requestId": "t"}', '5'],
}
MERGE_IDS = [(vendor, i) for vendor, bodies in MERGE_CASES.items() for i in range(len(bodies))]


def insert_event(url: str, vendor: str, check_id: int, raw_body: str) -> int:
    """A stored callback exactly as given (an older receiver stored such bodies)."""
    cast = "CAST(:body AS JSON)" if url.startswith("postgresql") else ":body"
    with engine_for(url).begin() as conn:
        return conn.scalar(text(
            "INSERT INTO callback_events (vendor, vendor_task_id, check_id, state, body, received_at) "
            f"VALUES (:vendor, NULL, :check, 'received', {cast}, CURRENT_TIMESTAMP) RETURNING id"),
            {"vendor": vendor, "check": check_id, "body": raw_body})


@pytest.mark.parametrize(("vendor", "index"), MERGE_IDS, ids=[f"{v}-{i}" for v, i in MERGE_IDS])
def test_unreadable_stored_event_ends_ignored_after_one_try(database_url, redis_url, monkeypatch, logged,
                                                            vendor, index):
    monkeypatch.setenv("VOXQUEUE_BROKER_URL", redis_url)
    raw_body = MERGE_CASES[vendor][index]
    check_id = make_check(database_url, vendor, hostile.BT_ID)
    event_id = insert_event(database_url, vendor, check_id, raw_body)
    merge(event_id)
    (event,) = events(database_url)
    assert (event.id, event.state) == (event_id, "ignored")
    assert event.note.startswith("unreadable callback"), event.note
    check = check_row(database_url, check_id)
    assert (check.status, check.verdict, check.text, check.error) == ("running", None, None, None)
    merge(event_id)  # a second delivery (housekeeping would send none) changes nothing
    assert [e.state for e in events(database_url)] == ["ignored"]
    assert hostile.log_problems(logged.records) == []


# -- a broker or database that accepts connections and never answers ------------------------
def test_stalled_enqueue_answers_503_in_time(database_url, logged):
    blocked = []

    def hang(event_id: int) -> None:
        blocked.append(event_id)
        time.sleep(3)

    check_id = make_check(database_url, "shumei", hostile.BT_ID)
    app = create_app(get_settings(), hang, query=hang, broker_probe=lambda: None, limits=Limits(call_s=1.0))
    with serve(app) as url:
        client = Client(url, database_url)
        started = time.monotonic()
        stored = client.shumei(check_id, hostile.BT_ID)
        signal = client.shumei_unauthenticated(shumei_body(hostile.BT_ID, "k"))
        took = time.monotonic() - started
    assert (stored.status_code, signal.status_code) == (503, 503) and took < 5, took
    (event,) = events(database_url)
    assert event.state == "received"  # kept: housekeeping sends its merge a minute later
    assert hostile.log_problems(logged.records) == []
    assert "enqueue_timeout" in logged.text


def test_healthz_names_a_stalled_broker(database_url, logged, monkeypatch, silent_server):
    monkeypatch.setenv("VOXQUEUE_BROKER_URL", f"redis://127.0.0.1:{silent_server}/0")
    reset_settings()
    app = create_app(get_settings(), lambda _e: None, limits=Limits(probe_s=1.0))
    with serve(app) as url:
        started = time.monotonic()
        first = requests.get(url("/healthz"), timeout=10)
        again = requests.get(url("/healthz"), timeout=10)  # the stuck probe is not started twice
        took = time.monotonic() - started
    assert (first.status_code, first.json()) == (503, {"database": "ok", "broker": "down"})
    assert (again.status_code, again.json()) == (503, {"database": "ok", "broker": "down"})
    assert took < 5, took
    assert hostile.log_problems(logged.records) == []


def test_a_stalled_database_answers_503_and_healthz_names_it(database_url, logged, monkeypatch, silent_server):
    monkeypatch.setenv("VOXQUEUE_DATABASE_URL", f"postgresql+psycopg://postgres@127.0.0.1:{silent_server}/x")
    monkeypatch.setenv("VOXQUEUE_SECRET_KEY", "k" * 32)  # the receiver could not read it from there
    reset_settings()
    app = create_app(get_settings(), lambda _e: None, broker_probe=lambda: None,
                     limits=Limits(call_s=1.0, probe_s=1.0))
    with serve(app) as url:
        client = Client(url, database_url)
        started = time.monotonic()
        stored = client.shumei(1, hostile.BT_ID)
        health = requests.get(url("/healthz"), timeout=10)
        took = time.monotonic() - started
    assert stored.status_code == 503
    assert (health.status_code, health.json()) == (503, {"database": "down", "broker": "ok"})
    assert took < 5, took
    assert "store_timeout" in logged.text
    assert hostile.log_problems(logged.records) == []
