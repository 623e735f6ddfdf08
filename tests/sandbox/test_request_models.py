"""The sandbox checks request bodies as the real API does, against the official SDKs'
request models: ``UnknownParameter`` for a field the model lacks, ``InvalidParameter``
for a value of the wrong JSON type, both as HTTP 200 with the TC3 error envelope."""

from __future__ import annotations

import base64

import pytest

from sandbox.core import Sandbox, SandboxConfig
from sandbox.gme import GmeService
from sandbox.soe import SoeService
from sandbox.tencent_models import MODELS
from tests.sandbox.helpers import new_session_id, pcm
from tests.sandbox.moderation_helpers import moderation_config
from tests.vendors.sdk_oracle import field_types, problems
from vendors.errors import VendorError
from vendors.gme import GmeClient
from vendors.soe import SoeClient

SERVICES = {"soe": SoeService, "gme": GmeService}


@pytest.mark.parametrize(
    ("service", "model"), [(s, m) for s, models in MODELS.items() for m in sorted(models)]
)
def test_the_sandbox_models_are_the_sdk_models(service, model):
    assert MODELS[service][model] == field_types(service, model)


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_every_action_the_sandbox_serves_is_checked_against_its_model(service):
    actions = SERVICES[service](Sandbox(SandboxConfig())).actions
    assert {f"{a}Request" for a in actions} <= set(MODELS[service])


@pytest.fixture
def config(credentials):
    return moderation_config(credentials)


@pytest.fixture
def soe(sandbox, credentials) -> SoeClient:
    return SoeClient(sandbox.url, credentials, timeout=5)


@pytest.fixture
def gme(sandbox, credentials, config) -> GmeClient:
    return GmeClient(sandbox.url, credentials, biz_id=config.gme_biz_id, timeout=5)


def refusal(client, action: str, body: dict) -> tuple[str | None, int | None, str]:
    with pytest.raises(VendorError) as caught:
        client.call(action, body)
    return caught.value.code, caught.value.status, caught.value.message


def chunk(**fields) -> dict:
    return {
        "SeqId": 1, "IsEnd": 1, "VoiceFileType": 1, "VoiceEncodeType": 1,
        "UserVoiceData": base64.b64encode(pcm(100)).decode(), "SessionId": new_session_id(),
    } | fields  # fmt: skip


SOE_BODIES = {
    "TransmitOralProcessWithInit": chunk(RefText="red", WorkMode=0, EvalMode=1, ScoreCoeff=1.0),
    "InitOralProcess": {"SessionId": new_session_id(), "RefText": "red", "WorkMode": 1},
    "TransmitOralProcess": chunk(),
    "KeywordEvaluate": chunk(Keywords=[{"RefText": "red", "EvalMode": 0}]),
}
GME_BODIES = {
    "ScanVoice": {"Scenes": ["default"], "Live": False,
                  "Tasks": [{"DataId": "d1", "Url": "https://media.example/a.mp3"}]},
    "DescribeScanResultList": {"TaskIdList": ["t1"], "Limit": 10},
}  # fmt: skip

