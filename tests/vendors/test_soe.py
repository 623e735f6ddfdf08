"""SOE client and the Tencent Cloud API 3.0 base: request building, response parsing,
error-code dispositions.  No network: a fake ``post`` stands in for vendors.http.post,
and the official SDK's request/response models serve as the field-name oracle."""

from __future__ import annotations

import base64
import json
import pickle
import warnings

import pytest
from tencentcloud.common.sign import Sign
from tencentcloud.soe.v20180724 import models

from vendors import http
from vendors.errors import BadResponse, Disposition, InvalidInput, VendorError
from vendors.soe import KeywordResult, SoeClient, SoeParams, SoeResult, voice_file_type_for
from vendors.tc3 import Credentials, TC3Signer, parse_authorization, sha256_hex, utc_date
from vendors.tencent import TencentApiClient

SECRET_KEY = "test-key-not-a-secret"
CREDS = Credentials("AKIDEXAMPLE-not-a-real-id", SECRET_KEY)
NOW = 1_700_000_000.75
WAV = b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(range(20))


class FakePost:
    """Records each POST and answers with queued ``Response`` objects (or raw bodies)."""

    def __init__(self, *answers: dict | bytes, status: int = 200) -> None:
        self.answers = list(answers) or [{"RequestId": "req-1"}]
        self.status = status
        self.calls: list[dict] = []

    def __call__(self, vendor, url, *, data=None, headers=None, params=None, timeout=None):
        self.calls.append({"vendor": vendor, "url": url, "data": data, "headers": headers,
                           "timeout": timeout})
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        body = answer if isinstance(answer, bytes) else json.dumps({"Response": answer}).encode()
        return http.Response(self.status, body, {"Content-Type": "application/json"})

    @property
    def params(self) -> dict:
        return json.loads(self.calls[-1]["data"])


def soe(post: FakePost | None = None, **kwargs) -> SoeClient:
    kwargs.setdefault("clock", lambda: NOW)
    return SoeClient("https://soe.tencentcloudapi.com", CREDS, post=post or FakePost(), **kwargs)


def sdk_round_trip(model_cls, params: dict) -> dict:
    """Deserialize into the SDK's model (which warns on unknown fields) and back."""
    model = model_cls()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model._deserialize(params)
    return model._serialize()


# -- TencentApiClient: endpoint, signing, envelope ---------------------------------------


@pytest.mark.parametrize("endpoint,host,uri", [
    ("https://soe.tencentcloudapi.com", "soe.tencentcloudapi.com", "/"),
    ("https://soe.tencentcloudapi.com/", "soe.tencentcloudapi.com", "/"),
    ("http://127.0.0.1:8700", "127.0.0.1:8700", "/"),
    ("http://127.0.0.1:8700/tencent", "127.0.0.1:8700", "/tencent"),
])
def test_host_and_uri_come_from_the_endpoint(endpoint, host, uri):
    client = TencentApiClient(endpoint, CREDS, service="soe", version="2018-07-24")
    assert (client.host, client.uri, client.vendor) == (host, uri, "soe")


@pytest.mark.parametrize("endpoint", ["soe.tencentcloudapi.com", "ftp://x", "https://"])
def test_endpoint_must_be_an_http_url(endpoint):
    with pytest.raises(ValueError):
        TencentApiClient(endpoint, CREDS, service="soe", version="2018-07-24")


