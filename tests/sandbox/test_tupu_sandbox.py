"""Tupu speech streams in the sandbox, driven by the real ``TupuClient`` over a real socket."""

from __future__ import annotations

import json
import time

import pytest

from sandbox.moderation import verdict_for
from sandbox.server import SandboxThread
from sandbox.tupu import BAD_SIGNATURE, STALE, UNKNOWN_SECRET_ID, UNKNOWN_TASK
from tests.sandbox.moderation_helpers import (
    Receiver,
    moderation_config,
    private_pem,
    public_pem,
    stream_with,
)
from vendors import tupu
from vendors.errors import VendorError
from vendors.tupu import TupuClient, TupuSigner


@pytest.fixture
def config(credentials):
    return moderation_config(credentials, result_delay_s=0.1)


def make_client(sandbox, config, key: str = "client", **kwargs) -> TupuClient:
    signer = TupuSigner(config.tupu_secret_id, private_pem(key))
    return TupuClient(sandbox.url, signer, public_key_pem=public_pem("server"), timeout=5, **kwargs)


@pytest.fixture
def client(sandbox, config) -> TupuClient:
    return make_client(sandbox, config)


@pytest.fixture
def receiver():
    with Receiver() as running:
        yield running


def events(receiver: Receiver, n: int) -> list[tupu.TupuEvent]:
    return [tupu.parse_callback(json.loads(r.body), public_pem("server")) for r in receiver.wait(n)]


@pytest.mark.parametrize("verdict", ["REVIEW", "REJECT"])
def test_violation_callback_carries_the_verdict_of_the_stream(client, receiver, verdict):
    url = stream_with(verdict)
    submitted = client.submit_stream("job-1", url, callback_url=receiver.url, room_id="r1")
    assert submitted.raw["forumId"] == "job-1" and submitted.raw["roomId"] == "r1"
    (event,) = events(receiver, 1)
    assert (event.task_id, event.kind) == (submitted.task_id, "violation")
    assert (event.verdict, event.labels) == verdict_for(url.encode(), "tupu")
    assert client.close_stream(submitted.task_id) == "closed"
    time.sleep(0.1)
    assert len(receiver.received) == 1  # callbackRules 0: no end callback


def test_rules_3_send_the_pass_result_and_the_end(client, receiver, sandbox):
    url = stream_with("PASS")
    submitted = client.submit_stream("job-2", url, callback_url=receiver.url, callback_rules=3)
    (result,) = events(receiver, 1)
    assert (result.kind, result.verdict, result.labels) == ("result", "PASS", [])
    speech_review = result.raw["5caee6b2a76925c55a09a6d2"]["speechs"]  # a string label, an action
    assert [(s["label"], s["action"]) for s in speech_review] == [("Normal", "pass")]
    assert [s["label"] for s in result.raw["5c8213b9bc807806aab0a574"]["speechs"]] == [0]
    assert client.close_stream(submitted.task_id) == "closed"
    end = events(receiver, 2)[1]
    assert (end.kind, end.code, end.task_id, end.abnormal_end) == (
        "end",
        0,
        submitted.task_id,
        False,
    )
    task = sandbox.stats()["services"]["tupu"]["tasks"][submitted.task_id]
    assert task["status"] == "closed" and task["ready"] and task["key"] == "job-2"


def test_rules_0_pass_stream_sends_nothing(client, receiver):
    submitted = client.submit_stream("job-3", stream_with("PASS"), callback_url=receiver.url)
    time.sleep(0.3)
    client.close_stream(submitted.task_id)
    time.sleep(0.1)
    assert receiver.received == []


def test_a_stream_never_closed_ends_after_its_duration(client, receiver, sandbox, http):
    http.post(sandbox.url + "/_sandbox/config", json={"tupu_stream_duration_s": 0.3})
    submitted = client.submit_stream(
        "job-4", stream_with("PASS"), callback_url=receiver.url, callback_rules=2
    )
    (end,) = events(receiver, 1)
    assert (end.kind, end.task_id) == ("end", submitted.task_id)
    assert sandbox.stats()["services"]["tupu"]["tasks"][submitted.task_id]["status"] == "ended"


