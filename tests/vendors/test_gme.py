"""GME voice moderation: ScanVoice/DescribeScanResultList, results, callbacks, media limits."""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json

import pytest

from vendors import gme, http
from vendors.errors import BadResponse, Disposition, InvalidInput, VendorError
from vendors.tc3 import Credentials

CALLBACK_KEY = "gme-app-secret-key"

# The seed's callback example (a DescribeScanResult).
SEED_CALLBACK = {
    "Code": 0,
    "DataId": "1400000000_test_data_id",
    "ScanFinishTime": 1566720906,
    "HitFlag": True,
    "Live": False,
    "Msg": "",
    "ScanPiece": [
        {
            "DumpUrl": "",
            "HitFlag": True,
            "MainType": "abuse",
            "RoomId": "123",
            "OpenId": "111",
            "Info": "",
            "Offset": 0,
            "Duration": 3400,
            "PieceStartTime": 1574684231,
            "ScanDetail": [
                {
                    "EndTime": 1110,
                    "KeyWord": "违规字",
                    "Label": "abuse",
                    "Rate": "90.00",
                    "StartTime": 1110,
                },
                {
                    "EndTime": 1380,
                    "KeyWord": "违规字",
                    "Label": "abuse",
                    "Rate": "90.00",
                    "StartTime": 930,
                },
                {
                    "EndTime": 1560,
                    "KeyWord": "违规字",
                    "Label": "abuse",
                    "Rate": "90.00",
                    "StartTime": 930,
                },
                {
                    "EndTime": 2820,
                    "KeyWord": "违规字",
                    "Label": "abuse",
                    "Rate": "90.00",
                    "StartTime": 2490,
                },
            ],
        }
    ],
    "ScanStartTime": 1566720905,
    "Scenes": ["default"],
    "Status": "Success",
    "TaskId": "6330xxxx-9xx7-11ed-98e3-52xxxxe4ac3b",
    "Url": "https://xxx/xxx.m4a",
}


def result(**overrides) -> gme.GmeScanResult:
    return gme.GmeScanResult.from_dict({**copy.deepcopy(SEED_CALLBACK), **overrides})


# -- ScanVoice parameters --------------------------------------------------------------
def test_scan_voice_params_follow_the_seed():
    tasks = [gme.GmeTask("1400000000_test_data_id", "http://xxxx/audio_store/xxxx.mp3")]
    params = gme.scan_voice_params(
        1400000000, tasks, live=False, callback="https://0.0.0.0/user_callback"
    )
    assert params == {
        "BizId": 1400000000,
        "Scenes": ["default"],
        "Live": False,
        "Tasks": [{"DataId": "1400000000_test_data_id", "Url": "http://xxxx/audio_store/xxxx.mp3"}],
        "Callback": "https://0.0.0.0/user_callback",
    }


def test_scan_voice_optional_fields():
    tasks = [gme.GmeTask("d", "rtmp://live/room", room_id="r1", open_id="u1")]
    params = gme.scan_voice_params("1400000000", tasks, live=True, callback=None, lang="jp")
    assert params["Tasks"] == [
        {"DataId": "d", "Url": "rtmp://live/room", "RoomId": "r1", "OpenId": "u1"}
    ]
    assert (params["BizId"], params["Live"], params["Lang"]) == (1400000000, True, "jp")
    assert "Callback" not in params


@pytest.mark.parametrize(("lang", "sent"), [("en", "en"), ("zh", None), (None, None)])
def test_a_jobs_language_as_lang(lang, sent):
    """Unsent, Lang is Chinese to the vendor: English says so, Chinese needs nothing."""
    tasks = [gme.GmeTask("d", "https://m/a.wav")]
    params = gme.scan_voice_params(1, tasks, live=False, callback=None, lang=gme.lang_param(lang))
    assert params.get("Lang") == sent


