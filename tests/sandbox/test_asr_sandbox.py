"""Tencent offline ASR in the sandbox, driven by the real ``AsrClient`` over a real socket."""

from __future__ import annotations

import time
from urllib.parse import parse_qsl, quote, urlencode

import pytest

from sandbox.moderation import audio_seconds, text_for
from sandbox.server import SandboxThread
from tests.sandbox.moderation_helpers import (
    Receiver,
    audio_with,
    callbacks_once,
    media,
    moderation_config,
)
from vendors import asr
from vendors.asr import AsrClient, AsrSigner
from vendors.errors import Disposition, VendorError
from vendors.tc3 import Credentials

# The seed's worked example (tests/vendors/test_asr.py has the same vector).
SEED_KEY, SEED_SECRET_ID = (
    "bLcPnl88WU30VY57ipRhSePfPdOfSruK",
    "AKIDUfLUEUigQiXqm7CVSspKJnuaiIKtxqAv",
)
SEED_SIGNATURE = "UyKZ+Q4xMbdu3gxOmPD7tgnAm1A="
SEED_QUERY = {
    "callback_url": "http://test.qq.com/rec_callback", "engine_model_type": "1",
    "expired": "1473752807", "nonce": "44925", "projectid": "0", "res_text_format": "0",
    "res_type": "1", "secretid": SEED_SECRET_ID, "source_type": "0", "sub_service_type": "0",
    "timestamp": "1473752207", "url": "http://test.qq.com/voice_url",
}  # fmt: skip


@pytest.fixture
def config(credentials, tmp_path):
    return moderation_config(credentials, media_dir=str(tmp_path), result_delay_s=0.1)


def make_client(sandbox, config, key: str | None = None, **kwargs) -> AsrClient:
    credentials = Credentials(config.asr_secret_id, key or config.asr_secret_key)
    return AsrClient(sandbox.url, config.asr_appid, credentials, timeout=5, **kwargs)


@pytest.fixture
def client(sandbox, config) -> AsrClient:
    return make_client(sandbox, config)


@pytest.fixture
def receiver():
    with Receiver() as running:
        yield running


def form(received) -> dict[str, str]:
    assert received.headers["Content-Type"] == "application/x-www-form-urlencoded"
    return dict(parse_qsl(received.body.decode(), keep_blank_values=True))


def test_body_audio_is_transcribed_and_called_back(client, receiver, config):
    audio = audio_with("PASS")
    submitted = client.submit(callback_url=receiver.url + "/cb/asr?token=t1", audio=audio)
    assert int(submitted.request_id) > 0 and submitted.raw["message"] == "success"
    (call,) = receiver.wait(1)
    assert call.query == {"token": "t1"}
    result = asr.parse_callback(form(call))
    assert (result.ok, result.request_id, result.text) == (
        True,
        submitted.request_id,
        text_for(audio),
    )
    assert result.audio_time == audio_seconds(audio)
    assert form(call)["appid"] == config.asr_appid and form(call)["audioUrl"] == ""


def test_url_audio_is_downloaded(client, receiver, sandbox, tmp_path):
    audio = audio_with("REJECT")
    media(tmp_path, "a b.wav", audio)
    url = f"{sandbox.url}/media/{quote('a b.wav')}"
    client.submit(callback_url=receiver.url, url=url)
    fields = form(receiver.wait(1)[0])
    assert (fields["code"], fields["text"], fields["audioUrl"]) == ("0", text_for(audio), url)


def test_download_failure_is_a_callback_with_an_error_code(client, receiver, sandbox):
    client.submit(callback_url=receiver.url, url=f"{sandbox.url}/media/none.wav")
    result = asr.parse_callback(form(receiver.wait(1)[0]))
    assert result.code == 1009 and result.error().reason == "invalid_url"


def test_callback_is_repeated_until_the_receiver_says_code_0(client, sandbox):
    with Receiver(script=[(200, b'{"code": 1}'), (500, b"")]) as receiver:
        client.submit(callback_url=receiver.url, audio=b"\x00\x01" * 100)
        calls = receiver.wait(3)
        assert calls[0].body == calls[2].body
    counts = callbacks_once(sandbox, "asr", "delivered")
    assert (counts["delivered"], counts["failed_attempts"]) == (1, 2)