def test_closing_before_the_result_sends_no_violation(client, receiver, sandbox, http):
    http.post(sandbox.url + "/_sandbox/config", json={"result_delay_s": 1.0})
    submitted = client.submit_stream(
        "job-5", stream_with("REJECT"), callback_url=receiver.url, callback_rules=2
    )
    client.close_stream(submitted.task_id)
    (end,) = events(receiver, 1)
    assert end.kind == "end"
    time.sleep(0.2)
    assert len(receiver.received) == 1


def test_duplicate_forum_id_makes_a_new_task_and_is_counted(client, receiver, sandbox):
    url = stream_with("PASS")
    first = client.submit_stream("forum-1", url, callback_url=receiver.url)
    second = client.submit_stream("forum-1", url, callback_url=receiver.url)
    assert first.task_id != second.task_id
    stats = sandbox.stats()
    assert stats["accepted"]["tupu"] == {"forum-1": 2}
    assert stats["duplicates"]["tupu"] == {"forum-1": 1}
    assert stats["requests"] == {"tupu.submit": 2}


def test_a_signature_by_another_key_is_refused(sandbox, config, receiver):
    client = make_client(sandbox, config, key="other")
    with pytest.raises(VendorError) as caught:
        client.submit_stream("x", stream_with("PASS"), callback_url=receiver.url)
    assert caught.value.code == str(BAD_SIGNATURE)
    assert sandbox.stats()["accepted"] == {}


def test_a_stale_timestamp_is_refused(sandbox, config, receiver):
    client = make_client(sandbox, config, clock=lambda: time.time() - 3600)
    with pytest.raises(VendorError) as caught:
        client.submit_stream("x", stream_with("PASS"), callback_url=receiver.url)
    assert caught.value.code == str(STALE)


def test_an_unknown_secret_id_is_refused(sandbox, config, receiver):
    signer = TupuSigner("someone-else", private_pem("client"))
    client = TupuClient(sandbox.url, signer, public_key_pem=public_pem("server"), timeout=5)
    with pytest.raises(VendorError) as caught:
        client.close_stream("t")
    assert caught.value.code == str(UNKNOWN_SECRET_ID)


def test_a_float_nonce_as_in_the_seed_is_verified_as_written(client, http, sandbox, receiver):
    body = client.stream_body("job-f", stream_with("PASS"), callback_url=receiver.url)
    nonce = "0.8469537531104208"
    body["nonce"] = float(nonce)
    body["signature"] = client.signer.sign(body["timestamp"], nonce)
    path = tupu.SUBMIT_PATH.format(secret_id=client.signer.secret_id)
    answer = http.post(sandbox.url + path, data=json.dumps(body), timeout=5).json()
    assert tupu.verify_signed(answer, public_pem("server"))["code"] == 0


def test_closing_an_unknown_task(client):
    with pytest.raises(VendorError) as caught:
        client.close_stream("5c8213b9bc807806aab0a321")
    assert caught.value.code == str(UNKNOWN_TASK)


def test_answers_are_signed_with_the_server_key(client, http, sandbox):
    body = client.close_body("nope")
    path = tupu.CLOSE_PATH.format(secret_id=client.signer.secret_id)
    answer = http.post(sandbox.url + path, json=body, timeout=5).json()
    assert set(answer) == {"json", "signature"}
    assert tupu.verify_signed(answer, public_pem("server"))["code"] == UNKNOWN_TASK
    with pytest.raises(tupu.SignatureError):
        tupu.verify_signed(answer, public_pem("other"))