def test_scan_voice_takes_up_to_100_tasks():
    tasks = [gme.GmeTask(str(i), f"https://m/{i}.mp3") for i in range(101)]
    assert len(gme.scan_voice_params(1, tasks[:100], live=False, callback=None)["Tasks"]) == 100
    with pytest.raises(ValueError):
        gme.scan_voice_params(1, tasks, live=False, callback=None)
    with pytest.raises(ValueError):
        gme.scan_voice_params(1, [], live=False, callback=None)


def test_describe_params():
    assert gme.describe_params(1, ["t1", "t2"]) == {
        "BizId": 1,
        "TaskIdList": ["t1", "t2"],
        "Limit": 2,
    }
    assert gme.describe_params(1, ["t1"], limit=500)["Limit"] == 500


@pytest.mark.parametrize(
    ("ids", "limit"), [([], None), ([str(i) for i in range(101)], None), (["t"], 501), (["t"], 0)]
)
def test_describe_params_limits(ids, limit):
    with pytest.raises(ValueError):
        gme.describe_params(1, ids, limit)


# -- results ----------------------------------------------------------------------------
def test_seed_callback_is_a_reject():
    r = result()
    assert (r.data_id, r.task_id, r.status, r.code, r.msg) == (
        "1400000000_test_data_id",
        "6330xxxx-9xx7-11ed-98e3-52xxxxe4ac3b",
        "Success",
        0,
        "",
    )
    assert r.hit_flag and r.verdict == "REJECT"
    assert r.labels == ["abuse"] and r.label_rates == {"abuse": 90.0}
    assert not r.pending and r.error() is None
    assert r.raw["Url"] == "https://xxx/xxx.m4a"


def test_success_without_hit_passes():
    r = result(HitFlag=False, ScanPiece=[])
    assert (r.verdict, r.labels) == ("PASS", [])


def test_start_is_pending():
    r = result(Status="Start", HitFlag=False, ScanPiece=[])
    assert r.verdict is None and r.pending


def test_live_hit_while_running_rejects_early():
    r = result(Status="Start")
    assert r.verdict == "REJECT" and not r.pending


def test_error_status_is_a_permanent_failure():
    r = result(Status="Error", HitFlag=False, ScanPiece=[], Code=1001, Msg="download failed")
    error = r.error()
    assert r.verdict is None
    assert (error.disposition, error.reason, error.code, error.message) == (
        Disposition.PERMANENT,
        "scan_failed",
        "1001",
        "download failed",
    )


def test_labels_keep_the_highest_rate_and_skip_misses():
    pieces = [
        {
            "HitFlag": True,
            "MainType": "porn",
            "ScanDetail": [
                {"Label": "porn", "Rate": "87.50"},
                {"Label": "moan", "Rate": "60.00"},
                {"Label": "porn", "Rate": "95.10"},
            ],
        },
        {"HitFlag": True, "MainType": "ad", "ScanDetail": []},
        {
            "HitFlag": False,
            "MainType": "abuse",
            "ScanDetail": [{"Label": "abuse", "Rate": "99.00"}],
        },
        {
            "HitFlag": True,
            "MainType": "normal",
            "ScanDetail": [{"Label": "normal", "Rate": "99.00"}, {"Label": "moan", "Rate": "bad"}],
        },
    ]
    r = result(ScanPiece=pieces)
    assert r.label_rates == {"porn": 95.1, "moan": 60.0, "ad": 0.0}
    assert r.labels == ["porn", "moan", "ad"]


def test_string_flags_are_understood():
    assert result(HitFlag="true").verdict == "REJECT"
    assert result(HitFlag="false", ScanPiece=[]).verdict == "PASS"


def test_parse_responses():
    submitted = gme.parse_submitted({"Data": [{"DataId": "d", "TaskId": "t"}], "RequestId": "r"})
    assert submitted == [gme.GmeSubmitted("d", "t")]
    results = gme.parse_results({"Data": [SEED_CALLBACK], "RequestId": "r"})
    assert [x.task_id for x in results] == ["6330xxxx-9xx7-11ed-98e3-52xxxxe4ac3b"]
    with pytest.raises(BadResponse):
        gme.parse_submitted({"RequestId": "r"})
    with pytest.raises(BadResponse):
        gme.parse_results({"Data": None})