def test_duplicate_callback_url_is_counted_and_gets_a_new_request_id(client, receiver, sandbox):
    first = client.submit(callback_url=receiver.url + "/c1", audio=b"ab")
    second = client.submit(callback_url=receiver.url + "/c1", audio=b"ab")
    assert first.request_id != second.request_id
    stats = sandbox.stats()
    assert stats["accepted"]["asr"] == {receiver.url + "/c1": 2}
    assert stats["duplicates"]["asr"] == {receiver.url + "/c1": 1}
    assert stats["requests"] == {"asr.submit": 2}


@pytest.mark.parametrize(
    ("change", "code", "reason"),
    [
        ({"key": "wrong"}, 1029, "signature_mismatch"),
        ({"secret_id": "AKIDother"}, 1026, "unknown_secretid"),
        ({"appid": "1"}, 1018, "appid_not_registered"),
        ({"clock": lambda: time.time() - 7200}, 1024, "signature_expired"),
    ],
)
def test_authentication_failures(sandbox, config, receiver, change, code, reason):
    key = change.get("key", config.asr_secret_key)
    credentials = Credentials(change.get("secret_id", config.asr_secret_id), key)
    client = AsrClient(sandbox.url, change.get("appid", config.asr_appid), credentials,
                       timeout=5, clock=change.get("clock", time.time))  # fmt: skip
    with pytest.raises(VendorError) as caught:
        client.submit(callback_url=receiver.url, audio=b"ab")
    assert (caught.value.code, caught.value.reason) == (str(code), reason)
    assert sandbox.stats()["accepted"] == {}


def post(http, request: asr.AsrRequest, url: str | None = None, body: bytes | None = None) -> int:
    data = request.body if body is None else body
    response = http.post(url or request.url, data=data, headers=request.headers, timeout=5)
    return response.json()["code"]


def test_an_altered_query_or_replayed_nonce_is_refused(client, http, receiver):
    request = client.build_submit(callback_url=receiver.url, audio=b"ab")
    altered = request.url.replace(quote(receiver.url, safe=""), quote(receiver.url + "/x", safe=""))
    assert altered != request.url and post(http, request, altered) == 1029
    assert post(http, request) == 0
    assert post(http, request) == 1028  # the same nonce again


def test_body_over_5_mb_is_1031(client, http, receiver):
    request = client.build_submit(callback_url=receiver.url, audio=b"ab")
    assert post(http, request, body=b"\x00" * (5 * 1024 * 1024 + 1)) == 1031


@pytest.mark.parametrize(
    ("name", "value", "code"),
    [("res_type", "0", 1007), ("source_type", "2", 1008), ("sub_service_type", "9", 1004),
     ("callback_url", "ftp://x", 1006), ("nonce", "12345678901", 1013)],
)  # fmt: skip
def test_parameter_codes(client, http, sandbox, config, receiver, name, value, code):
    params = client.params(callback_url=receiver.url, url=None, timestamp=int(time.time()),
                           nonce=4242) | {name: value}  # fmt: skip
    host_path = sandbox.url.split("://", 1)[1] + f"/asr/v1/{config.asr_appid}"
    headers = {"Authorization": AsrSigner(config.asr_secret_key).sign("POST", host_path, params)}
    url = f"{sandbox.url}/asr/v1/{config.asr_appid}?{urlencode(params)}"
    assert http.post(url, data=b"ab", headers=headers, timeout=5).json()["code"] == code


def test_the_seed_vector_verifies_and_is_then_expired(credentials, http):
    """The sandbox's check against the seed's own signature (not our signer's output)."""
    config = moderation_config(
        credentials, asr_appid="2000001", asr_secret_id=SEED_SECRET_ID, asr_secret_key=SEED_KEY
    )
    with SandboxThread(config) as sandbox:
        url = f"{sandbox.url}/asr/v1/2000001?{urlencode(SEED_QUERY)}"

        def code(signature: str) -> int:
            headers = {"Host": "aai.qcloud.com", "Authorization": signature}
            return http.post(url, headers=headers, timeout=5).json()["code"]

        assert code(SEED_SIGNATURE) == 1024  # genuine, but from 2016
        assert code(SEED_SIGNATURE.replace("U", "V", 1)) == 1029
        assert code("not base64") == 1021


def test_overload_fault_is_a_retryable_1020(client, http, sandbox, receiver):
    http.post(sandbox.url + "/_sandbox/config",
              json={"faults": [{"kind": "overload", "service": "asr", "first_n": 1}]})  # fmt: skip
    with pytest.raises(VendorError) as caught:
        client.submit(callback_url=receiver.url, audio=b"ab")
    assert (caught.value.code, caught.value.disposition) == ("1020", Disposition.RETRY)
    assert client.submit(callback_url=receiver.url, audio=b"ab").request_id
