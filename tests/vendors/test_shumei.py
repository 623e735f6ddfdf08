"""Shumei audio v4: request bodies, limits, codes, results and redaction."""

from __future__ import annotations

import base64
import copy

import pytest

from vendors import shumei
from vendors.errors import BadResponse, Disposition, InvalidInput, VendorError

ACCESS_KEY = "sm-access-key-do-not-leak"


def client(**kwargs) -> shumei.ShumeiClient:
    return shumei.ShumeiClient("http://api-audio-sh.fengkongcloud.com/", ACCESS_KEY, **kwargs)


# The seed's callback example, shortened to three segments.
SEED_CALLBACK = {
    "requestId": "6a9cb980346dfea41111656a514e9109",
    "btId": "1604311839040",
    "code": 1100,
    "message": "正常",
    "riskLevel": "PASS",
    "audioDetail": [
        {
            "audioStarttime": 0,
            "audioEndtime": 10,
            "audioUrl": "https://voice/a0000.mp3",
            "riskLevel": "PASS",
            "riskLabel1": "normal",
            "riskLabel2": "",
            "riskLabel3": "",
            "riskDescription": "正常",
            "riskDetail": {"audioText": ""},
        },
        {
            "audioStarttime": 10,
            "audioEndtime": 20,
            "audioUrl": "https://voice/a0001.mp3",
            "riskLevel": "PASS",
            "riskLabel1": "normal",
            "riskLabel2": "",
            "riskLabel3": "",
            "riskDescription": "正常",
            "riskDetail": {"audioText": ""},
        },
        {
            "audioStarttime": 60,
            "audioEndtime": 60,
            "audioUrl": "https://voice/a0006.mp3",
            "riskLevel": "PASS",
            "riskLabel1": "normal",
            "riskLabel2": "",
            "riskLabel3": "",
            "riskDescription": "正常",
        },
    ],
    "audioTags": {
        "gender": {"label": "女性", "probability": 95},
        "language": [
            {"confidence": 0, "label": 2},
            {"confidence": 99, "label": 0},
            {"confidence": 0, "label": 1},
        ],
        "song": 0,
        "timbre": [{"label": "少女", "probability": 56}, {"label": "大妈", "probability": 67}],
    },
}

REJECT_RESULT = {
    "requestId": "r2",
    "btId": "job-2",
    "code": 1100,
    "message": "成功",
    "riskLevel": "REJECT",
    "audioTime": 20,
    "audioDetail": [
        {
            "audioStarttime": 0,
            "audioEndtime": 10,
            "riskLevel": "REJECT",
            "riskLabel1": "porn",
            "riskLabel2": "sexual_content",
            "riskLabel3": "",
            "riskDescription": "色情:性行为",
            "riskDetail": {"audioText": "第一段"},
        },
        {
            "audioStarttime": 10,
            "audioEndtime": 20,
            "riskLevel": "REVIEW",
            "riskLabel1": "ad",
            "riskLabel2": "",
            "riskLabel3": "",
            "riskDescription": "广告",
            "riskDetail": {"audioText": "第二段"},
        },
        {
            "audioStarttime": 20,
            "audioEndtime": 30,
            "riskLevel": "REJECT",
            "riskLabel1": "porn",
            "riskLabel2": "",
            "riskLabel3": "",
            "riskDescription": "色情",
            "riskDetail": {"audioText": "第三段"},
        },
    ],
    "audioTags": {"song": 1},
}


# -- request bodies ----------------------------------------------------------------
def test_url_submit_body_has_the_seed_fields():
    body = client().submit_body(
        "job-1", url="https://media/a.mp3", callback="https://cb/shumei", token_id="u1"
    )
    assert body == {
        "accessKey": ACCESS_KEY,
        "appId": "default",
        "eventId": "default",
        "type": "POLITICS_PORN_AD_MOAN",
        "contentType": "URL",
        "content": "https://media/a.mp3",
        "btId": "job-1",
        "callback": "https://cb/shumei",
        "data": {"tokenId": "u1", "returnAllText": 0},
    }


def test_configured_app_event_type_and_lang():
    c = client(app_id="app", event_id="voiceroom", types="PORN_AD")
    body = c.submit_body("b", url="https://m/a.wav", lang="en", return_all_text=True)
    assert (body["appId"], body["eventId"], body["type"]) == ("app", "voiceroom", "PORN_AD")
    assert body["data"] == {"lang": "en", "returnAllText": 1}
    assert "callback" not in body


def test_raw_wav_is_base64_with_format():
    body = client().submit_body("b", raw=b"RIFFdata", fmt="wav")
    assert body["contentType"] == "RAW"
    assert base64.b64decode(body["content"]) == b"RIFFdata"
    assert body["data"]["formatInfo"] == "wav"