# -- callbacks ---------------------------------------------------------------------------
BODY = json.dumps(SEED_CALLBACK, ensure_ascii=False).encode("utf-8")


def test_sign_callback_is_hmac_sha1_of_post_and_body():
    expected = base64.b64encode(
        hmac.new(CALLBACK_KEY.encode(), b"POST" + BODY, hashlib.sha1).digest()
    ).decode()
    assert gme.sign_callback(BODY, CALLBACK_KEY) == expected
    assert gme.SIGNATURE_PARAM == "Signatue"


def test_verify_callback_true_and_false():
    signature = gme.sign_callback(BODY, CALLBACK_KEY)
    assert gme.verify_callback(BODY, signature, CALLBACK_KEY)
    assert not gme.verify_callback(BODY + b" ", signature, CALLBACK_KEY)
    assert not gme.verify_callback(BODY, signature, "another-key")
    assert not gme.verify_callback(BODY, "", CALLBACK_KEY)
    assert not gme.verify_callback(BODY, None, CALLBACK_KEY)
    assert not gme.verify_callback(BODY, signature, "")
    assert not gme.verify_callback(BODY, "签名", CALLBACK_KEY)


def test_verify_tolerates_a_plus_decoded_as_space():
    body = b'{"Code":0}'
    key = next(k for k in (f"k{i}" for i in range(1000)) if "+" in gme.sign_callback(body, k))
    signature = gme.sign_callback(body, key)
    assert gme.verify_callback(body, signature.replace("+", " "), key)


def test_verify_uses_a_constant_time_compare(monkeypatch):
    calls = []
    real = hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(gme.hmac, "compare_digest", spy)
    assert gme.verify_callback(BODY, gme.sign_callback(BODY, CALLBACK_KEY), CALLBACK_KEY)
    assert len(calls) == 1


def test_parse_callback():
    r = gme.parse_callback(BODY)
    assert r.verdict == "REJECT" and r.data_id == "1400000000_test_data_id"
    with pytest.raises(BadResponse):
        gme.parse_callback(b"not json")
    with pytest.raises(BadResponse):
        gme.parse_callback(b"[]")


# -- media limits -------------------------------------------------------------------------
@pytest.mark.parametrize("ext", gme.FILE_EXTENSIONS)
def test_allowed_file_extensions(ext):
    assert gme.check_media(f"https://media.example/a/b{ext.upper()}?sig=1", 1024) is False


def test_file_size_limit():
    assert gme.check_media("https://m/a.wav", 100 * 1024 * 1024) is False
    with pytest.raises(InvalidInput) as caught:
        gme.check_media("https://m/a.wav", 100 * 1024 * 1024 + 1)
    assert caught.value.reason == "file_too_large"


@pytest.mark.parametrize("url", ["https://m/a.flac", "https://m/noext", "https://m/dir.mp3/file"])
def test_unsupported_files(url):
    with pytest.raises(InvalidInput) as caught:
        gme.check_media(url, None)
    assert caught.value.reason == "unsupported_format"


@pytest.mark.parametrize(
    "url", ["rtmp://live/app/room", "http://live/a.m3u8", "https://live/a.flv?t=1"]
)
def test_streams(url):
    assert gme.check_media(url, None) is True
    assert gme.check_media(url, None, live=True) is True


@pytest.mark.parametrize(
    "url", ["ftp://m/a.mp3", "/local/a.mp3", "rtsp://live/a", "https:///a.mp3"]
)
def test_unsupported_urls(url):
    with pytest.raises(InvalidInput) as caught:
        gme.check_media(url, None)
    assert caught.value.reason == "unsupported_url"


@pytest.mark.parametrize(("url", "live"), [("https://m/a.mp3", True), ("rtmp://live/room", False)])
def test_live_flag_must_match(url, live):
    with pytest.raises(InvalidInput) as caught:
        gme.check_media(url, None, live=live)
    assert caught.value.reason == "media_kind_mismatch"