# (action, a change to its valid body, the code, the field the message names)
SOE_REFUSED = [
    ("TransmitOralProcessWithInit", {"Lang": "en"}, "UnknownParameter", "Lang"),
    ("TransmitOralProcessWithInit", {"SeqId": "1"}, "InvalidParameter", "SeqId"),
    ("TransmitOralProcessWithInit", {"IsEnd": True}, "InvalidParameter", "IsEnd"),
    ("TransmitOralProcessWithInit", {"ScoreCoeff": "1.0"}, "InvalidParameter", "ScoreCoeff"),
    ("TransmitOralProcessWithInit", {"SessionId": 7}, "InvalidParameter", "SessionId"),
    ("InitOralProcess", {"SeqId": 1}, "UnknownParameter", "SeqId"),
    ("InitOralProcess", {"WorkMode": 1.5}, "InvalidParameter", "WorkMode"),
    ("TransmitOralProcess", {"RefText": "red"}, "UnknownParameter", "RefText"),
    ("TransmitOralProcess", {"IsQuery": "0"}, "InvalidParameter", "IsQuery"),
    ("KeywordEvaluate", {"Keywords": [{"RefText": "red", "Word": "x"}]}, "UnknownParameter",
     "Keywords.0.Word"),
    ("KeywordEvaluate", {"Keywords": [{"RefText": "red", "ScoreCoeff": "2"}]},
     "InvalidParameter", "Keywords.0.ScoreCoeff"),
    ("KeywordEvaluate", {"Keywords": {"RefText": "red"}}, "InvalidParameter", "Keywords"),
]  # fmt: skip
GME_REFUSED = [
    ("ScanVoice", {"Language": "en"}, "UnknownParameter", "Language"),
    ("ScanVoice", {"Live": "false"}, "InvalidParameter", "Live"),
    ("ScanVoice", {"Scenes": "default"}, "InvalidParameter", "Scenes"),
    ("ScanVoice", {"Tasks": [{"DataId": "d1", "Url": "https://m/a.mp3", "Room": "r"}]},
     "UnknownParameter", "Tasks.0.Room"),
    ("ScanVoice", {"Tasks": [{"DataId": 1, "Url": "https://m/a.mp3"}]}, "InvalidParameter",
     "Tasks.0.DataId"),
    ("DescribeScanResultList", {"TaskIdList": "t1"}, "InvalidParameter", "TaskIdList"),
    ("DescribeScanResultList", {"Limit": "10"}, "InvalidParameter", "Limit"),
    ("DescribeScanResultList", {"Offset": 0}, "UnknownParameter", "Offset"),
]  # fmt: skip


@pytest.mark.parametrize(("action", "change", "code", "field"), SOE_REFUSED)
def test_soe_refuses_what_the_sdk_models_refuse(soe, sandbox, action, change, code, field):
    body = SOE_BODIES[action] | change
    assert problems("soe", f"{action}Request", body)  # the SDK's model refuses it too
    got_code, status, message = refusal(soe, action, body)
    assert (got_code, status) == (code, 200) and f"`{field}`" in message
    assert sandbox.stats()["services"]["soe"]["sessions"] == {}  # refused before any state


@pytest.mark.parametrize(("action", "change", "code", "field"), GME_REFUSED)
def test_gme_refuses_what_the_sdk_models_refuse(gme, sandbox, action, change, code, field):
    body = {"BizId": gme.biz_id} | GME_BODIES[action] | change
    assert problems("gme", f"{action}Request", body)
    got_code, status, message = refusal(gme, action, body)
    assert (got_code, status) == (code, 200) and f"`{field}`" in message
    assert sandbox.stats()["services"]["gme"]["tasks"] == {}


@pytest.mark.parametrize("action", sorted(SOE_BODIES))
def test_soe_takes_the_bodies_the_sdk_models_take(soe, action):
    body = SOE_BODIES[action] | {"SessionId": new_session_id()}
    assert problems("soe", f"{action}Request", body) == []
    if action == "TransmitOralProcess":  # needs its session first
        soe.call("InitOralProcess", {"SessionId": body["SessionId"], "RefText": "red", "WorkMode": 1})
    assert "Error" not in soe.call(action, body)


@pytest.mark.parametrize("action", sorted(GME_BODIES))
def test_gme_takes_the_bodies_the_sdk_models_take(gme, action):
    body = {"BizId": gme.biz_id} | GME_BODIES[action]
    assert problems("gme", f"{action}Request", body) == []
    assert "Data" in gme.call(action, body)


def test_null_is_taken_as_absent_and_the_action_decides(soe):
    body = SOE_BODIES["TransmitOralProcessWithInit"] | {"SessionId": None}
    assert refusal(soe, "TransmitOralProcessWithInit", body)[0] == "MissingParameter"
