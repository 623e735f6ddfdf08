"""Every request body the project can build, checked against the official SDKs' request
models: each field exists in the action's model, and each value has the model's JSON type.

The SOE and GME clients are driven through their action methods with a recording
``post``, so the body checked is the one that would go on the wire, under the model the
``X-TC-Action`` header names, for every combination of the options the code can produce.
"""

from __future__ import annotations

import itertools
import json

import pytest

from tests.vendors.sdk_oracle import field_types, problems
from vendors import http
from vendors.gme import GmeClient, GmeTask
from vendors.soe import EVAL_MODES, SERVER_TYPES, VOICE_FILE_TYPES, SoeClient, SoeParams
from vendors.tc3 import Credentials

CREDS = Credentials("AKID-test-not-real", "test-key-not-a-secret")
ANSWERS = {  # the smallest answer each action's parser takes
    "TransmitOralProcessWithInit": {"SessionId": "s", "Status": "Finished", "SuggestedScore": 1},
    "TransmitOralProcess": {"SessionId": "s", "Status": "Finished", "SuggestedScore": 1},
    "InitOralProcess": {"SessionId": "s"},
    "KeywordEvaluate": {"SessionId": "s", "KeywordScores": []},
    "ScanVoice": {"Data": []},
    "DescribeScanResultList": {"Data": []},
}


class Recorder:
    """A ``post`` that keeps ``(service, action, body)`` of each call and answers success."""

    def __init__(self, service: str) -> None:
        self.service = service
        self.sent: list[tuple[str, str, dict]] = []

    def __call__(self, vendor, url, *, data, headers, timeout):
        action = headers["X-TC-Action"]
        self.sent.append((self.service, action, json.loads(data)))
        body = {"Response": {**ANSWERS[action], "RequestId": "r"}}
        return http.Response(200, json.dumps(body).encode(), {"Content-Type": "application/json"})


def refused(sent: list[tuple[str, str, dict]]) -> list[str]:
    """What the SDK's models refuse, over every recorded body (distinct bodies once)."""
    seen: dict[str, tuple[str, str, dict]] = {}
    for service, action, body in sent:
        seen.setdefault(json.dumps([service, action, body], sort_keys=True), (service, action, body))
    found = []
    for service, action, body in seen.values():
        found += [f"{action}: {p} in {body}" for p in problems(service, f"{action}Request", body)]
    return found


def assert_sdk_accepts(sent: list[tuple[str, str, dict]]) -> None:
    assert sent, "nothing was sent"
    found = refused(sent)
    assert not found, f"{len(found)} refusals, e.g.\n" + "\n".join(found[:10])


# -- SOE ---------------------------------------------------------------------------------
def soe_params() -> list[SoeParams]:
    """Every SoeParams the code builds: each eval mode, language, file type, a whole and a
    fractional coefficient, and each of the optional switches, in every combination; made
    as tasks/soe.py makes them and as the manifest names them."""
    made = []
    for mode, lang, ext, coeff, text_mode, sentences, is_async in itertools.product(
        EVAL_MODES, SERVER_TYPES, sorted(VOICE_FILE_TYPES), (1.0, 2.5, 4), (0, 1), (0, 1), (0, 1)
    ):
        extra = {"text_mode": text_mode, "sentence_info_enabled": sentences, "is_async": is_async}
        made.append(SoeParams.from_manifest(
            "红色 red", mode=mode, lang=lang, audio=f"a{ext}", score_coeff=coeff, **extra))
    made.append(SoeParams(ref_text="", eval_mode=3))  # free speech: no reference text
    made.append(SoeParams("x", eval_mode=1, score_coeff=float("2"), server_type=1, voice_file_type=2))
    return made


@pytest.fixture(scope="module")
def params() -> list[SoeParams]:
    return soe_params()


def soe_client(recorder: Recorder, app_id: str | None) -> SoeClient:
    return SoeClient("https://soe.tencentcloudapi.com", CREDS, app_id=app_id, post=recorder)


APP_IDS = (None, "soe-app-1")
CHUNKS = ((1, False, b"RIFF\x00\x00\x00\x00WAVE"), (3000, True, b"\x01\x02"))


@pytest.mark.parametrize("app_id", APP_IDS)
def test_transmit_oral_process_with_init(params, app_id):
    recorder = Recorder("soe")
    client = soe_client(recorder, app_id)
    for p, (seq, end, data), work_mode, query in itertools.product(params, CHUNKS, (0, 1), (False, True)):
        client.transmit_with_init("sess-1", seq, end, data, p, work_mode=work_mode, is_query=query)
    assert {a for _, a, _ in recorder.sent} == {"TransmitOralProcessWithInit"}
    assert_sdk_accepts(recorder.sent)


