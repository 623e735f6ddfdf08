"""GME in the sandbox, driven by the real ``GmeClient`` over a real socket."""

from __future__ import annotations

import pytest

from sandbox.gme import DOWNLOAD_FAILED
from sandbox.moderation import verdict_for
from tests.sandbox.moderation_helpers import (
    Receiver,
    audio_with,
    callbacks_once,
    media,
    moderation_config,
    wait_until,
)
from vendors import gme
from vendors.errors import Disposition, VendorError
from vendors.gme import GmeClient, GmeTask


@pytest.fixture
def config(credentials, tmp_path):
    return moderation_config(credentials, media_dir=str(tmp_path), result_delay_s=0.2)


@pytest.fixture
def client(sandbox, config, credentials) -> GmeClient:
    return GmeClient(sandbox.url, credentials, biz_id=config.gme_biz_id, timeout=5)


def served(sandbox, tmp_path, name: str, audio: bytes) -> str:
    media(tmp_path, name, audio)
    return f"{sandbox.url}/media/{name}"


def final(client: GmeClient, task_id: str) -> gme.GmeScanResult:
    def done():
        (result,) = client.describe_scan_results([task_id])
        return result if result.status != "Start" else None

    return wait_until(done)


@pytest.mark.parametrize(("verdict", "labels"), [("PASS", 0), ("REJECT", 1), ("REJECT", 2)])
def test_scan_and_poll_gives_the_verdict_of_the_audio(client, sandbox, tmp_path, verdict, labels):
    audio = audio_with(verdict, labels=labels)
    url = served(sandbox, tmp_path, "a.wav", audio)
    (submitted,) = client.scan_voice([GmeTask("job-1", url)], live=False, callback=None)
    assert submitted.data_id == "job-1" and submitted.task_id
    result = final(client, submitted.task_id)
    expected, expected_labels = verdict_for(audio, "gme")
    assert (result.status, result.verdict, result.labels) == ("Success", expected, expected_labels)
    assert result.hit_flag is (verdict == "REJECT") and result.raw["Url"] == url
    if labels:
        rates = [float(d["Rate"]) for d in result.raw["ScanPiece"][0]["ScanDetail"]]
        assert all(70 <= r < 100 for r in rates) and rates == sorted(rates, reverse=True)


def test_status_is_start_until_the_delay_has_passed(client, sandbox, tmp_path, http):
    http.post(sandbox.url + "/_sandbox/config", json={"result_delay_s": 1.0})
    url = served(sandbox, tmp_path, "p.wav", audio_with("REJECT"))
    (submitted,) = client.scan_voice([GmeTask("job-p", url)], live=False, callback=None)
    (early,) = client.describe_scan_results([submitted.task_id])
    assert early.status == "Start" and early.pending and early.raw["ScanPiece"] == []
    assert not sandbox.stats()["services"]["gme"]["tasks"][submitted.task_id]["ready"]
    assert final(client, submitted.task_id).verdict == "REJECT"


def test_review_is_no_hit_with_a_moderate_rate(client, sandbox, tmp_path):
    audio = audio_with("REVIEW")
    (submitted,) = client.scan_voice(
        [GmeTask("job-r", served(sandbox, tmp_path, "r.wav", audio))], live=False, callback=None
    )
    result = final(client, submitted.task_id)
    (piece,) = result.raw["ScanPiece"]
    (detail,) = piece["ScanDetail"]
    assert not result.hit_flag and not piece["HitFlag"] and result.verdict == "PASS"
    assert detail["Label"] == verdict_for(audio, "gme")[1][0] and 40 <= float(detail["Rate"]) < 70


def test_live_stream_is_judged_on_its_url_without_download(client, sandbox):
    url = "rtmp://live.example/room/7"
    (submitted,) = client.scan_voice([GmeTask("live-7", url)], live=True, callback=None)
    result = final(client, submitted.task_id)
    assert result.verdict == verdict_for(url.encode(), "gme")[0]
    assert result.raw["Live"] is True and result.status == "Success"


def test_download_failure_is_status_error(client, sandbox):
    url = f"{sandbox.url}/media/missing.wav"
    (submitted,) = client.scan_voice([GmeTask("job-404", url)], live=False, callback=None)
    result = final(client, submitted.task_id)
    assert (result.status, result.code) == ("Error", DOWNLOAD_FAILED) and "404" in result.msg
    assert result.error().reason == "scan_failed"


