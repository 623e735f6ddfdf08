"""Tencent offline ASR: the seed's signature vector, request building, codes, callbacks."""

from __future__ import annotations

import random
from urllib.parse import parse_qsl, urlsplit

import pytest

from vendors import asr
from vendors.errors import BadResponse, Disposition, InvalidInput, VendorError
from vendors.tc3 import Credentials

# The seed's worked example (appid 2000001 in the signed string).
SEED_KEY = "bLcPnl88WU30VY57ipRhSePfPdOfSruK"
SEED_SECRET_ID = "AKIDUfLUEUigQiXqm7CVSspKJnuaiIKtxqAv"
SEED_PARAMS = {
    "projectid": 0,
    "sub_service_type": 0,
    "engine_model_type": 1,
    "url": "http://test.qq.com/voice_url",
    "res_text_format": 0,
    "res_type": 1,
    "callback_url": "http://test.qq.com/rec_callback",
    "source_type": 0,
    "secretid": SEED_SECRET_ID,
    "timestamp": 1473752207,
    "expired": 1473752807,
    "nonce": 44925,
}
SEED_STRING = (
    "POSTaai.qcloud.com/asr/v1/2000001?callback_url=http://test.qq.com/rec_callback"
    "&engine_model_type=1&expired=1473752807&nonce=44925&projectid=0&res_text_format=0"
    "&res_type=1&secretid=AKIDUfLUEUigQiXqm7CVSspKJnuaiIKtxqAv&source_type=0"
    "&sub_service_type=0&timestamp=1473752207&url=http://test.qq.com/voice_url"
)
SEED_SIGNATURE = "UyKZ+Q4xMbdu3gxOmPD7tgnAm1A="


def seed_client(endpoint: str = "https://aai.qcloud.com", **kwargs) -> asr.AsrClient:
    credentials = Credentials(SEED_SECRET_ID, SEED_KEY)
    return asr.AsrClient(endpoint, "2000001", credentials, engine="1", expires_in=600, **kwargs)


def build_seed(client: asr.AsrClient) -> asr.AsrRequest:
    return client.build_submit(
        callback_url="http://test.qq.com/rec_callback",
        url="http://test.qq.com/voice_url",
        timestamp=1473752207,
        nonce=44925,
    )


# -- signer ---------------------------------------------------------------------
def test_string_to_sign_matches_seed():
    signer = asr.AsrSigner(SEED_KEY)
    assert (
        signer.string_to_sign("POST", "aai.qcloud.com/asr/v1/2000001", SEED_PARAMS) == SEED_STRING
    )


def test_signature_matches_seed_vector():
    assert (
        asr.AsrSigner(SEED_KEY).sign("post", "aai.qcloud.com/asr/v1/2000001", SEED_PARAMS)
        == SEED_SIGNATURE
    )


def test_signer_repr_hides_key():
    assert SEED_KEY not in repr(asr.AsrSigner(SEED_KEY))


@pytest.mark.parametrize(
    ("endpoint", "expected"),
    [
        ("https://aai.qcloud.com", "aai.qcloud.com/asr/v1/2000001"),
        ("http://aai.qcloud.com/", "aai.qcloud.com/asr/v1/2000001"),
        ("http://127.0.0.1:8700", "127.0.0.1:8700/asr/v1/2000001"),
        ("http://sandbox:8700/tencent", "sandbox:8700/tencent/asr/v1/2000001"),
    ],
)
def test_signed_host_path_follows_endpoint(endpoint, expected):
    assert asr.host_path(endpoint, "2000001") == expected


# -- request building -------------------------------------------------------------
def test_client_reproduces_seed_vector_end_to_end():
    request = build_seed(seed_client())
    assert request.headers == {
        "Authorization": SEED_SIGNATURE,
        "Content-Type": "application/octet-stream",
    }
    assert request.params == {k: str(v) for k, v in SEED_PARAMS.items()}
    assert request.body == b""


def test_url_on_the_wire_is_sorted_and_percent_encoded():
    request = build_seed(seed_client())
    parts = urlsplit(request.url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == "https://aai.qcloud.com/asr/v1/2000001"
    assert parts.query.startswith(
        "callback_url=http%3A%2F%2Ftest.qq.com%2Frec_callback&engine_model_type=1&"
    )
    pairs = parse_qsl(parts.query)
    assert [k for k, _ in pairs] == sorted(SEED_PARAMS)
    assert dict(pairs) == request.params


def test_sandbox_endpoint_signs_its_own_host():
    request = build_seed(seed_client("http://127.0.0.1:8700"))
    expected = asr.AsrSigner(SEED_KEY).sign("POST", "127.0.0.1:8700/asr/v1/2000001", request.params)
    assert request.headers["Authorization"] == expected != SEED_SIGNATURE
    assert request.url.startswith("http://127.0.0.1:8700/asr/v1/2000001?")


def test_body_source_sends_audio_without_url_param():
    client = asr.AsrClient(
        "https://aai.qcloud.com", "42", Credentials("id", "key"), clock=lambda: 1_700_000_000
    )
    request = client.build_submit(callback_url="https://cb.example/asr", audio=b"RIFF....")
    assert request.body == b"RIFF...."
    assert request.params["source_type"] == "1"
    assert "url" not in request.params
    assert request.params["engine_model_type"] == asr.DEFAULT_ENGINE == "16k_0"
    assert request.params["sub_service_type"] == "0" and request.params["res_type"] == "1"
    assert int(request.params["expired"]) - int(request.params["timestamp"]) == 3600


def test_default_nonce_has_at_most_ten_digits():
    client = seed_client(rand=random.Random(7))
    for _ in range(200):
        request = client.build_submit(callback_url="https://cb", url="https://a/b.wav")
        assert 1 <= int(request.params["nonce"]) <= 9_999_999_999


def test_audio_up_to_five_megabytes_is_accepted():
    client = seed_client()
    request = client.build_submit(callback_url="https://cb", audio=b"\0" * asr.MAX_BODY_BYTES)
    assert len(request.body) == 5 * 1024 * 1024


def test_audio_over_five_megabytes_is_invalid_input():
    with pytest.raises(InvalidInput) as caught:
        seed_client().build_submit(
            callback_url="https://cb", audio=b"\0" * (asr.MAX_BODY_BYTES + 1)
        )
    assert caught.value.reason == "audio_too_large"
    assert caught.value.disposition is Disposition.PERMANENT


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"audio": b""}, "empty_audio"),
        ({"url": "https://a/" + "x" * 2048}, "invalid_url"),
    ],
)
def test_invalid_sources(kwargs, reason):
    with pytest.raises(InvalidInput) as caught:
        seed_client().build_submit(callback_url="https://cb", **kwargs)
    assert caught.value.reason == reason