def test_call_posts_signed_compact_utf8_json():
    post = FakePost({"SessionId": "s", "RequestId": "req-9"})
    client = TencentApiClient("http://127.0.0.1:8700", CREDS, service="gme", version="2018-07-11",
                              region="ap-guangzhou", timeout=3.0, vendor="gme", clock=lambda: NOW,
                              post=post)
    assert client.call("ScanVoice", {"Text": "红色", "N": 1}) == {"SessionId": "s", "RequestId": "req-9"}
    sent = post.calls[0]
    assert (sent["vendor"], sent["url"], sent["timeout"]) == ("gme", "http://127.0.0.1:8700", 3.0)
    assert sent["data"] == '{"Text":"红色","N":1}'.encode()
    headers = sent["headers"]
    assert headers["X-TC-Action"] == "ScanVoice"
    assert headers["X-TC-Version"] == "2018-07-11"
    assert headers["X-TC-Region"] == "ap-guangzhou"
    assert headers["X-TC-Timestamp"] == str(int(NOW))
    assert headers["Host"] == "127.0.0.1:8700"
    # verify with the SDK's own HMAC chain, from what went on the wire
    auth = parse_authorization(headers["Authorization"])
    assert (auth["service"], auth["date"]) == ("gme", utc_date(int(NOW)))
    signer = TC3Signer(CREDS, "gme")
    canonical = signer.canonical_request("POST", "/", "", headers["Content-Type"], "127.0.0.1:8700",
                                         sha256_hex(sent["data"]))
    string_to_sign = signer.string_to_sign(int(NOW), canonical)
    assert auth["signature"] == Sign.sign_tc3(SECRET_KEY, auth["date"], "gme", string_to_sign)


def test_call_without_region_sends_no_region_header():
    post = FakePost()
    soe(post).call("InitOralProcess", {})
    assert "X-TC-Region" not in post.calls[0]["headers"]


def test_call_uses_vendors_http_post_by_default(monkeypatch):
    post = FakePost()
    monkeypatch.setattr(http, "post", post)
    SoeClient("https://soe.tencentcloudapi.com", CREDS, clock=lambda: NOW).call("X", {})
    assert post.calls[0]["url"] == "https://soe.tencentcloudapi.com"


def test_api_error_becomes_vendor_error():
    post = FakePost({"Error": {"Code": "RequestLimitExceeded.UinLimitExceeded",
                               "Message": "too fast"}, "RequestId": "req-7"})
    with pytest.raises(VendorError) as info:
        soe(post).call("TransmitOralProcessWithInit", {})
    err = info.value
    assert (err.vendor, err.code, err.request_id, err.message) == (
        "soe", "RequestLimitExceeded.UinLimitExceeded", "req-7", "too fast")
    assert (err.disposition, err.reason, err.status) == (Disposition.THROTTLED, "throttled", 200)
    again = pickle.loads(pickle.dumps(err))
    assert (again.code, again.disposition, again.request_id) == (err.code, err.disposition, "req-7")


def test_error_message_is_bounded_and_secret_free():
    post = FakePost({"Error": {"Code": "AuthFailure.SignatureFailure", "Message": "x" * 5000},
                     "RequestId": "r"})
    with pytest.raises(VendorError) as info:
        soe(post).call("InitOralProcess", {})
    assert len(info.value.message) <= 500
    for text in (str(info.value), repr(soe(post)), repr(soe(post).signer.credentials)):
        assert SECRET_KEY not in text


@pytest.mark.parametrize("status,body,reason,disposition", [
    (200, b"<html>oops</html>", "bad_response", Disposition.RETRY),
    (200, b'{"NoResponse": {}}', "bad_response", Disposition.RETRY),
    (200, b'[1, 2]', "bad_response", Disposition.RETRY),
    (413, b"<html>Request Entity Too Large</html>", "http_413", Disposition.PERMANENT),
    (404, b'{"message": "not found"}', "http_404", Disposition.PERMANENT),
])
def test_answers_without_an_api_envelope(status, body, reason, disposition):
    with pytest.raises(VendorError) as info:
        soe(FakePost(body, status=status)).call("InitOralProcess", {})
    assert (info.value.reason, info.value.disposition) == (reason, disposition)
    if reason == "bad_response":
        assert isinstance(info.value, BadResponse)


def test_api_error_on_a_4xx_still_uses_the_code():
    post = FakePost({"Error": {"Code": "InvalidParameter", "Message": "m"}, "RequestId": "r"},
                    status=400)
    with pytest.raises(VendorError) as info:
        soe(post).call("X", {})
    assert (info.value.code, info.value.reason, info.value.status) == ("InvalidParameter", "invalid_parameter", 400)


# -- error codes -> dispositions ---------------------------------------------------------