def test_a_generated_server_key_is_published(credentials, http):
    config = moderation_config(credentials, tupu_server_private_key=None)
    with SandboxThread(config) as sandbox, Receiver() as receiver:
        pem = http.get(sandbox.url + "/_sandbox/tupu/public-key").content
        assert pem.startswith(b"-----BEGIN PUBLIC KEY-----") and pem != public_pem("server")
        signer = TupuSigner(config.tupu_secret_id, private_pem("client"))
        client = TupuClient(sandbox.url, signer, public_key_pem=pem, timeout=5)
        submitted = client.submit_stream("g", stream_with("REJECT"), callback_url=receiver.url)
        (call,) = receiver.wait(1)
        assert tupu.parse_callback(json.loads(call.body), pem).task_id == submitted.task_id
        assert http.get(sandbox.url + "/_sandbox/tupu/public-key").content == pem
        assert sandbox.stats()["requests"] == {"tupu.submit": 1}  # the key route is not counted


def test_stream_urls_must_be_streams(client, http, sandbox, receiver):
    body = client.stream_body("x", "rtmp://a/b", callback_url=receiver.url)
    body["speechStream"][0]["url"] = "ftp://a/b"
    path = tupu.SUBMIT_PATH.format(secret_id=client.signer.secret_id)
    answer = tupu.verify_signed(
        http.post(sandbox.url + path, json=body).json(), public_pem("server")
    )
    assert answer["code"] != 0 and sandbox.stats()["accepted"] == {}


def test_a_stream_closed_before_its_result_can_still_get_it_before_the_end(client, receiver, http, sandbox):
    """As the real vendor: the audio pulled before the close is judged after it, then the end."""
    http.post(sandbox.url + "/_sandbox/config",
              json={"result_delay_s": 30.0, "tupu_result_after_close_s": 0.3})
    url = stream_with("REJECT")
    submitted = client.submit_stream("job-late", url, callback_url=receiver.url, callback_rules=3)
    assert client.close_stream(submitted.task_id) == "closed"
    closed_at = time.monotonic()
    assert receiver.received == []  # nothing before the close answer
    violation, end = events(receiver, 2)
    assert time.monotonic() - closed_at >= 0.3
    assert (violation.kind, violation.verdict, violation.task_id) == ("violation", "REJECT", submitted.task_id)
    assert violation.labels == verdict_for(url.encode(), "tupu")[1]
    assert (end.kind, end.task_id, end.abnormal_end) == ("end", submitted.task_id, False)


def test_close_calls_fail_with_transient_errors_at_the_rate_asked(client, receiver, http, sandbox):
    rule = {"kind": "error5xx", "rate": 0.3, "service": "tupu", "action": "close"}
    http.post(sandbox.url + "/_sandbox/config", json={"seed": 7, "faults": [rule]})
    task_ids = [client.submit_stream(f"job-{i}", stream_with("PASS"), callback_url=receiver.url).task_id
                for i in range(40)]  # submits are not faulted
    failed = 0
    for task_id in task_ids:
        try:
            client.close_stream(task_id)
        except VendorError as error:
            assert (error.status, error.retryable) == (503, True)
            failed += 1
    stats = sandbox.stats()
    assert stats["requests"] == {"tupu.submit": 40, "tupu.close": 40}
    assert stats["faults_by_action"] == {"tupu.close": failed}
    assert 4 <= failed <= 20  # about 30 % of 40


def test_speech_review_findings_are_string_labels_with_an_action(client, receiver):
    """Find streams the sandbox judges on speech review's categories; each reads as verdict_for says."""
    urls = [u for u in (f"rtmp://live.example/review/{i}" for i in range(400))
            if any(label.startswith("speech_review:") for label in verdict_for(u.encode(), "tupu")[1])][:3]
    assert urls
    for n, url in enumerate(urls):
        client.submit_stream(f"job-r{n}", url, callback_url=receiver.url)
    for event in events(receiver, len(urls)):
        url = next(u for u in urls if verdict_for(u.encode(), "tupu") == (event.verdict, event.labels))
        speeches = event.raw["5caee6b2a76925c55a09a6d2"]["speechs"]
        assert all(isinstance(s["label"], str) and s["action"] in ("review", "block") for s in speeches)
        assert {s["action"] for s in speeches} == {"review" if event.verdict == "REVIEW" else "block"}, url
