"""Shumei audio v4 in the sandbox, driven by the real ``ShumeiClient`` over a real socket."""

from __future__ import annotations

import base64
import io
import json
import wave

import pytest

from sandbox.moderation import text_for, verdict_for
from tests.sandbox.moderation_helpers import (
    Receiver,
    audio_with,
    callbacks_once,
    media,
    moderation_config,
    wait_until,
)
from vendors import shumei
from vendors.errors import Disposition, VendorError
from vendors.shumei import ShumeiClient


@pytest.fixture
def config(credentials, tmp_path):
    return moderation_config(credentials, media_dir=str(tmp_path), result_delay_s=0.2)


@pytest.fixture
def client(sandbox, config) -> ShumeiClient:
    return ShumeiClient(sandbox.url, config.shumei_access_key, timeout=5)


def result_of(client: ShumeiClient, bt_id: str) -> shumei.ShumeiResult:
    def ready():
        try:
            return client.query(bt_id)
        except VendorError as error:
            if error.disposition is Disposition.PENDING:
                return None
            raise

    return wait_until(ready)


def post(http, sandbox, path: str, body: dict) -> dict:
    response = http.post(sandbox.url + path, json=body, timeout=5)
    assert response.status_code == 200
    return response.json()


@pytest.mark.parametrize("verdict", ["PASS", "REVIEW", "REJECT"])
def test_raw_submit_then_query_gives_the_verdict_and_text(client, verdict):
    audio = audio_with(verdict)
    submitted = client.submit("bt-raw", raw=audio, fmt="wav")
    assert submitted.raw["code"] == 1100 and submitted.raw["btId"] == "bt-raw"
    result = result_of(client, "bt-raw")
    assert (result.verdict, result.labels) == verdict_for(audio, "shumei")
    assert result.text == text_for(audio) and result.request_id == submitted.request_id
    assert result.audio_time >= 1 and "accessKey" not in json.dumps(result.raw)
    assert result.raw["requestParams"] == {"formatInfo": "wav", "returnAllText": 0}


def test_query_is_1101_until_the_delay_has_passed(client, sandbox, http):
    http.post(sandbox.url + "/_sandbox/config", json={"result_delay_s": 1.0})
    client.submit("bt-slow", raw=audio_with("PASS"), fmt="wav")
    with pytest.raises(VendorError) as pending:
        client.query("bt-slow")
    assert pending.value.disposition is Disposition.PENDING and pending.value.code == "1101"
    assert result_of(client, "bt-slow").verdict == "PASS"


def test_url_submit_downloads_the_media(client, sandbox, tmp_path):
    audio = audio_with("REJECT", labels=2)
    media(tmp_path, "s.wav", audio)
    client.submit("bt-url", url=f"{sandbox.url}/media/s.wav", return_all_text=True)
    result = result_of(client, "bt-url")
    assert (result.verdict, result.labels) == verdict_for(audio, "shumei")
    assert [d["riskLevel"] for d in result.raw["audioDetail"]] == ["REJECT", "REJECT"]


def test_pcm_with_tags_requested(sandbox, config):
    client = ShumeiClient(
        sandbox.url, config.shumei_access_key, types="PORN_GENDER_SING", timeout=5
    )
    audio = audio_with("PASS", kind="pcm")
    client.submit("bt-pcm", raw=audio, fmt="pcm", rate=16000, track=1, return_all_text=True)
    result = result_of(client, "bt-pcm")
    assert result.labels == ["gender:女性"] and result.raw["audioTags"]["song"] == 0
    assert [d["riskLabel1"] for d in result.raw["audioDetail"]] == ["normal"]


def test_download_failure_is_1904(client, sandbox):
    client.submit("bt-404", url=f"{sandbox.url}/media/none.wav")
    with pytest.raises(VendorError) as caught:
        result_of(client, "bt-404")
    assert (caught.value.code, caught.value.reason) == ("1904", "download_failed")
    assert caught.value.disposition is Disposition.PERMANENT


def test_wrong_access_key_is_9101(sandbox):
    with pytest.raises(VendorError) as caught:
        ShumeiClient(sandbox.url, "wrong", timeout=5).submit("x", raw=b"ab", fmt="wav")
    assert (caught.value.code, caught.value.reason) == ("9101", "no_permission")