COMMON_CODES = [
    ("RequestLimitExceeded", Disposition.THROTTLED, "throttled"),
    ("RequestLimitExceeded.UinLimitExceeded", Disposition.THROTTLED, "throttled"),
    ("RequestLimitExceeded.GlobalRegionUinLimitExceeded", Disposition.THROTTLED, "throttled"),
    ("LimitExceeded.ConcurrencyLimitExceeded", Disposition.THROTTLED, "throttled"),
    ("InternalError", Disposition.RETRY, "internal_error"),
    ("AuthFailure", Disposition.PERMANENT, "auth"),
    ("AuthFailure.SignatureFailure", Disposition.PERMANENT, "auth"),
    ("AuthFailure.SecretIdNotFound", Disposition.PERMANENT, "auth"),
    ("InvalidParameter", Disposition.PERMANENT, "invalid_parameter"),
    ("InvalidParameter.InvalidParameter", Disposition.PERMANENT, "invalid_parameter"),
    ("InvalidParameterValue", Disposition.PERMANENT, "invalid_parameter"),
    ("MissingParameter", Disposition.PERMANENT, "invalid_parameter"),
    ("UnknownParameter", Disposition.PERMANENT, "invalid_parameter"),
    ("LimitExceeded", Disposition.PERMANENT, "vendor_error"),  # a quota, not a rate
    ("ResourceNotFound", Disposition.PERMANENT, "vendor_error"),
    ("SomethingNew.Entirely", Disposition.PERMANENT, "vendor_error"),
]

SOE_CODES = [
    ("FailedOperation.PastSeqIdLose", Disposition.RESEND, "resend_chunks"),
    ("FailedOperation.WaitPastSeqIdTimeout", Disposition.RESEND, "resend_chunks"),
    ("InternalError.LastSeqUnfinished", Disposition.RETRY, "last_chunk_unfinished"),
    ("FailedOperation.SessionExpired", Disposition.RESTART, "session_expired"),
    ("FailedOperation.ResultExpired", Disposition.RESTART, "result_expired"),
    ("FailedOperation.SeqIdExpired", Disposition.RESTART, "seq_id_expired"),
    ("FailedOperation.ServerOverload", Disposition.THROTTLED, "server_overload"),
    ("InternalError.ServerOverload", Disposition.THROTTLED, "server_overload"),
    ("RequestLimitExceeded", Disposition.THROTTLED, "throttled"),
    ("LimitExceeded.ConcurrencyLimitExceeded", Disposition.THROTTLED, "throttled"),
    ("InternalError.InvalidWAVHeader", Disposition.PERMANENT, "invalid_audio"),
    ("InternalError.MP3DecodeFailed", Disposition.PERMANENT, "invalid_audio"),
    ("InternalError.BASE64DecodeFailed", Disposition.PERMANENT, "invalid_audio"),
    ("InternalError.RefTxtEmpty", Disposition.PERMANENT, "ref_text_empty"),
    ("InvalidParameterValue.VoiceLengthTooLong", Disposition.PERMANENT, "audio_too_long"),
    ("AuthFailure", Disposition.PERMANENT, "auth"),
    ("AuthFailure.InvalidAuthorization", Disposition.PERMANENT, "auth"),
    ("AuthFailure.AccountUnavailable", Disposition.PERMANENT, "auth"),
    # refinements from the SDK's errorcodes.py
    ("InternalError.VadNotDetectedSpeak", Disposition.PERMANENT, "no_speech"),
    ("InternalError.AuthorizeError", Disposition.PERMANENT, "auth"),
    ("InternalError.CannotFindSession", Disposition.RESTART, "session_not_found"),
    ("InvalidParameterValue.RefTextOOV", Disposition.PERMANENT, "ref_text_invalid"),
    ("InvalidParameterValue.SessionIdInUse", Disposition.RESTART, "session_id_in_use"),
    ("InvalidParameterValue.SensitiveWords", Disposition.PERMANENT, "sensitive_words"),
    # generic InternalError children keep the base's retry
    ("InternalError.ServerInternalError", Disposition.RETRY, "internal_error"),
    ("FailedOperation", Disposition.PERMANENT, "failed_operation"),
]


@pytest.mark.parametrize("code,disposition,reason", COMMON_CODES)
def test_common_codes(code, disposition, reason):
    assert TencentApiClient.classify(code) == (disposition, reason)
    if code not in SoeClient.ERRORS:  # the codes SOE's SDK lists have their own entry
        assert SoeClient.classify(code) == (disposition, reason)