@pytest.mark.parametrize("app_id", APP_IDS)
def test_query(params, app_id):
    recorder = Recorder("soe")
    client = soe_client(recorder, app_id)
    for p, work_mode in itertools.product(params, (0, 1)):
        client.query("sess-1", p, work_mode=work_mode)
    for p, words in itertools.product(params, (["red"], ["red", "红色"])):  # a keyword session's
        client.query("kw-1", p, keywords=words)
    assert {a for _, a, _ in recorder.sent} == {"TransmitOralProcessWithInit", "KeywordEvaluate"}
    assert_sdk_accepts(recorder.sent)


@pytest.mark.parametrize("app_id", APP_IDS)
def test_init_oral_process_then_transmit_oral_process(params, app_id):
    recorder = Recorder("soe")
    client = soe_client(recorder, app_id)
    for p, work_mode in itertools.product(params, (0, 1)):
        client.init_oral_process("sess-1", p, work_mode=work_mode)
    for file_type, (seq, end, data), query in itertools.product(
        sorted(set(VOICE_FILE_TYPES.values())), CHUNKS, (False, True)
    ):
        client.transmit("sess-1", seq, end, data, voice_file_type=file_type, is_query=query)
    assert {a for _, a, _ in recorder.sent} == {"InitOralProcess", "TransmitOralProcess"}
    assert_sdk_accepts(recorder.sent)


@pytest.mark.parametrize("app_id", APP_IDS)
def test_keyword_evaluate(params, app_id):
    recorder = Recorder("soe")
    client = soe_client(recorder, app_id)
    for p, (seq, end, data), words, query in itertools.product(
            params, CHUNKS, (["red"], ["red", "红色"]), (False, True)):
        client.keyword_evaluate("kw-1", seq, end, data, words, p, is_query=query)
    assert {a for _, a, _ in recorder.sent} == {"KeywordEvaluate"}
    assert_sdk_accepts(recorder.sent)


# -- GME ---------------------------------------------------------------------------------
def gme_task_lists() -> list[list[GmeTask]]:
    url = "https://media.example/a.m4a"
    one = [GmeTask("d1", url), GmeTask("d2", url, room_id="room-1"),
           GmeTask("d3", url, open_id="user-1"), GmeTask("d4", url, "room-1", "user-1")]
    return [[task] for task in one] + [[GmeTask(f"d{i}", url, "r", "u") for i in range(100)]]


def test_scan_voice():
    recorder = Recorder("gme")
    client = GmeClient("https://gme.tencentcloudapi.com", CREDS, biz_id=1400000000, post=recorder)
    for tasks, live, callback, scenes, lang in itertools.product(
        gme_task_lists(), (False, True), (None, "https://hooks.example/callbacks/gme"),
        (("default",), ("default", "porn")), (None, "en", "zh"),
    ):
        client.scan_voice(tasks, live=live, callback=callback, scenes=scenes, lang=lang)
    assert_sdk_accepts(recorder.sent)


def test_describe_scan_result_list():
    recorder = Recorder("gme")
    client = GmeClient("https://gme.tencentcloudapi.com", CREDS, biz_id=1400000000, post=recorder)
    for ids, limit in itertools.product((["t1"], [f"t{i}" for i in range(100)]), (None, 1, 500)):
        client.describe_scan_results(ids, limit)
    assert_sdk_accepts(recorder.sent)


# -- the oracle itself -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"SeqId": "1"}, "SeqId: int, got str"),
        ({"SeqId": True}, "SeqId: int, got bool"),
        ({"Keywords": [{"RefText": "a", "ScoreCoeff": "1"}]}, "Keywords.0.ScoreCoeff: float, got str"),
        ({"IsEnd": 1.0}, "IsEnd: int, got float"),
        ({"SessionId": None}, "SessionId: null"),
        ({"Keywords": [{"RefText": "a", "Foo": 1}]}, "Keywords.0.Foo: Keyword has no such field"),
        ({"Keywords": {"RefText": "a"}}, "Keywords: list of Keyword, got dict"),
        ({"WorkMode": 0}, "WorkMode: KeywordEvaluateRequest has no such field"),
    ],
)
def test_the_oracle_refuses_what_the_models_refuse(body, problem):
    found = problems("soe", "KeywordEvaluateRequest", body)
    assert any(p.startswith(problem) for p in found), found


def test_the_oracle_reads_every_field_type_of_the_models_used():
    assert field_types("soe", "Keyword") == {
        "RefText": "str", "EvalMode": "int", "ScoreCoeff": "float", "ServerType": "int",
        "TextMode": "int",
    }
    assert field_types("gme", "ScanVoiceRequest")["Tasks"] == "list of Task"