def test_raw_pcm_carries_rate_and_track():
    body = client().submit_body("b", raw=b"\0\0", fmt="pcm", rate=16000, track=1)
    assert body["data"] == {"formatInfo": "pcm", "rate": 16000, "track": 1, "returnAllText": 0}


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"fmt": None}, "unsupported_format"),
        ({"fmt": "ogg"}, "unsupported_format"),
        ({"fmt": "pcm", "track": 1}, "invalid_rate"),
        ({"fmt": "pcm", "rate": 7999, "track": 1}, "invalid_rate"),
        ({"fmt": "pcm", "rate": 32001, "track": 1}, "invalid_rate"),
        ({"fmt": "pcm", "rate": 16000}, "invalid_track"),
        ({"fmt": "pcm", "rate": 16000, "track": 3}, "invalid_track"),
    ],
)
def test_raw_format_checks(kwargs, reason):
    with pytest.raises(InvalidInput) as caught:
        client().submit_body("b", raw=b"\0\0", **kwargs)
    assert caught.value.reason == reason


def test_raw_limit_defaults_to_the_seed_six_megabytes():
    assert client().raw_max_bytes == 6 * 1024 * 1024 == shumei.DEFAULT_RAW_MAX_BYTES


def test_raw_limit_applies_to_the_base64_content():
    small = client(raw_max_bytes=8)
    assert small.submit_body("b", raw=b"123456", fmt="mp3")["content"] == "MTIzNDU2"  # 8 chars
    with pytest.raises(InvalidInput) as caught:
        small.submit_body("b", raw=b"1234567", fmt="mp3")  # 12 chars
    assert caught.value.reason == "audio_too_large"
    assert ACCESS_KEY not in str(caught.value)


def test_bt_id_up_to_128_characters():
    assert client().submit_body("x" * 128, url="https://m/a.mp3")["btId"] == "x" * 128


@pytest.mark.parametrize("bt_id", ["", "x" * 129])
def test_bt_id_is_validated(bt_id):
    with pytest.raises(InvalidInput) as caught:
        client().submit_body(bt_id, url="https://m/a.mp3")
    assert caught.value.reason == "invalid_bt_id"


@pytest.mark.parametrize("kwargs", [{}, {"url": "https://m/a.mp3", "raw": b"x", "fmt": "mp3"}])
def test_exactly_one_content(kwargs):
    with pytest.raises(ValueError):
        client().submit_body("b", **kwargs)


def test_query_body():
    assert client().query_body("job-1") == {"accessKey": ACCESS_KEY, "btId": "job-1"}


def test_client_defaults_and_repr():
    c = client()
    assert c.timeout == 1.0 and c.endpoint == "http://api-audio-sh.fengkongcloud.com"
    assert ACCESS_KEY not in repr(c)
    assert client(timeout=3.0).timeout == 3.0


# -- codes ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("code", "stage", "disposition", "reason"),
    [
        (1101, "result", Disposition.PENDING, "processing"),
        (1901, "submit", Disposition.THROTTLED, "qps_limit"),
        (1901, "result", Disposition.THROTTLED, "qps_limit"),
        (1902, "submit", Disposition.PERMANENT, "invalid_params"),
        (1903, "submit", Disposition.RETRY, "service_failure"),
        (1903, "result", Disposition.RETRY, "service_failure"),
        (1904, "submit", Disposition.RETRY, "download_failed"),
        (1904, "result", Disposition.PERMANENT, "download_failed"),
        (1905, "result", Disposition.PERMANENT, "decode_failed"),
        (9100, "submit", Disposition.PERMANENT, "balance_exhausted"),
        (9101, "submit", Disposition.PERMANENT, "no_permission"),
        (4242, "submit", Disposition.PERMANENT, "unknown_code"),
    ],
)
def test_code_dispositions(code, stage, disposition, reason):
    assert shumei.disposition_for(code, stage) == (disposition, reason)


def test_pending_query_raises_pending():
    with pytest.raises(VendorError) as caught:
        shumei.parse_result({"code": 1101, "message": "正在处理中", "requestId": "r", "btId": "b"})
    assert caught.value.disposition is Disposition.PENDING
    assert (caught.value.code, caught.value.request_id) == ("1101", "r")


def test_failed_callback_raises_permanent():
    with pytest.raises(VendorError) as caught:
        shumei.parse_callback({"code": 1905, "message": "解码失败", "requestId": "r", "btId": "b"})
    assert (caught.value.disposition, caught.value.reason) == (
        Disposition.PERMANENT,
        "decode_failed",
    )


@pytest.mark.parametrize("body", [{"message": "no code"}, {"code": "abc"}, "text"])
def test_answers_without_code_are_bad_responses(body):
    with pytest.raises(BadResponse):
        shumei.parse_result(body)