@pytest.mark.parametrize("code,disposition,reason", SOE_CODES)
def test_soe_codes(code, disposition, reason):
    assert SoeClient.classify(code) == (disposition, reason)


@pytest.mark.parametrize("code,disposition,reason", SOE_CODES[:8])
def test_soe_codes_through_a_call(code, disposition, reason):
    post = FakePost({"Error": {"Code": code, "Message": "m"}, "RequestId": "r"})
    with pytest.raises(VendorError) as info:
        soe(post).transmit_with_init("s", 2, False, b"ab", SoeParams("hi"))
    assert (info.value.code, info.value.disposition, info.value.reason) == (code, disposition, reason)


def test_prefix_matching_is_by_dotted_segment_and_longest_wins():
    assert SoeClient.classify("RequestLimitExceeded.IPLimitExceeded")[0] is Disposition.THROTTLED
    assert SoeClient.classify("RequestLimitExceededX")[0] is Disposition.PERMANENT  # not a segment
    assert SoeClient.classify("InternalError.InvalidWAVHeader.Detail")[1] == "invalid_audio"
    assert SoeClient.classify("InternalError.SomethingElse")[0] is Disposition.RETRY
    assert SoeClient.classify("LimitExceeded.ConcurrencyLimitExceeded.Sub")[0] is Disposition.THROTTLED


def test_subclass_tables_extend_without_touching_the_base():
    assert "FailedOperation.PastSeqIdLose" not in TencentApiClient.ERRORS
    assert TencentApiClient.classify("InternalError.InvalidWAVHeader")[0] is Disposition.RETRY
    assert SoeClient.classify("InternalError.InvalidWAVHeader")[0] is Disposition.PERMANENT


def test_missing_error_code_is_permanent():
    err = soe().error_for({"Message": "?"}, "r")
    assert (err.code, err.disposition) == ("UnknownError", Disposition.PERMANENT)


# -- SoeParams and manifest values -------------------------------------------------------


def test_params_defaults():
    p = SoeParams("hello")
    assert (p.eval_mode, p.score_coeff, p.server_type, p.voice_file_type, p.voice_encode_type,
            p.text_mode, p.sentence_info_enabled, p.is_async) == (1, 1.0, 0, 2, 1, 0, 0, 0)


@pytest.mark.parametrize("mode,code", [("word", 0), ("sentence", 1), ("paragraph", 2),
                                       ("free", 3), ("Word", 0), (3, 3), ("5", 5)])
def test_eval_mode_names(mode, code):
    assert SoeParams.from_manifest("x", mode=mode).eval_mode == code


@pytest.mark.parametrize("lang,code", [("en", 0), ("zh", 1), ("ZH", 1), (1, 1)])
def test_lang_names(lang, code):
    assert SoeParams.from_manifest("x", lang=lang).server_type == code


@pytest.mark.parametrize("kwargs,reason", [
    ({"mode": "essay"}, "invalid_eval_mode"),
    ({"lang": "fr"}, "invalid_lang"),
    ({"score_coeff": 0.5}, "invalid_score_coeff"),
    ({"score_coeff": 4.5}, "invalid_score_coeff"),
])
def test_bad_manifest_values_are_permanent(kwargs, reason):
    with pytest.raises(InvalidInput) as info:
        SoeParams.from_manifest("x", **kwargs)
    assert (info.value.reason, info.value.disposition) == (reason, Disposition.PERMANENT)


def test_from_manifest_takes_the_file_type_from_the_audio_name():
    p = SoeParams.from_manifest("红色", mode="word", lang="zh", audio="s3://b/k/a.mp3",
                                score_coeff=2, text_mode=1)
    assert p == SoeParams("红色", eval_mode=0, score_coeff=2.0, server_type=1, voice_file_type=3,
                          text_mode=1)


