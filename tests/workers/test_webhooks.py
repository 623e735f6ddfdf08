"""The webhook receiver over a real socket, against SQLite and PostgreSQL (and Redis)."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets

import pytest
import requests

from config.settings import get_settings
from tasks.keys import callback_token
from tests.workers.webhook_helpers import (
    Client,
    asr_form,
    check_row,
    events,
    gme_body,
    key,
    make_check,
    serve,
    shumei_body,
    tupu_data,
    tupu_envelope,
)
from vendors.gme import sign_callback
from workers.webhooks import MAX_BODY, create_app

ACCESS_KEY = "shumei-access-key-" + "x" * 8


def _no_secrets(body: dict, *values: str) -> None:
    text = json.dumps(body, ensure_ascii=False)
    for name in ("accessKey", "signature", "Signatue"):
        assert name not in text
    for value in values:
        assert value not in text


def _hmac_hex(key: str, message: str) -> str:
    return hmac.new(key.encode(), message.encode(), hashlib.sha256).hexdigest()[:32]


# -- valid callbacks -----------------------------------------------------------
def test_healthz(receiver):
    answer = requests.get(receiver.url("/healthz"), timeout=10)
    assert (answer.status_code, answer.json()) == (200, {"database": "ok", "broker": "ok"})


def test_gme_callback_is_stored_and_merge_enqueued(receiver, keys):
    check_id = make_check(receiver.database_url, "gme", "gme-task-1")
    body = gme_body("gme-task-1")
    answer = receiver.gme(body, sign_callback(body, keys["gme"]))
    assert (answer.status_code, answer.json()) == (200, {"ok": True})
    (event,) = events(receiver.database_url)
    assert key(event) == ("gme", "gme-task-1", check_id, "received")
    assert event.body == json.loads(body) and event.note is None
    assert receiver.sent == [event.id]


def test_tupu_callback_is_stored_without_its_signature(receiver, tupu_key):
    check_id = make_check(receiver.database_url, "tupu", "tupu-task-1")
    envelope = tupu_envelope(tupu_key, tupu_data("tupu-task-1"))
    answer = receiver.post("/callbacks/tupu", json=envelope)
    assert (answer.status_code, answer.json()) == (200, {"ok": True})
    (event,) = events(receiver.database_url)
    assert key(event) == ("tupu", "tupu-task-1", check_id, "received")
    assert event.body == tupu_data("tupu-task-1")
    _no_secrets(event.body, envelope["signature"])
    assert receiver.sent == [event.id]


def test_tupu_end_of_task_callback(receiver, tupu_key):
    end = {"code": 0, "requestId": "tupu-task-2", "status": "end", "nonce": "0.8", "timestamp": 1}
    assert receiver.post("/callbacks/tupu", json=tupu_envelope(tupu_key, end)).status_code == 200
    (event,) = events(receiver.database_url)
    assert (event.vendor_task_id, event.body) == ("tupu-task-2", end)


def test_shumei_callback_is_stored_without_access_key(receiver):
    check_id = make_check(receiver.database_url, "shumei", "vq-bt-1")
    answer = receiver.post(receiver.shumei_path(check_id), json=shumei_body("vq-bt-1", ACCESS_KEY))
    assert (answer.status_code, answer.json()) == (200, {"ok": True})
    (event,) = events(receiver.database_url)
    assert key(event) == ("shumei", "vq-bt-1", check_id, "received")
    assert event.body["requestParams"] == {"btId": "vq-bt-1", "channel": "default"}
    _no_secrets(event.body, ACCESS_KEY)
    assert receiver.sent == [event.id]


def test_shumei_failure_callback_without_bt_id_is_stored(receiver):
    """Seed 004: a failure carries only code, message and requestId; the URL names the check."""
    check_id = make_check(receiver.database_url, "shumei", "vq-bt-1", request_id="req-1")
    failure = {"code": 1905, "message": "解码失败", "requestId": "req-1"}
    answer = receiver.post(receiver.shumei_path(check_id), json=failure)
    assert (answer.status_code, answer.json()) == (200, {"ok": True})
    (event,) = events(receiver.database_url)
    assert key(event) == ("shumei", None, check_id, "received") and event.body == failure
    assert receiver.sent == [event.id]


def test_unauthenticated_shumei_callback_stores_nothing_and_asks_the_vendor(receiver):
    check_id = make_check(receiver.database_url, "shumei", "vq-bt-1")
    for _ in range(3):  # a flood asks once: the next query waits for this one's answer
        answer = receiver.shumei_unauthenticated(shumei_body("vq-bt-1", ACCESS_KEY))
        assert (answer.status_code, answer.json()) == (200, {"ok": True})
    assert events(receiver.database_url) == [] and receiver.sent == []
    assert receiver.queried == [check_id]
    assert check_row(receiver.database_url, check_id).status == "running"


def test_unauthenticated_shumei_failure_is_matched_by_request_id(receiver):
    check_id = make_check(receiver.database_url, "shumei", "vq-bt-1", request_id="req-7")
    make_check(receiver.database_url, "shumei", "vq-bt-2", request_id="req-8")
    failure = {"code": 1903, "message": "服务失败", "requestId": "req-7"}
    assert receiver.shumei_unauthenticated(failure).status_code == 200
    assert receiver.shumei_unauthenticated(dict(failure, requestId="req-none")).status_code == 200
    assert receiver.queried == [check_id] and events(receiver.database_url) == []


def test_shumei_wrong_token_is_refused(receiver, keys):
    check_id = make_check(receiver.database_url, "shumei", "vq-bt-1")
    other = make_check(receiver.database_url, "shumei", "vq-bt-2")
    body = shumei_body("vq-bt-1", ACCESS_KEY)
    _refused(receiver, receiver.post(receiver.shumei_path(check_id, "0" * 32), json=body), 403)
    wrong = callback_token("shumei", other, get_settings())  # valid, but for another check
    _refused(receiver, receiver.post(receiver.shumei_path(check_id, wrong), json=body), 403)
    asr_token = callback_token("asr", check_id, get_settings())  # another vendor's
    _refused(receiver, receiver.post(receiver.shumei_path(check_id, asr_token), json=body), 403)
    assert receiver.queried == []


@pytest.mark.parametrize("as_json", [False, True], ids=["form", "json"])
def test_asr_callback_is_stored_and_acknowledged(receiver, as_json):
    check_id = make_check(receiver.database_url, "asr", "8801")
    form = asr_form("8801")
    kwargs = {"json": form} if as_json else {"data": form}
    answer = receiver.post(receiver.asr_path(check_id), **kwargs)
    assert (answer.status_code, answer.json()) == (200, {"code": 0, "message": "success"})
    (event,) = events(receiver.database_url)
    assert key(event) == ("asr", "8801", check_id, "received")
    assert event.body == form
    assert receiver.sent == [event.id]


# -- refused: forged, replayed with another body, unsigned, unconfigured ---------
def _refused(receiver, answer, status: int) -> None:
    assert answer.status_code == status
    assert events(receiver.database_url) == [] and receiver.sent == []


def test_gme_forged_replayed_and_unsigned_are_refused(receiver, keys):
    body = gme_body("gme-task-1")
    _refused(receiver, receiver.gme(body, sign_callback(body, secrets.token_hex(16))), 403)
    altered = body.replace(b'"HitFlag": true', b'"HitFlag": false')
    _refused(receiver, receiver.gme(altered, sign_callback(body, keys["gme"])), 403)
    _refused(receiver, receiver.gme(body, None), 401)
    _refused(receiver, receiver.gme(body, ""), 401)


def test_tupu_forged_replayed_and_unsigned_are_refused(receiver, tupu_key, forger_key):
    data = tupu_data("tupu-task-1")
    _refused(receiver, receiver.post("/callbacks/tupu", json=tupu_envelope(forger_key, data)), 403)
    envelope = tupu_envelope(tupu_key, data)
    altered = dict(envelope, json=envelope["json"].replace('"label": 1', '"label": 0'))
    _refused(receiver, receiver.post("/callbacks/tupu", json=altered), 403)
    _refused(receiver, receiver.post("/callbacks/tupu", json={"json": envelope["json"]}), 401)
    _refused(receiver, receiver.post("/callbacks/tupu", json=data), 401)
    _refused(receiver, receiver.post("/callbacks/tupu", data=b"not json"), 401)


def test_asr_wrong_token_is_refused(receiver, keys):
    check_id = make_check(receiver.database_url, "asr", "8801")
    other = make_check(receiver.database_url, "asr", "8802")
    form = asr_form("8801")
    _refused(receiver, receiver.post(receiver.asr_path(check_id, "0" * 32), data=form), 403)
    wrong = callback_token("asr", other, get_settings())  # valid, but for another check
    _refused(receiver, receiver.post(receiver.asr_path(check_id, wrong), data=form), 403)
    old_way = _hmac_hex(keys["tencent"], f"asr:{check_id}")  # the token's key is no longer the API secret
    _refused(receiver, receiver.post(receiver.asr_path(check_id, old_way), data=form), 403)


def test_unconfigured_keys_refuse_everything(database_url, tupu_key):
    """Without the vendors' keys, signed callbacks cannot be checked. The tokens of ASR and
    Shumei are ours: they need no vendor key (nor the Tencent secret, since one key serves one
    purpose)."""
    sent: list[int] = []
    with serve(create_app(get_settings(), sent.append, broker_probe=lambda: None)) as url:
        rx = Client(url, database_url, sent)
        body = gme_body("gme-task-1")
        _refused(rx, rx.gme(body, sign_callback(body, "")), 403)
        _refused(rx, rx.post("/callbacks/tupu", json=tupu_envelope(tupu_key, tupu_data("t"))), 403)
        assert rx.post(rx.asr_path(1), data=asr_form("1")).status_code == 200
        assert rx.post(rx.asr_path(1, _hmac_hex("", "asr:1")), data=asr_form("1")).status_code == 403


def test_malformed_bodies_are_refused(receiver, keys):
    body = b"[1, 2]"
    _refused(receiver, receiver.gme(body, sign_callback(body, keys["gme"])), 400)
    _refused(receiver, receiver.post("/callbacks/shumei", data=b"{not json"), 400)
    _refused(receiver, receiver.post("/callbacks/shumei", json={"code": 1100}), 400)
    _refused(receiver, receiver.post(receiver.shumei_path(make_check(receiver.database_url, "shumei")),
                                     data=b"{not json"), 400)
    check_id = make_check(receiver.database_url, "asr", "8801")
    _refused(receiver, receiver.post(receiver.asr_path(check_id), data={"text": "no code"}), 400)


@pytest.mark.parametrize("path", ["/callbacks/gme", "/callbacks/shumei", "/callbacks/tupu", "asr", "shumei"])
def test_oversized_body_is_refused_unread(receiver, path):
    if path in ("asr", "shumei"):
        check_id = make_check(receiver.database_url, path)
        path = receiver.asr_path(check_id) if path == "asr" else receiver.shumei_path(check_id)
    _refused(receiver, receiver.post(path, data=b"{" + b" " * MAX_BODY + b"}"), 413)


def test_oversized_chunked_body_is_refused(receiver):
    chunks = (b" " * 65536 for _ in range(MAX_BODY // 65536 + 1))  # no Content-Length
    _refused(receiver, receiver.post("/callbacks/shumei", data=chunks), 413)


def test_refusals_log_vendor_and_reason_only(receiver, keys, caplog):
    body = gme_body("gme-task-1")
    forged = sign_callback(body, secrets.token_hex(16))
    with caplog.at_level("INFO"):
        assert receiver.gme(body, forged).status_code == 403
        assert receiver.post(receiver.asr_path(7, "f" * 32), data=asr_form("1")).status_code == 403
    refusals = [r for r in caplog.records if r.name == "voxqueue.webhooks"]
    logged = [(r.vendor, r.reason) for r in refusals]
    assert logged == [("gme", "bad_signature"), ("asr", "bad_token")]
    for secret in (forged, keys["gme"], keys["tencent"], "gme-task-1", "f" * 32):
        assert secret not in caplog.text
