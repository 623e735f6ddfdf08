"""Faults of kind "code": the sandbox answers with any code of the official SDKs' lists,
as the vendor would (HTTP 200, the TC3 error envelope), and a code that means the
session is gone drops it, so going on with that SessionId hears the vendor again."""

from __future__ import annotations

import pytest

from sandbox.soe import SESSION_GONE_CODES, score
from tests.sandbox.helpers import (
    chunk_params,
    chunks,
    error_code,
    new_session_id,
    pcm,
    score_fields,
)
from tests.sandbox.moderation_helpers import moderation_config
from tests.vendors.sdk_oracle import error_codes
from vendors.errors import Disposition, VendorError
from vendors.gme import GmeClient, GmeTask
from vendors.soe import SoeClient, SoeParams

TRANSMIT = "TransmitOralProcessWithInit"
REF_TEXT = "the quick brown fox"


def configure(http, sandbox, *faults: dict) -> None:
    response = http.post(sandbox.url + "/_sandbox/config", json={"faults": list(faults)})
    assert response.status_code == 200, response.text


def snapshot(sandbox) -> dict:
    return sandbox.stats()["services"]["soe"]


@pytest.mark.parametrize("code", sorted(error_codes("soe")))
def test_any_soe_code_of_the_sdk_can_be_the_answer(caller, http, sandbox, code):
    configure(http, sandbox, {"kind": "code", "code": code, "service": "soe", "first_n": 1})
    response = caller.post(TRANSMIT, chunk_params(new_session_id(), 1, pcm(100), is_end=True))
    assert response.status_code == 200 and error_code(response.json()["Response"]) == code
    assert response.json()["Response"]["RequestId"]
    assert sandbox.stats()["faults"] == {"code": 1}


@pytest.fixture
def gme(sandbox, credentials, config) -> GmeClient:
    return GmeClient(sandbox.url, credentials, biz_id=config.gme_biz_id, timeout=5)


@pytest.mark.parametrize("code", sorted(error_codes("gme")))
def test_any_gme_code_of_the_sdk_can_be_the_answer(gme, http, sandbox, credentials, code):
    configure(http, sandbox, {"kind": "code", "code": code, "service": "gme", "first_n": 1})
    with pytest.raises(VendorError) as caught:
        gme.scan_voice([GmeTask("d1", "https://media.example/a.mp3")], live=False, callback=None)
    assert (caught.value.code, caught.value.status) == (code, 200)
    assert (caught.value.disposition, caught.value.reason) == GmeClient.classify(code)


@pytest.fixture
def config(credentials):
    return moderation_config(credentials, seed=1)


def test_a_retry_later_code_keeps_the_session(caller, http, sandbox):
    audio, sid = pcm(4000), new_session_id()
    first, last = chunks(audio, 2000)
    caller.call(TRANSMIT, chunk_params(sid, 1, first))
    configure(http, sandbox, {"kind": "code", "code": "FailedOperation.FailedGetSession",
                              "first_n": 1})  # fmt: skip
    faulted = caller.call(TRANSMIT, chunk_params(sid, 2, last, is_end=True))
    assert error_code(faulted) == "FailedOperation.FailedGetSession"
    again = caller.call(TRANSMIT, chunk_params(sid, 2, last, is_end=True))
    assert score_fields(again) == score_fields(score(audio, REF_TEXT, 1, 1.0))
    assert snapshot(sandbox)["dropped"] == {}


@pytest.mark.parametrize("code", ["FailedOperation.FailedSetSession", "InternalError.NeedToInit"])
def test_an_initialise_again_code_drops_the_session(caller, http, sandbox, code):
    audio, sid = pcm(4000), new_session_id()
    first, last = chunks(audio, 2000)
    caller.call(TRANSMIT, chunk_params(sid, 1, first))
    configure(http, sandbox, {"kind": "code", "code": code, "first_n": 1})
    assert error_code(caller.call(TRANSMIT, chunk_params(sid, 2, last, is_end=True))) == code
    assert sid not in snapshot(sandbox)["sessions"] and snapshot(sandbox)["dropped"] == {sid: code}
    # Going on with the same SessionId, from where it was or from the start, hears it again.
    assert error_code(caller.call(TRANSMIT, chunk_params(sid, 2, last, is_end=True))) == code
    assert error_code(caller.call(TRANSMIT, chunk_params(sid, 1, first))) == code
    assert error_code(caller.call(TRANSMIT, {"SessionId": sid, "IsQuery": 1})) == code
    # A new session scores the audio.
    new = new_session_id()
    caller.call(TRANSMIT, chunk_params(new, 1, first))
    final = caller.call(TRANSMIT, chunk_params(new, 2, last, is_end=True))
    assert score_fields(final) == score_fields(score(audio, REF_TEXT, 1, 1.0))
    assert sandbox.stats()["accepted"]["soe"] == {new: 1}


def test_the_session_gone_codes_are_those_the_sdk_describes_so():
    """"请重新初始化" (initialise again), or a session not found, released or not initialised."""
    soe = error_codes("soe")
    assert SESSION_GONE_CODES <= set(soe)
    says_gone = {
        code for code, text in soe.items()
        if "重新初始化" in text or "会话没有找到" in text or "没有初始化" in text
        or "没有进行初始化" in text
    }  # fmt: skip
    assert says_gone == SESSION_GONE_CODES


def test_the_client_starts_a_new_session_for_every_code_that_drops_one():
    restart = {c for c in SESSION_GONE_CODES if SoeClient.classify(c)[0] is Disposition.RESTART}
    # Those that ask to change the input first fail the check instead.
    assert SESSION_GONE_CODES - restart == {
        "FailedOperation.FailedInit", "InvalidParameterValue.RefTextLimitExceeded"}


def test_a_list_of_codes_is_drawn_from_by_the_seeded_plan(caller, http, sandbox):
    codes = ["FailedOperation.FailedGetUser", "FailedOperation.JsonCodecError"]
    configure(http, sandbox, {"kind": "code", "code": codes, "service": "soe"})
    seen = [error_code(caller.call(TRANSMIT, chunk_params(new_session_id(), 1, pcm(10))))
            for _ in range(20)]  # fmt: skip
    assert set(seen) == set(codes)


def test_the_client_reads_a_code_fault_like_the_vendors_answer(sandbox, credentials, http):
    configure(http, sandbox, {"kind": "code", "code": "ResourceUnavailable.NoConversationFound",
                              "first_n": 1})  # fmt: skip
    client = SoeClient(sandbox.url, credentials, timeout=5)
    with pytest.raises(VendorError) as caught:
        client.transmit_with_init(new_session_id(), 1, True, pcm(100), SoeParams("red"))
    assert caught.value.disposition is Disposition.RESTART


@pytest.mark.parametrize(
    "rule",
    [
        {"kind": "code"},  # no code
        {"kind": "code", "code": ""},
        {"kind": "code", "code": []},
        {"kind": "code", "code": [1]},
        {"kind": "throttle", "code": "RequestLimitExceeded"},  # a code only with kind "code"
    ],
)
def test_bad_code_rules_are_refused(http, sandbox, rule):
    response = http.post(sandbox.url + "/_sandbox/config", json={"faults": [rule]})
    assert response.status_code == 400 and response.json()["ok"] is False


def test_a_code_fault_on_a_vendor_without_api_codes_is_http_503(http, sandbox):
    configure(http, sandbox, {"kind": "code", "code": "InternalError", "service": "shumei"})
    response = http.post(sandbox.url + "/audio/v4", json={}, timeout=5)
    assert response.status_code == 503