@pytest.mark.parametrize("name,code", [
    ("a.pcm", 1), ("dir/a.RAW", 1), ("a.wav", 2), ("a.mp3", 3), ("a.spx", 4), ("a.speex", 4),
    ("noext", 2), ("a.ogg", 2), ("https://h/x/a.mp3?sig=a.wav", 3), ("https://h/a.pcm#t=1", 1),
    ("https://h/a.mp3/download", 2), ("/tmp/some.dir/file", 2),
])
def test_voice_file_type_for(name, code):
    assert voice_file_type_for(name) == code


# -- request building (checked against the SDK's request models) ---------------------------


def test_transmit_with_init_params():
    client = soe(app_id="app-1")
    params = SoeParams("红色 red", eval_mode=2, score_coeff=1.5, server_type=1, voice_file_type=2,
                       sentence_info_enabled=1)
    body = client.build_transmit_with_init_params("sess-1", 3, True, WAV, params)
    assert body == {
        "SessionId": "sess-1", "SeqId": 3, "IsEnd": 1, "VoiceFileType": 2, "VoiceEncodeType": 1,
        "UserVoiceData": base64.b64encode(WAV).decode(), "RefText": "红色 red", "EvalMode": 2,
        "ScoreCoeff": 1.5, "ServerType": 1, "TextMode": 0, "SentenceInfoEnabled": 1, "IsAsync": 0,
        "WorkMode": 0, "IsQuery": 0, "SoeAppId": "app-1",
    }
    assert type(body["IsEnd"]) is int and type(body["SeqId"]) is int
    assert base64.b64decode(body["UserVoiceData"]) == WAV
    assert sdk_round_trip(models.TransmitOralProcessWithInitRequest, body) == body


def test_no_app_id_no_soe_app_id():
    body = soe().build_transmit_with_init_params("s", 1, False, b"", SoeParams("x"))
    assert "SoeAppId" not in body and body["IsEnd"] == 0


def test_init_params():
    body = soe(app_id="a").build_init_params("s", SoeParams("x", eval_mode=0), work_mode=1)
    assert body["WorkMode"] == 1 and body["EvalMode"] == 0 and "UserVoiceData" not in body
    assert sdk_round_trip(models.InitOralProcessRequest, body) == body


def test_transmit_params():
    body = soe(app_id="a").build_transmit_params("s", 2, True, b"\x00\x01", voice_file_type=1)
    assert body == {"SessionId": "s", "SeqId": 2, "IsEnd": 1, "VoiceFileType": 1, "VoiceEncodeType": 1,
                    "UserVoiceData": "AAE=", "IsQuery": 0, "SoeAppId": "a"}
    assert sdk_round_trip(models.TransmitOralProcessRequest, body) == body


def test_keyword_params():
    params = SoeParams("ignored", eval_mode=1, server_type=1, voice_file_type=3)
    body = soe().build_keyword_params("s", 1, False, b"\xff\xfb\x90", ["red", "红色"], params)
    assert body["Keywords"] == [
        {"RefText": "red", "EvalMode": 1, "ScoreCoeff": 1.0, "ServerType": 1, "TextMode": 0},
        {"RefText": "红色", "EvalMode": 1, "ScoreCoeff": 1.0, "ServerType": 1, "TextMode": 0},
    ]
    assert body["VoiceFileType"] == 3 and body["IsQuery"] == 0 and "RefText" not in body
    assert sdk_round_trip(models.KeywordEvaluateRequest, body) == body


@pytest.mark.parametrize("seq_id", [0, -1, 3001])
def test_seq_id_range(seq_id):
    with pytest.raises(InvalidInput) as info:
        soe().build_transmit_with_init_params("s", seq_id, False, b"", SoeParams("x"))
    assert info.value.reason == "invalid_seq_id"


@pytest.mark.parametrize("file_type,ok", [(1, False), (2, False), (3, True), (4, True)])
def test_odd_chunks_rejected_for_16_bit_audio(file_type, ok):
    build = soe().build_transmit_params
    if ok:
        assert build("s", 1, True, b"abc", voice_file_type=file_type)["SeqId"] == 1
    else:
        with pytest.raises(InvalidInput, match="16-bit"):
            build("s", 1, True, b"abc", voice_file_type=file_type)


# -- responses ------------------------------------------------------------------------