def test_overlong_callback_url_is_invalid_input():
    with pytest.raises(InvalidInput):
        seed_client().build_submit(callback_url="https://cb/" + "x" * 2048, url="https://a/b.wav")


@pytest.mark.parametrize("kwargs", [{}, {"audio": b"x", "url": "https://a/b.wav"}])
def test_exactly_one_source(kwargs):
    with pytest.raises(ValueError):
        seed_client().build_submit(callback_url="https://cb", **kwargs)


def test_nonce_over_ten_digits_is_refused():
    with pytest.raises(ValueError):
        seed_client().build_submit(callback_url="https://cb", url="https://a/b.wav", nonce=10**10)


@pytest.mark.parametrize("expires_in", [0, 90 * 24 * 3600])
def test_expiry_must_stay_under_ninety_days(expires_in):
    with pytest.raises(ValueError):
        asr.AsrClient(
            "https://aai.qcloud.com", "1", Credentials("id", "key"), expires_in=expires_in
        )


def test_client_repr_hides_secret():
    client = asr.AsrClient("https://aai.qcloud.com", "1", Credentials("id", "very-secret"))
    assert "very-secret" not in repr(client)


# -- responses and codes -----------------------------------------------------------
def test_submit_response_success():
    submitted = asr.parse_submit_response({"code": 0, "message": "success", "requestId": 500})
    assert submitted.request_id == "500"


PERMANENT_CODES = [
    1000,
    1001,
    1002,
    1003,
    1004,
    1005,
    1006,
    1007,
    1008,
    1009,
    1010,
    1011,
    1012,
    1013,
    1014,
    1016,
    1018,
    1019,
    1021,
    1023,
    1026,
    1029,
    1031,
]
RETRY_CODES = [1020, 1024, 1028, 1033]


@pytest.mark.parametrize(
    ("code", "disposition"),
    [(c, Disposition.PERMANENT) for c in PERMANENT_CODES]
    + [(c, Disposition.RETRY) for c in RETRY_CODES],
)
def test_every_seed_code_has_a_disposition(code, disposition):
    with pytest.raises(VendorError) as caught:
        asr.parse_submit_response({"code": code, "message": "msg"})
    assert caught.value.disposition is disposition
    assert caught.value.code == str(code)
    assert caught.value.reason != "unknown_code"


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (1031, "audio_too_large"),
        (1029, "signature_mismatch"),
        (1020, "server_error"),
        (1028, "replay_rejected"),
    ],
)
def test_reasons_are_readable(code, reason):
    assert asr.error_for(code).reason == reason


def test_unknown_code_is_permanent():
    error = asr.error_for(1015)
    assert (error.disposition, error.reason) == (Disposition.PERMANENT, "unknown_code")


@pytest.mark.parametrize(
    "body", [{"message": "no code"}, ["not", "a", "dict"], {"code": 0, "message": "ok"}]
)
def test_malformed_submit_responses(body):
    with pytest.raises(BadResponse):
        asr.parse_submit_response(body)


# -- callbacks -----------------------------------------------------------------------
def test_json_callback():
    result = asr.parse_callback(
        {
            "code": 0,
            "message": "成功",
            "requestId": 500,
            "appid": 2000001,
            "projectid": 0,
            "audioUrl": "http://test.qq.com/voice_url",
            "text": "[0:0.000,0:2.520]  今天天气不错。",
            "audioTime": 2.52,
        }
    )
    assert (result.request_id, result.code, result.audio_time) == ("500", 0, 2.52)
    assert result.text.endswith("今天天气不错。")
    assert result.ok and result.error() is None
    assert result.verdict is None and result.labels == []
    assert result.raw["appid"] == 2000001


def test_form_callback_with_string_values():
    result = asr.parse_callback(
        {"code": "0", "message": "success", "requestId": "501", "text": "hi", "audioTime": "1.5"}
    )
    assert (result.code, result.audio_time, result.text) == (0, 1.5, "hi")


def test_failed_callback_maps_its_code():
    result = asr.parse_callback(
        {"code": "1020", "message": "internal", "requestId": "502", "text": ""}
    )
    error = result.error()
    assert not result.ok
    assert (error.disposition, error.reason, error.request_id) == (
        Disposition.RETRY,
        "server_error",
        "502",
    )


def test_callback_without_code_is_bad_response():
    with pytest.raises(BadResponse):
        asr.parse_callback({"requestId": "1"})


def test_callback_ack_shape():
    assert asr.CALLBACK_ACK["code"] == 0