def test_a_data_id_seen_before_gets_the_same_task_id(client, sandbox, tmp_path):
    url = served(sandbox, tmp_path, "d.wav", audio_with("PASS"))
    first = client.scan_voice([GmeTask("dup", url)], live=False, callback=None)
    again = client.scan_voice([GmeTask("dup", url), GmeTask("new", url)], live=False, callback=None)
    assert again[0] == first[0] and again[1].task_id != first[0].task_id
    stats = sandbox.stats()
    assert stats["accepted"]["gme"] == {"dup": 1, "new": 1}
    assert stats["duplicates"]["gme"] == {"dup": 1}
    assert stats["requests"]["gme.ScanVoice"] == 2
    task = stats["services"]["gme"]["tasks"][first[0].task_id]
    assert task["key"] == "dup" and "ready" in task and "verdict" in task


def test_wrong_biz_id_is_invalid_parameter(sandbox, config, credentials):
    client = GmeClient(sandbox.url, credentials, biz_id=config.gme_biz_id + 1, timeout=5)
    with pytest.raises(VendorError) as caught:
        client.scan_voice([GmeTask("x", "http://h/a.wav")], live=False, callback=None)
    assert caught.value.code == "InvalidParameter"
    assert caught.value.disposition is Disposition.PERMANENT


@pytest.mark.parametrize("n", [0, 101])
def test_tasks_must_number_1_to_100(client, n):
    tasks = [{"DataId": str(i), "Url": "http://h/a.wav"} for i in range(n)]
    params = {"BizId": client.biz_id, "Scenes": ["default"], "Live": False, "Tasks": tasks}
    with pytest.raises(VendorError) as caught:
        client.call("ScanVoice", params)
    assert caught.value.code in ("InvalidParameter", "MissingParameter")


def test_bad_callback_address(client):
    params = gme.scan_voice_params(
        client.biz_id, [GmeTask("x", "http://h/a.wav")], live=False, callback="ftp://nope"
    )
    with pytest.raises(VendorError) as caught:
        client.call("ScanVoice", params)
    assert caught.value.reason == "invalid_callback_address"


def test_describe_answers_at_most_limit_results(client, sandbox, tmp_path):
    url = served(sandbox, tmp_path, "l.wav", audio_with("PASS"))
    submitted = client.scan_voice(
        [GmeTask(f"l{i}", url) for i in range(12)], live=False, callback=None
    )
    ids = [s.task_id for s in submitted]
    no_limit = {"BizId": client.biz_id, "TaskIdList": ids}
    assert len(client.call("DescribeScanResultList", no_limit)["Data"]) == 10
    assert [r.task_id for r in client.describe_scan_results(ids)] == ids
    assert [r.task_id for r in client.describe_scan_results(["unknown", ids[0]])] == ids[:1]


def test_callback_is_the_describe_result_signed_in_signatue(client, sandbox, config, tmp_path):
    audio = audio_with("REJECT")
    url = served(sandbox, tmp_path, "c.wav", audio)
    with Receiver() as receiver:
        (submitted,) = client.scan_voice(
            [GmeTask("cb-1", url)], live=False, callback=receiver.url + "/callbacks/gme?x=1"
        )
        (call,) = receiver.wait(1)
    assert call.path == "/callbacks/gme" and call.query["x"] == "1"
    assert gme.verify_callback(call.body, call.query["Signatue"], config.gme_callback_key)
    pushed = gme.parse_callback(call.body)
    (polled,) = client.describe_scan_results([submitted.task_id])
    assert pushed.raw == polled.raw and pushed.verdict == "REJECT"
    assert callbacks_once(sandbox, "gme", "delivered")["delivered"] == 1


def test_callback_is_retried_until_http_200(client, sandbox, tmp_path):
    url = served(sandbox, tmp_path, "t.wav", audio_with("PASS"))
    with Receiver(script=[(500, b""), (404, b"")]) as receiver:
        client.scan_voice([GmeTask("cb-2", url)], live=False, callback=receiver.url)
        calls = receiver.wait(3)
        counts = callbacks_once(sandbox, "gme", "delivered")
    assert calls[0].body == calls[2].body
    assert counts == {"delivered": 1, "failed_attempts": 2, "gave_up": 0}


def test_throttle_fault_is_request_limit_exceeded(client, sandbox, http):
    http.post(
        sandbox.url + "/_sandbox/config",
        json={"faults": [{"kind": "throttle", "service": "gme", "first_n": 1}]},
    )
    with pytest.raises(VendorError) as caught:
        client.describe_scan_results(["whatever"])
    assert caught.value.disposition is Disposition.THROTTLED
    assert client.describe_scan_results(["whatever"]) == []


def test_each_task_records_the_lang_of_its_call(client, sandbox, tmp_path):
    url = served(sandbox, tmp_path, "l.wav", audio_with("PASS"))
    (english,) = client.scan_voice([GmeTask("en-1", url)], live=False, callback=None, lang="en")
    (chinese,) = client.scan_voice([GmeTask("zh-1", url)], live=False, callback=None)
    tasks = sandbox.stats()["services"]["gme"]["tasks"]
    assert (tasks[english.task_id]["lang"], tasks[chinese.task_id]["lang"]) == ("en", None)