WORD = {"MemBeginTime": 1030, "MemEndTime": 2040, "PronAccuracy": 9.398723,
        "PronFluency": 0.8396871, "ReferenceWord": "hello_0", "Word": "hello", "MatchTag": 0,
        "KeywordTag": 0, "PhoneInfos": [{"MemBeginTime": 1030, "MemEndTime": 1570,
                                         "PronAccuracy": 19.79675, "DetectedStress": False,
                                         "Phone": "hh", "ReferencePhone": "", "ReferenceLetter": "",
                                         "Stress": False, "MatchTag": 0}]}
FINAL = {"SuggestedScore": 9.398723, "PronAccuracy": 9.398723, "PronFluency": 0.8396871,
         "PronCompletion": 1, "Words": [WORD], "SessionId": "d0cecf7a-6bca-11ed-bdb0-acde48001122",
         "AudioUrl": "", "SentenceInfoSet": [], "Status": "Finished",
         "RequestId": "3b520d02-bc6a-4b3a-8396-fd4ecb0d63a8"}
EVALUATING = {"SuggestedScore": 0, "PronAccuracy": -1, "PronFluency": -1, "PronCompletion": -1,
              "Words": [], "SessionId": "s", "AudioUrl": "", "SentenceInfoSet": [],
              "Status": "Evaluating", "RequestId": "r2"}
KEYWORDS = {"KeywordScores": [{"Keyword": "red", "PronAccuracy": 88.5, "PronFluency": 0.9,
                               "PronCompletion": 1, "Words": [WORD], "SuggestedScore": 88.5},
                              {"Keyword": "红色", "PronAccuracy": -1, "PronFluency": -1,
                               "PronCompletion": -1, "Words": [], "SuggestedScore": 0}],
            "SessionId": "kw-1", "RequestId": "r3"}


def test_sample_responses_use_the_sdk_field_names():
    sdk_round_trip(models.TransmitOralProcessWithInitResponse, FINAL)
    sdk_round_trip(models.TransmitOralProcessResponse, EVALUATING)
    sdk_round_trip(models.KeywordEvaluateResponse, KEYWORDS)


def test_final_result():
    result = SoeResult.from_response(FINAL)
    assert result.finished and not result.evaluating and not result.failed
    assert (result.session_id, result.status, result.request_id) == (
        FINAL["SessionId"], "Finished", FINAL["RequestId"])
    assert (result.suggested_score, result.pron_accuracy, result.pron_fluency,
            result.pron_completion) == (9.398723, 9.398723, 0.8396871, 1.0)
    assert result.words == [WORD] and result.sentence_info == [] and result.raw is FINAL
    assert "AudioUrl" not in repr(result)  # raw stays out of the repr


def test_final_result_without_status_counts_as_finished():
    result = SoeResult.from_response({k: v for k, v in FINAL.items() if k != "Status"})
    assert result.status is None and result.finished


def test_intermediate_result():
    result = SoeResult.from_response(EVALUATING)
    assert result.evaluating and not result.finished
    assert result.pron_accuracy == -1.0  # "not meaningful" before IsEnd: passed through


@pytest.mark.parametrize("response,finished", [
    ({"SessionId": "s", "RequestId": "r"}, False),
    ({"SessionId": "s", "Status": "", "SuggestedScore": 50}, True),
    ({"SessionId": "s", "Status": "Failed", "SuggestedScore": 0}, False),
])
def test_finished_edge_cases(response, finished):
    assert SoeResult.from_response(response).finished is finished


def test_failed_result():
    assert SoeResult.from_response({"Status": "Failed"}).failed


def test_keyword_result():
    result = KeywordResult.from_response(KEYWORDS)
    assert (result.session_id, result.request_id) == ("kw-1", "r3")
    assert result.scores == [
        {"keyword": "red", "suggested_score": 88.5, "pron_accuracy": 88.5, "pron_fluency": 0.9,
         "pron_completion": 1.0, "words": [WORD]},
        {"keyword": "红色", "suggested_score": 0.0, "pron_accuracy": -1.0, "pron_fluency": -1.0,
         "pron_completion": -1.0, "words": []},
    ]


@pytest.mark.parametrize("response", [
    [], {"SuggestedScore": "high"}, {"SuggestedScore": {}},
])
def test_malformed_results_are_bad_responses(response):
    with pytest.raises(BadResponse):
        SoeResult.from_response(response)