@pytest.mark.parametrize(
    "change",
    [
        {"btId": None},
        {"type": ""},
        {"btId": "b" * 129},
        {"contentType": "FILE"},
        {"data": {}},  # RAW without formatInfo
        {"data": {"formatInfo": "pcm"}},  # pcm without rate and track
        {"content": "not base64!"},
    ],
)
def test_invalid_submissions_are_1902(client, http, sandbox, change):
    body = client.submit_body("bt-bad", raw=b"RIFF", fmt="wav") | change
    body = {k: v for k, v in body.items() if v is not None}
    assert post(http, sandbox, "/audio/v4", body)["code"] == 1902
    assert sandbox.stats()["accepted"] == {}


def test_raw_limit_is_a_setting(sandbox, config, http):
    http.post(sandbox.url + "/_sandbox/reset")
    client = ShumeiClient(sandbox.url, config.shumei_access_key, raw_max_bytes=10**9, timeout=5)
    body = client.submit_body(
        "big", raw=b"x" * (config.shumei_raw_max_bytes // 4 * 3 + 3), fmt="mp3"
    )
    assert len(body["content"]) > config.shumei_raw_max_bytes
    assert post(http, sandbox, "/audio/v4", body)["code"] == 1902


def test_unknown_bt_id_query(client):
    with pytest.raises(VendorError) as caught:
        client.query("never-sent")
    assert caught.value.code == "1902"


def test_duplicate_bt_id_gets_the_same_request_id(client, sandbox):
    first = client.submit("bt-dup", raw=audio_with("PASS"), fmt="wav")
    again = client.submit("bt-dup", raw=audio_with("REJECT"), fmt="wav")
    assert again.request_id == first.request_id
    stats = sandbox.stats()
    assert stats["accepted"]["shumei"] == {"bt-dup": 1}
    assert stats["duplicates"]["shumei"] == {"bt-dup": 1}
    assert stats["requests"] == {"shumei.submit": 2}
    assert result_of(client, "bt-dup").verdict == "PASS"  # the first submission's audio


def test_callback_gets_the_query_body_and_is_retried_until_200(client, sandbox):
    audio = audio_with("REJECT")
    with Receiver(script=[(500, b""), (502, b"")]) as receiver:
        client.submit("bt-cb", raw=audio, fmt="wav", callback=receiver.url + "/cb/shumei")
        calls = receiver.wait(3)
    pushed = shumei.parse_callback(json.loads(calls[-1].body))
    assert pushed.raw == client.query("bt-cb").raw
    assert (pushed.verdict, pushed.labels) == verdict_for(audio, "shumei")
    assert calls[-1].headers["Content-Type"].startswith("application/json")
    counts = callbacks_once(sandbox, "shumei", "delivered")
    assert (counts["failed_attempts"], counts["gave_up"]) == (2, 0)


def test_callback_gives_up_after_12_attempts(client, sandbox, http):
    http.post(sandbox.url + "/_sandbox/config", json={"callback_retry_s": 0.001})
    with Receiver(respond=lambda r: (503, b"")) as receiver:
        client.submit("bt-x", raw=audio_with("PASS"), fmt="wav", callback=receiver.url)
        receiver.wait(12)
        counts = callbacks_once(sandbox, "shumei", "gave_up")
        assert len(receiver.received) == 12 and counts["failed_attempts"] == 12


def test_download_failure_callback(client, sandbox):
    with Receiver() as receiver:
        client.submit("bt-cb404", url=f"{sandbox.url}/media/gone.mp3", callback=receiver.url)
        (call,) = receiver.wait(1)
    with pytest.raises(VendorError) as caught:
        shumei.parse_callback(json.loads(call.body))
    assert caught.value.reason == "download_failed"


@pytest.mark.parametrize(("kind", "code", "disposition"),
                         [("throttle", "1901", Disposition.THROTTLED),
                          ("overload", "1903", Disposition.RETRY)])  # fmt: skip
def test_vendor_shaped_faults(client, sandbox, http, kind, code, disposition):
    faults = [{"kind": kind, "service": "shumei", "action": "submit", "first_n": 1}]
    http.post(sandbox.url + "/_sandbox/config", json={"faults": faults})
    with pytest.raises(VendorError) as caught:
        client.submit("bt-f", raw=b"ab", fmt="wav")
    assert (caught.value.code, caught.value.disposition) == (code, disposition)
    assert client.submit("bt-f", raw=b"ab", fmt="wav").raw["code"] == 1100


def test_raw_content_is_decoded_before_judging(client):
    audio = audio_with("REVIEW")
    body = client.submit_body("bt-b64", raw=audio, fmt="wav")
    assert base64.b64decode(body["content"]) == audio
    client.submit("bt-b64", raw=audio, fmt="wav")
    assert result_of(client, "bt-b64").verdict == "REVIEW"


# -- files the vendor could not moderate: code 1100 with auxInfo.errorCode -----------------------
def silent_wav(seconds: float = 0.5) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(bytes(int(32000 * seconds)))
    return out.getvalue()


@pytest.mark.parametrize("audio", [silent_wav(), silent_wav(0)], ids=["silent", "no-frames"])
def test_audio_without_valid_data_is_2007_with_code_1100(client, audio):
    client.submit("bt-silent", raw=audio, fmt="wav")
    result = result_of(client, "bt-silent")
    assert (result.raw["code"], result.risk_level, result.raw["auxInfo"]) == (1100, "PASS", {"errorCode": 2007})
    assert result.error().reason == "shumei_2007"


def test_a_silent_file_downloaded_is_2007(client, sandbox, tmp_path):
    media(tmp_path, "silent.wav", silent_wav())
    client.submit("bt-url-silent", url=f"{sandbox.url}/media/silent.wav")
    assert result_of(client, "bt-url-silent").error().reason == "shumei_2007"


def test_speech_is_not_2007(client):
    client.submit("bt-speech", raw=audio_with("PASS"), fmt="wav")
    result = result_of(client, "bt-speech")
    assert "auxInfo" not in result.raw and result.error() is None


def test_a_download_failure_as_auxinfo_2003_by_query_and_by_callback(client, sandbox, http):
    http.post(sandbox.url + "/_sandbox/config", json={"shumei_download_failure": 2003})
    with Receiver() as receiver:
        client.submit("bt-2003", url=f"{sandbox.url}/media/gone.wav", callback=receiver.url)
        (call,) = receiver.wait(1)
    queried, pushed = result_of(client, "bt-2003"), shumei.parse_callback(json.loads(call.body))
    for result in (queried, pushed):
        assert (result.raw["code"], result.raw["btId"], result.risk_level) == (1100, "bt-2003", "PASS")
        error = result.error()
        assert (error.reason, error.code) == ("shumei_2003", "2003") and "download failed" in error.message


def test_the_download_failure_mode_is_validated(sandbox, http):
    answer = http.post(sandbox.url + "/_sandbox/config", json={"shumei_download_failure": 1234})
    assert answer.status_code == 400 and "shumei_download_failure" in answer.json()["error"]


# -- clusters and languages -------------------------------------------------------------------
def test_a_cluster_under_a_path_knows_only_its_own_files(sandbox, config):
    english = ShumeiClient(sandbox.url + "/en", config.shumei_access_key, timeout=5)
    chinese = ShumeiClient(sandbox.url, config.shumei_access_key, timeout=5)
    english.submit("bt-en", raw=audio_with("REJECT"), fmt="wav", lang="en")
    chinese.submit("bt-zh", raw=audio_with("PASS"), fmt="wav", lang="zh")
    assert result_of(english, "bt-en").verdict == "REJECT"
    assert result_of(chinese, "bt-zh").verdict == "PASS"
    for client, bt_id in ((chinese, "bt-en"), (english, "bt-zh")):  # asked at the other cluster
        with pytest.raises(VendorError) as caught:
            client.query(bt_id)
        assert (caught.value.code, caught.value.disposition) == ("1902", Disposition.PERMANENT)
    tasks = {t["key"]: t for t in sandbox.stats()["services"]["shumei"]["tasks"].values()}
    assert {k: (t["cluster"], t["lang"]) for k, t in tasks.items()} == {
        "bt-en": ("en", "en"), "bt-zh": ("default", "zh")}
    # every query counted where it was asked, the one at the wrong cluster too
    assert (set(tasks["bt-en"]["queries"]), tasks["bt-en"]["queries"]["default"]) == ({"en", "default"}, 1)
    assert (set(tasks["bt-zh"]["queries"]), tasks["bt-zh"]["queries"]["en"]) == ({"en", "default"}, 1)
    queries = sum(n for t in tasks.values() for n in t["queries"].values())
    assert sandbox.stats()["requests"] == {"shumei.submit": 2, "shumei.query": queries}