# -- results ------------------------------------------------------------------------------
def test_seed_callback_parses_to_pass():
    result = shumei.parse_callback(copy.deepcopy(SEED_CALLBACK))
    assert (result.bt_id, result.request_id) == (
        "1604311839040",
        "6a9cb980346dfea41111656a514e9109",
    )
    assert (result.risk_level, result.verdict) == ("PASS", "PASS")
    assert result.labels == ["gender:女性", "language:zh"]
    assert result.text is None
    assert result.raw == SEED_CALLBACK


def test_reject_result_labels_and_text():
    result = shumei.parse_result(REJECT_RESULT)
    assert result.verdict == "REJECT"
    assert result.labels == ["porn", "ad", "singing"]
    assert result.text == "第一段第二段第三段"
    assert result.audio_time == 20


def test_whole_audio_text_is_preferred():
    result = shumei.parse_result({**REJECT_RESULT, "audioText": "全文"})
    assert result.text == "全文"


def test_review_and_unknown_levels():
    assert shumei.parse_result({**REJECT_RESULT, "riskLevel": "REVIEW"}).verdict == "REVIEW"
    assert shumei.parse_result({**REJECT_RESULT, "riskLevel": "MAYBE"}).verdict is None


def test_result_repr_leaves_out_raw():
    assert "audioDetail" not in repr(shumei.parse_result(REJECT_RESULT))


# -- redaction -------------------------------------------------------------------------------
def test_redact_removes_access_key_without_mutating():
    body = client().submit_body("b", url="https://m/a.mp3")
    clean = shumei.redact(body)
    assert "accessKey" not in clean and ACCESS_KEY not in repr(clean)
    assert body["accessKey"] == ACCESS_KEY
    assert clean["btId"] == "b" and clean["content"] == "https://m/a.mp3"


def test_redact_nested_and_raw_content():
    body = client().submit_body("b", raw=b"\0" * 300, fmt="wav")
    body["data"]["accessKey"] = ACCESS_KEY
    clean = shumei.redact(body)
    assert ACCESS_KEY not in repr(clean)
    assert clean["content"] == "<base64 elided: 400 chars>"


def test_redact_query_body():
    assert shumei.redact(client().query_body("b")) == {"btId": "b"}


# -- auxInfo: code 1100 for a file that was never moderated (newer v4 docs) -----------------
@pytest.mark.parametrize(
    ("aux_code", "words"), [(2003, "audio download failed"), (2007, "no valid data")]
)
def test_aux_error_with_code_1100_is_a_permanent_failure_not_a_pass(aux_code, words):
    body = copy.deepcopy(SEED_CALLBACK) | {"auxInfo": {"errorCode": aux_code}}
    result = shumei.parse_callback(body)  # code 1100: it parses, riskLevel PASS and all
    assert result.risk_level == "PASS" and result.aux_code == aux_code
    error = result.error()
    assert (error.reason, error.code, error.disposition) == (
        f"shumei_{aux_code}", str(aux_code), Disposition.PERMANENT)
    assert error.request_id == SEED_CALLBACK["requestId"]
    assert words in error.summary() and f"auxInfo.errorCode {aux_code}" in error.summary()
    assert error.summary().startswith(f"shumei: {aux_code}: ")


def test_aux_error_by_query_answer_as_text():
    body = {"code": 1100, "message": "成功", "requestId": "r", "btId": "b", "riskLevel": "PASS",
            "audioDetail": [], "auxInfo": {"errorCode": "2007"}}
    assert shumei.parse_result(body).error().reason == "shumei_2007"


def test_an_unknown_aux_error_code_does_not_pass_either():
    body = copy.deepcopy(SEED_CALLBACK) | {"auxInfo": {"errorCode": 2999, "detail": "x"}}
    error = shumei.parse_result(body).error()
    assert error.reason == "shumei_2999" and "does not know" in error.message


@pytest.mark.parametrize("aux", [None, {}, {"errorCode": 0}, {"errorCode": "0"}, {"other": 1}])
def test_no_aux_error(aux):
    body = copy.deepcopy(SEED_CALLBACK) | ({"auxInfo": aux} if aux is not None else {})
    result = shumei.parse_result(body)
    assert (result.aux_code, result.error(), result.verdict) == (None, None, "PASS")


@pytest.mark.parametrize(
    "aux", [[2003], "2003", {"errorCode": "two"}, {"errorCode": True}, {"errorCode": 1e999},
            {"errorCode": {"code": 2003}}],
)
def test_a_malformed_aux_info_is_a_bad_response(aux):
    with pytest.raises(BadResponse):
        shumei.parse_result(copy.deepcopy(SEED_CALLBACK) | {"auxInfo": aux})