def test_malformed_keyword_scores_are_bad_responses():
    with pytest.raises(BadResponse):
        KeywordResult.from_response({"KeywordScores": ["red"]})


# -- actions end to end (fake post) -----------------------------------------------------


def test_transmit_with_init_action():
    post = FakePost(EVALUATING, FINAL)
    client, params = soe(post), SoeParams("hello", eval_mode=0)
    first = client.transmit_with_init("s", 1, False, WAV[:16], params)
    last = client.transmit_with_init("s", 2, True, WAV[16:], params)
    assert not first.finished and last.finished and last.suggested_score == 9.398723
    assert [c["headers"]["X-TC-Action"] for c in post.calls] == ["TransmitOralProcessWithInit"] * 2
    assert [json.loads(c["data"])["SeqId"] for c in post.calls] == [1, 2]
    assert post.params["IsEnd"] == 1


def test_init_and_transmit_actions():
    post = FakePost({"SessionId": "sess-1", "RequestId": "r"}, FINAL)
    client = soe(post)
    assert client.init_oral_process("sess-1", SoeParams("captain")) == "sess-1"
    assert post.params["WorkMode"] == 1
    result = client.transmit("sess-1", 1, True, WAV, voice_file_type=2)
    assert result.finished
    assert [c["headers"]["X-TC-Action"] for c in post.calls] == ["InitOralProcess", "TransmitOralProcess"]
    assert "WorkMode" not in post.params  # not a TransmitOralProcess field


def test_keyword_evaluate_action():
    post = FakePost(KEYWORDS)
    result = soe(post).keyword_evaluate("kw-1", 1, True, WAV, ["red", "红色"], SoeParams("x"))
    assert post.calls[0]["headers"]["X-TC-Action"] == "KeywordEvaluate"
    assert [s["keyword"] for s in result.scores] == ["red", "红色"]
    assert "红色" in post.calls[0]["data"].decode("utf-8")  # ensure_ascii=False on the wire


def test_query_action():
    post = FakePost(FINAL)
    result = soe(post).query("sess-1", SoeParams("hello", is_async=1))
    assert result.finished
    sent = post.params
    assert post.calls[0]["headers"]["X-TC-Action"] == "TransmitOralProcessWithInit"
    assert (sent["IsQuery"], sent["IsAsync"], sent["UserVoiceData"], sent["SessionId"]) == (1, 1, "", "sess-1")
    assert sdk_round_trip(models.TransmitOralProcessWithInitRequest, sent) == sent


def test_a_keyword_session_is_queried_with_keyword_evaluate():
    post = FakePost({"KeywordScores": [], "SessionId": "kw-1"}, KEYWORDS)
    client = soe(post)
    pending = client.query("kw-1", SoeParams("x", eval_mode=0), keywords=["red", "红色"])
    done = client.query("kw-1", SoeParams("x", eval_mode=0), keywords=["red", "红色"])
    assert isinstance(done, KeywordResult) and not pending.finished and done.finished
    assert [c["headers"]["X-TC-Action"] for c in post.calls] == ["KeywordEvaluate"] * 2
    sent = post.params
    assert (sent["IsQuery"], sent["UserVoiceData"], sent["SessionId"]) == (1, "", "kw-1")
    assert [k["RefText"] for k in sent["Keywords"]] == ["red", "红色"]
    assert sdk_round_trip(models.KeywordEvaluateRequest, sent) == sent
    assert [s["keyword"] for s in done.scores] == ["red", "红色"]


def test_keyword_chunks_are_not_queries():
    post = FakePost(KEYWORDS)
    soe(post).keyword_evaluate("kw-1", 1, True, WAV, ["red"], SoeParams("x"))
    assert post.params["IsQuery"] == 0


def test_an_async_session_asks_for_is_async_on_every_chunk():
    post = FakePost(EVALUATING)
    soe(post).transmit_with_init("s", 1, True, WAV, SoeParams("hello", is_async=1))
    assert post.params["IsAsync"] == 1
    assert sdk_round_trip(models.TransmitOralProcessWithInitRequest, post.params) == post.params
