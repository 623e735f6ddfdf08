"""Tupu speech streams: RSA signing both ways, request bodies, responses and callbacks."""

from __future__ import annotations

import base64
import json
import random

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from vendors import tupu
from vendors.errors import BadResponse, Disposition, InvalidInput, VendorError

SECRET_ID = "5bcf23077f532488c2ccd6a6"
VULGAR = "5c8213b9bc807806aab0a574"


def _pem_private(key: rsa.RSAPrivateKey, fmt=serialization.PrivateFormat.PKCS8) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption())


def _pem_public(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@pytest.fixture(scope="module")
def customer_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def tupu_key() -> rsa.RSAPrivateKey:
    """Stands in for Tupu's own key pair (it signs responses and callbacks)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def signer(customer_key) -> tupu.TupuSigner:
    return tupu.TupuSigner(SECRET_ID, _pem_private(customer_key))


@pytest.fixture
def client(signer, tupu_key) -> tupu.TupuClient:
    return tupu.TupuClient(
        "http://api.speech.tuputech.com/",
        signer,
        public_key_pem=_pem_public(tupu_key),
        clock=lambda: 1541499770.5,
        rand=random.Random(3),
    )


def envelope(key: rsa.RSAPrivateKey, data: dict) -> dict:
    text = json.dumps(data, ensure_ascii=False)
    signature = key.sign(text.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())
    return {"json": text, "signature": base64.b64encode(signature).decode("ascii")}


# -- signer -------------------------------------------------------------------------
def test_string_to_sign(signer):
    assert (
        signer.string_to_sign(1541499770, 0.8469537531104208)
        == f"{SECRET_ID},1541499770,0.8469537531104208"
    )
    assert signer.string_to_sign(1541499770, 12345) == f"{SECRET_ID},1541499770,12345"


def test_signature_verifies_with_the_customer_public_key(signer, customer_key):
    signature = base64.b64decode(signer.sign(1541499770, 12345))
    message = f"{SECRET_ID},1541499770,12345".encode()
    customer_key.public_key().verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
    with pytest.raises(InvalidSignature):
        customer_key.public_key().verify(
            signature, message + b"6", padding.PKCS1v15(), hashes.SHA256()
        )


def test_pkcs1_pem_keys_load_too(customer_key):
    legacy = tupu.TupuSigner(
        SECRET_ID, _pem_private(customer_key, serialization.PrivateFormat.TraditionalOpenSSL)
    )
    assert legacy.sign(1, 2) == tupu.TupuSigner(SECRET_ID, _pem_private(customer_key)).sign(
        1, 2
    )  # PKCS#1 v1.5 is deterministic


def test_signer_repr_hides_key(signer, customer_key):
    assert "PRIVATE" not in repr(signer) and "***" in repr(signer)


def test_non_rsa_private_key_is_refused():
    from cryptography.hazmat.primitives.asymmetric import ec

    pem = _pem_private(ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(ValueError):
        tupu.TupuSigner(SECRET_ID, pem)


# -- verify_signed --------------------------------------------------------------------
def test_verify_round_trip(tupu_key):
    data = {"code": 0, "requestId": "61275d377b8d07d33a10cde0", "status": "end"}
    assert tupu.verify_signed(envelope(tupu_key, data), _pem_public(tupu_key)) == data


def test_tampered_json_is_rejected(tupu_key):
    signed = envelope(tupu_key, {"code": 0, "requestId": "a", "status": "end"})
    signed["json"] = signed["json"].replace('"code": 0', '"code": 5')
    with pytest.raises(tupu.SignatureError) as caught:
        tupu.verify_signed(signed, _pem_public(tupu_key))
    assert isinstance(caught.value, VendorError)
    assert (caught.value.reason, caught.value.disposition) == (
        "bad_signature",
        Disposition.PERMANENT,
    )


def test_signature_from_another_key_is_rejected(tupu_key, customer_key):
    with pytest.raises(tupu.SignatureError):
        tupu.verify_signed(envelope(customer_key, {"code": 0}), _pem_public(tupu_key))


@pytest.mark.parametrize(
    "payload",
    [
        {"json": "{}", "signature": "not base64!"},
        {"json": "{}", "signature": ""},
        {"json": "{}"},
        {"code": 0},
        {"json": {"code": 0}, "signature": "AAAA"},
        "json",
    ],
)
def test_malformed_envelopes_are_rejected(payload, tupu_key):
    with pytest.raises(tupu.SignatureError):
        tupu.verify_signed(payload, _pem_public(tupu_key))


def test_signed_non_object_is_bad_response(tupu_key):
    text = "[1, 2]"
    signature = base64.b64encode(
        tupu_key.sign(text.encode(), padding.PKCS1v15(), hashes.SHA256())
    ).decode()
    with pytest.raises(BadResponse):
        tupu.verify_signed({"json": text, "signature": signature}, tupu_key.public_key())


def test_signature_error_pickles():
    import pickle

    error = pickle.loads(pickle.dumps(tupu.SignatureError("nope")))
    assert (error.reason, error.message) == ("bad_signature", "nope")


# -- request bodies -------------------------------------------------------------------------
def test_stream_body_has_the_seed_fields(client, customer_key):
    body = client.stream_body(
        "job-7",
        "rtmp://pili-Room-4daedc9c7a5db36c325f6609000c0201",
        callback_url="https://cb/tupu",
        room_id="111111",
        user_id="23231",
        callback_rules=tupu.CALLBACK_ALL_AND_END,
        return_pre_speech=True,
    )
    assert body["speechStream"] == [
        {
            "url": "rtmp://pili-Room-4daedc9c7a5db36c325f6609000c0201",
            "callback": "https://cb/tupu",
            "roomId": "111111",
            "userId": "23231",
            "forumId": "job-7",
            "callbackRules": 3,
            "returnPreSpeech": True,
        }
    ]
    assert body["timestamp"] == 1541499770 and isinstance(body["nonce"], int)
    assert set(body) == {"speechStream", "timestamp", "nonce", "signature"}
    message = f"{SECRET_ID},{body['timestamp']},{body['nonce']}".encode()
    customer_key.public_key().verify(
        base64.b64decode(body["signature"]), message, padding.PKCS1v15(), hashes.SHA256()
    )


def test_stream_body_defaults_and_tasks(client):
    body = client.stream_body(None, "http://live/a.flv", callback_url="https://cb", tasks=[VULGAR])
    assert body["speechStream"][0] == {
        "url": "http://live/a.flv",
        "callback": "https://cb",
        "callbackRules": 0,
        "returnPreSpeech": False,
    }
    assert body["tasks"] == [VULGAR]


def test_nonce_is_fresh_per_request(client):
    first = client.stream_body("a", "rtmp://x/y", callback_url="https://cb")
    second = client.stream_body("a", "rtmp://x/y", callback_url="https://cb")
    assert first["nonce"] != second["nonce"]


@pytest.mark.parametrize("url", ["ftp://x/y.flv", "/local/file.wav", "file:///a.wav"])
def test_unsupported_stream_urls(client, url):
    with pytest.raises(InvalidInput) as caught:
        client.stream_body("a", url, callback_url="https://cb")
    assert caught.value.reason == "unsupported_stream"


def test_callback_rules_are_checked(client):
    with pytest.raises(ValueError):
        client.stream_body("a", "rtmp://x/y", callback_url="https://cb", callback_rules=4)


def test_close_body(client):
    body = client.close_body("5c8213b9bc807806aab0a321")
    assert body["speechStream"] == [{"requestId": "5c8213b9bc807806aab0a321"}]
    assert {"timestamp", "nonce", "signature"} <= set(body)


def test_client_paths_and_repr(client):
    assert (
        tupu.SUBMIT_PATH.format(secret_id=SECRET_ID) == f"/v3/recognition/speech/stream/{SECRET_ID}"
    )
    assert (
        tupu.CLOSE_PATH.format(secret_id=SECRET_ID)
        == f"/v3/recognition/speech/stream/close/{SECRET_ID}"
    )
    assert client.endpoint == "http://api.speech.tuputech.com"
    assert "PRIVATE" not in repr(client)


# -- responses ------------------------------------------------------------------------------
SUBMIT_ANSWER = {
    "result": [
        {
            "requestId": "5bcf23077f532488c2ccd6a615578896555130.34123306702281964",
            "url": "rtsp://172.26.3.67:8554/dawang_crop_aac.mkv",
            "callback": "http://172.25.52.11:8008",
            "roomId": "12345",
            "userId": "milian",
            "forumId": "123456",
        }
    ],
    "code": 0,
    "message": "success",
    "nonce": "0.01627771095362096",
    "timestamp": 1552391372490,
}
CLOSE_ANSWER = {
    "result": [{"requestId": "5c8213b9bc807806aab0a321", "status": "closed"}],
    "code": 0,
    "message": "success",
    "nonce": "0.01627771095362096",
    "timestamp": 1552391372490,
}


def test_signed_submit_answer_is_verified_and_parsed(client, tupu_key):
    data = client.unwrap(envelope(tupu_key, SUBMIT_ANSWER))
    assert tupu.first_result(data)["requestId"] == SUBMIT_ANSWER["result"][0]["requestId"]


def test_plain_answer_is_accepted(client):
    assert tupu.first_result(client.unwrap(CLOSE_ANSWER))["status"] == "closed"


def test_forged_answer_is_rejected(client, customer_key):
    with pytest.raises(tupu.SignatureError):
        client.unwrap(envelope(customer_key, SUBMIT_ANSWER))


def test_error_answer_raises_permanent():
    with pytest.raises(VendorError) as caught:
        tupu.first_result({"code": 7, "message": "invalid signature", "nonce": "1", "timestamp": 1})
    assert (caught.value.code, caught.value.disposition) == ("7", Disposition.PERMANENT)
    assert caught.value.reason == "request_rejected"


@pytest.mark.parametrize(
    "data", [{"code": 0}, {"code": 0, "result": []}, {"code": 0, "result": [{"url": "x"}]}]
)
def test_success_without_request_id_is_bad_response(data):
    with pytest.raises(BadResponse):
        tupu.first_result(data)


# -- callbacks --------------------------------------------------------------------------------
def test_end_of_task_callback(tupu_key):
    data = {
        "code": 0,
        "requestId": "61275d377b8d07d33a10cde0",
        "status": "end",
        "nonce": "0.8954065702381435",
        "timestamp": 1629969759333,
    }
    event = tupu.parse_callback(envelope(tupu_key, data), _pem_public(tupu_key))
    assert (event.task_id, event.kind, event.code, event.verdict, event.labels) == (
        "61275d377b8d07d33a10cde0",
        "end",
        0,
        None,
        [],
    )
    assert not event.abnormal_end and event.raw == data


def test_abnormal_end(tupu_key):
    event = tupu.parse_event({"code": 3001, "requestId": "t", "status": "end"})
    assert event.abnormal_end


def _speech_callback(*speeches: dict) -> dict:
    return {
        "code": 0,
        "message": "success",
        "requestId": "task-1",
        "forumId": "job-7",
        "nonce": "0.1",
        "timestamp": 1629969759333,
        VULGAR: {"speechs": list(speeches)},
    }


def test_violation_callback(tupu_key):
    data = _speech_callback(
        {
            "name": "https://dump/1.mp3",
            "label": 1,
            "review": False,
            "rate": 0.97,
            "details": [{"startTime": 1.2, "endTime": 3.4, "label": 1, "rate": 0.97}],
        }
    )
    event = tupu.parse_callback(envelope(tupu_key, data), _pem_public(tupu_key))
    assert (event.task_id, event.kind, event.verdict, event.labels) == (
        "task-1",
        "violation",
        "REJECT",
        ["vulgar:1"],
    )


def test_review_callback():
    event = tupu.parse_event(
        _speech_callback(
            {"name": "a", "label": 2, "review": True}, {"name": "b", "label": 2, "review": True}
        )
    )
    assert (event.kind, event.verdict, event.labels) == ("violation", "REVIEW", ["vulgar:2"])


def test_all_results_callback_that_passes():
    event = tupu.parse_event(_speech_callback({"name": "a", "label": 0, "review": False}))
    assert (event.kind, event.verdict, event.labels) == ("result", "PASS", [])


def test_task_id_from_the_speech_when_absent_at_top():
    data = _speech_callback({"name": "a", "label": 1, "review": False, "requestId": "task-9"})
    del data["requestId"]
    assert tupu.parse_event(data).task_id == "task-9"


def test_error_callback():
    event = tupu.parse_event({"code": 500, "message": "stream unreachable", "requestId": "t"})
    assert (event.kind, event.verdict) == ("error", None)


def test_forged_callback_is_rejected(tupu_key, customer_key):
    with pytest.raises(tupu.SignatureError):
        tupu.parse_callback(envelope(customer_key, _speech_callback()), _pem_public(tupu_key))


# -- labels per task: speech review's are strings with an action, the others integers ---------
SPEECH_REVIEW = "5caee6b2a76925c55a09a6d2"
TRANSCRIPTION = "5ca1bd6b3872ecc9afb99132"


def _reviewed(*speeches: dict, vulgar: list[dict] | None = None) -> dict:
    """A callbackRules-3 result: speech review's speeches, the vulgar task's, a transcription."""
    data = {"code": 0, "message": "success", "requestId": "task-1", "forumId": "job-7",
            "nonce": "0.1", "timestamp": 1629969759333, SPEECH_REVIEW: {"speechs": list(speeches)},
            TRANSCRIPTION: {"texts": [{"requestId": "task-1", "content": "床前明月光"}]}}
    return data | ({VULGAR: {"speechs": vulgar}} if vulgar is not None else {})


def _review_speech(label: str, action: str | None, review: bool = False) -> dict:
    speech = {"name": "https://dump/1.mp3", "label": label, "review": review, "rate": 0.91,
              "details": [] if action == "pass" else [{"keyword": "", "hint": "", "mainLabel": label}]}
    return speech | ({"action": action} if action is not None else {})


def test_normal_string_labels_are_clean(tupu_key):
    data = _reviewed(_review_speech("Normal", "pass"), vulgar=[{"name": "a", "label": 0, "review": False}])
    event = tupu.parse_callback(envelope(tupu_key, data), _pem_public(tupu_key))
    assert (event.kind, event.verdict, event.labels) == ("result", "PASS", [])


@pytest.mark.parametrize(
    ("speech", "verdict", "labels"),
    [
        (_review_speech("Porn", "block"), "REJECT", ["speech_review:porn"]),
        (_review_speech("ADs", "review", review=True), "REVIEW", ["speech_review:ads"]),
        (_review_speech("Politics", None), "REJECT", ["speech_review:politics"]),  # no action: the label
        (_review_speech("Abuse", None, review=True), "REVIEW", ["speech_review:abuse"]),
        (_review_speech("normal", None), "PASS", []),
        (_review_speech("Abuse", "pass"), "PASS", []),  # the vendor's decision is its action
    ],
)
def test_speech_review_reads_label_and_action(speech, verdict, labels):
    event = tupu.parse_event(_reviewed(speech))
    assert (event.verdict, event.labels) == (verdict, labels)
    assert event.kind == ("result" if verdict == "PASS" else "violation")


def test_a_violation_in_one_task_and_normal_in_another():
    data = _reviewed(_review_speech("Normal", "pass"), vulgar=[{"name": "a", "label": 2, "review": False}])
    assert (tupu.parse_event(data).verdict, tupu.parse_event(data).labels) == ("REJECT", ["vulgar:2"])


@pytest.mark.parametrize(
    "data",
    [
        {"code": 1e999, "requestId": "t"},  # json.loads reads 1e999 as inf
        {"code": "x", "requestId": "t", "status": "end"},
        {"code": True, "requestId": "t"},
        {"code": 0, "requestId": {"id": 1}},
        {"code": 0, "requestId": "t", VULGAR: {"speechs": "none"}},
        {"code": 0, "requestId": "t", VULGAR: {"speechs": [1, 2]}},
        {"code": 0, "requestId": "t", VULGAR: {"speechs": [{"label": {"v": 1}}]}},
        {"code": 0, "requestId": "t", VULGAR: {"speechs": [{"label": 1.5}]}},
        {"code": 0, "requestId": "t", VULGAR: {"speechs": [{"label": True}]}},
        {"code": 0, "requestId": "t", VULGAR: {"speechs": [{"label": 1, "review": "yes"}]}},
        {"code": 0, "requestId": "t", SPEECH_REVIEW: {"speechs": [{"label": "Porn", "action": 3}]}},
        {"error": ["x"]},
        ["not", "an", "object"],
    ],
)
def test_malformed_callbacks_are_bad_responses(data):
    with pytest.raises(BadResponse):
        tupu.parse_event(data)


# -- Tupu's error envelope: code and message kept ----------------------------------------------
def test_an_error_envelope_answer_keeps_code_and_message():
    with pytest.raises(VendorError) as caught:
        tupu.first_result({"error": {"code": 13, "message": "没有配置计算任务或者都已关闭"}})
    error = caught.value
    assert (error.code, error.message, error.reason) == ("13", "没有配置计算任务或者都已关闭", "request_rejected")
    assert error.summary() == "tupu: 13: 没有配置计算任务或者都已关闭 (request_rejected)"


def test_an_error_envelope_beside_code_zero_is_still_an_error():
    with pytest.raises(VendorError) as caught:
        tupu.first_result({"code": 0, "result": [{"requestId": "r"}], "error": {"code": 1, "message": "授权失败"}})
    assert (caught.value.code, caught.value.message) == ("1", "授权失败")


def test_an_error_envelope_callback_is_an_error_event_with_code_and_message():
    event = tupu.parse_event({"requestId": "t", "error": {"code": 14, "message": "文件下载错误"}})
    assert (event.kind, event.code, event.message) == ("error", 14, "文件下载错误")
    assert event.error().summary() == "tupu: 14: 文件下载错误 (stream_error)"


def test_an_error_callback_keeps_its_message():
    event = tupu.parse_event({"code": 500, "message": "stream unreachable", "requestId": "t"})
    assert event.error().summary() == "tupu: 500: stream unreachable (stream_error)"
    assert tupu.parse_event({"code": 0, "requestId": "t"}).error() is None