# -- client ----------------------------------------------------------------------------------
class FakePost:
    """Stands in for vendors.http.post through the base client's injection point."""

    def __init__(self, answer: dict) -> None:
        self.answer, self.calls = answer, []

    def __call__(self, vendor, url, *, data, headers, timeout):
        self.calls.append(
            {"vendor": vendor, "url": url, "data": json.loads(data), "headers": headers}
        )
        return http.Response(200, json.dumps({"Response": self.answer}).encode(), {})


def make_client(answer: dict) -> tuple[gme.GmeClient, FakePost]:
    fake = FakePost(answer)
    client = gme.GmeClient(
        "https://gme.tencentcloudapi.com",
        Credentials("AKID", "SECRET"),
        biz_id=1400000000,
        post=fake,
        clock=lambda: 1_700_000_000,
    )
    return client, fake


def test_client_scan_voice():
    client, fake = make_client({"Data": [{"DataId": "d1", "TaskId": "t1"}], "RequestId": "r"})
    submitted = client.scan_voice(
        [gme.GmeTask("d1", "https://m/a.mp3")], live=False, callback="https://cb/gme"
    )
    assert submitted == [gme.GmeSubmitted("d1", "t1")]
    call = fake.calls[0]
    assert (call["vendor"], call["headers"]["X-TC-Action"], call["headers"]["X-TC-Version"]) == (
        "gme",
        "ScanVoice",
        "2018-07-11",
    )
    assert call["data"]["BizId"] == 1400000000 and call["data"]["Callback"] == "https://cb/gme"
    assert "X-TC-Region" not in call["headers"]


def test_client_describe():
    client, fake = make_client({"Data": [SEED_CALLBACK], "RequestId": "r"})
    results = client.describe_scan_results(["6330xxxx-9xx7-11ed-98e3-52xxxxe4ac3b"])
    assert results[0].verdict == "REJECT"
    assert fake.calls[0]["headers"]["X-TC-Action"] == "DescribeScanResultList"
    assert fake.calls[0]["data"]["TaskIdList"] == ["6330xxxx-9xx7-11ed-98e3-52xxxxe4ac3b"]


@pytest.mark.parametrize(
    ("code", "disposition", "reason"),
    [
        ("InvalidParameter.CallbackAddress", Disposition.PERMANENT, "invalid_callback_address"),
        ("InvalidParameter", Disposition.PERMANENT, "invalid_parameter"),
        ("FailedOperation", Disposition.PERMANENT, "failed_operation"),
        ("OperationDenied", Disposition.PERMANENT, "operation_denied"),
        ("ResourceNotFound", Disposition.PERMANENT, "resource_not_found"),
        ("ResourceUnavailable", Disposition.PERMANENT, "resource_unavailable"),
        ("UnsupportedOperation", Disposition.PERMANENT, "unsupported_operation"),
        ("UnauthorizedOperation", Disposition.PERMANENT, "unauthorized"),
        ("MissingParameter", Disposition.PERMANENT, "invalid_parameter"),
        ("UnknownParameter", Disposition.PERMANENT, "invalid_parameter"),
        ("InternalError", Disposition.RETRY, "internal_error"),
        ("RequestLimitExceeded.UinLimitExceeded", Disposition.THROTTLED, "throttled"),
        ("LimitExceeded.ConcurrencyLimitExceeded", Disposition.THROTTLED, "throttled"),
    ],
)
def test_error_codes(code, disposition, reason):
    client, _ = make_client({"Error": {"Code": code, "Message": "m"}, "RequestId": "r"})
    with pytest.raises(VendorError) as caught:
        client.scan_voice([gme.GmeTask("d", "https://m/a.mp3")], live=False, callback=None)
    assert (caught.value.disposition, caught.value.reason, caught.value.code) == (
        disposition,
        reason,
        code,
    )


def test_client_repr_hides_secret():
    client, _ = make_client({})
    assert "SECRET" not in repr(client)
