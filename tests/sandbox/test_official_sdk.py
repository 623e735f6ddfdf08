"""The official Tencent Cloud SDK against the sandbox: its signer, its headers, its loop.

An emulator that only ever sees our own signer cannot catch a signer bug; these tests
drive the sandbox with ``tencentcloud-sdk-python`` exactly as the seed document does.
"""

from __future__ import annotations

import base64
import json
import secrets
import uuid
from collections.abc import Iterator

import pytest
from tencentcloud.common import credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.soe.v20180724 import models, soe_client

from sandbox.core import SandboxConfig
from sandbox.server import SandboxThread
from sandbox.soe import keyword_scores, score
from tests.sandbox.helpers import pcm, score_fields, wav
from vendors.tc3 import Credentials


def make_client(
    sandbox: SandboxThread, cred: credential.Credential, unsigned: bool = True
) -> soe_client.SoeClient:
    http_profile = HttpProfile(
        protocol="http", endpoint=sandbox.url.split("://", 1)[1], reqTimeout=10
    )
    profile = ClientProfile(signMethod="TC3-HMAC-SHA256", httpProfile=http_profile)
    profile.unsignedPayload = unsigned
    return soe_client.SoeClient(cred, "", profile)


@pytest.fixture
def clients() -> Iterator[list[soe_client.SoeClient]]:
    made: list[soe_client.SoeClient] = []
    yield made
    for client in made:
        client.request.conn._session.close()


@pytest.fixture
def sdk(sandbox, credentials: Credentials, clients) -> soe_client.SoeClient:
    client = make_client(
        sandbox, credential.Credential(credentials.secret_id, credentials.secret_key)
    )
    clients.append(client)
    return client


def seed_loop(
    client: soe_client.SoeClient,
    content: bytes,
    slice_num: int,
    voice_file_type: int,
    ref_text: str,
) -> list:
    """The seed's TransmitOralProcessWithInit loop, nearly verbatim."""
    session_id = str(uuid.uuid1())
    content_len = len(content)
    pkg_num = content_len / slice_num + (content_len % slice_num != 0)
    cur_pos, responses = 0, []
    for j in range(int(pkg_num)):
        if j == int(pkg_num) - 1:
            send_content, cur_pos, is_end = content[cur_pos:content_len], content_len, 1
        else:
            send_content, is_end = content[cur_pos : cur_pos + slice_num], 0
            cur_pos += slice_num
        req = models.TransmitOralProcessWithInitRequest()
        req.SeqId = j + 1
        req.IsEnd = is_end
        req.VoiceFileType = voice_file_type
        req.VoiceEncodeType = 1
        req.UserVoiceData = base64.b64encode(send_content).decode()
        req.RefText = ref_text
        req.WorkMode = 0
        req.EvalMode = 1
        req.ScoreCoeff = 1
        req.SessionId = session_id
        req.StorageMode = 0
        req.SentenceInfoEnabled = 0
        req.ServerType = 0
        req.IsAsync = 0
        req.IsQuery = 0
        req.TextMode = 0
        responses.append(client.TransmitOralProcessWithInit(req))
    return responses


def as_fields(response) -> dict:
    return {
        "SuggestedScore": response.SuggestedScore,
        "PronAccuracy": response.PronAccuracy,
        "PronFluency": response.PronFluency,
        "PronCompletion": response.PronCompletion,
        "Words": [
            {
                "Word": w.Word,
                "PronAccuracy": w.PronAccuracy,
                "PronFluency": w.PronFluency,
                "MatchTag": w.MatchTag,
                "MemBeginTime": w.MemBeginTime,
                "MemEndTime": w.MemEndTime,
                "PhoneInfos": [],
            }
            for w in response.Words
        ],
    }


def test_seed_chunked_loop_with_the_sdk_finishes_with_the_expected_score(sdk, sandbox):
    audio = wav(16000 * 2)  # 2 s of 16 kHz 16-bit mono: seven 10 KB chunks
    responses = seed_loop(sdk, audio, 10 * 1024, voice_file_type=2, ref_text="red")
    assert [r.Status for r in responses] == ["Evaluating"] * (len(responses) - 1) + ["Finished"]
    assert as_fields(responses[-1]) == score_fields(score(audio, "red", 1, 1.0))
    assert sandbox.stats()["requests"] == {"soe.TransmitOralProcessWithInit": len(responses)}


def test_sdk_with_a_signed_payload_is_accepted_too(sandbox, credentials, clients):
    client = make_client(
        sandbox,
        credential.Credential(credentials.secret_id, credentials.secret_key),
        unsigned=False,
    )
    clients.append(client)
    audio = pcm(5000)
    assert (
        seed_loop(client, audio, 2048, voice_file_type=1, ref_text="red")[-1].Status == "Finished"
    )


def test_sdk_sees_vendor_errors_as_exceptions_with_the_code(sandbox, credentials, clients):
    client = make_client(
        sandbox, credential.Credential(credentials.secret_id, secrets.token_hex(20))
    )
    clients.append(client)
    with pytest.raises(TencentCloudSDKException) as caught:
        seed_loop(client, pcm(100), 1024, voice_file_type=1, ref_text="red")
    assert caught.value.code == "AuthFailure.SignatureFailure" and caught.value.requestId


def test_sdk_sees_throttling(sdk, sandbox, http):
    http.post(
        sandbox.url + "/_sandbox/config", json={"faults": [{"kind": "throttle", "first_n": 1}]}
    )
    with pytest.raises(TencentCloudSDKException) as caught:
        seed_loop(sdk, pcm(100), 1024, voice_file_type=1, ref_text="red")
    assert caught.value.code == "RequestLimitExceeded"


def test_sdk_init_then_one_shot_transmit(sdk):
    session_id, audio = str(uuid.uuid1()), pcm(8000)
    req = models.InitOralProcessRequest()
    req.SessionId, req.RefText, req.WorkMode, req.EvalMode, req.ScoreCoeff = (
        session_id,
        "captain",
        1,
        1,
        1,
    )
    req.ServerType, req.IsAsync, req.TextMode, req.IsLongLifeSession = 0, 0, 0, 0
    assert sdk.InitOralProcess(req).SessionId == session_id
    tran = models.TransmitOralProcessRequest()
    tran.SeqId, tran.IsEnd, tran.VoiceFileType, tran.VoiceEncodeType = 1, 1, 3, 1
    tran.UserVoiceData, tran.SessionId, tran.IsLongLifeSession, tran.IsQuery = (
        base64.b64encode(audio).decode(),
        session_id,
        1,
        0,
    )
    response = sdk.TransmitOralProcess(tran)
    assert response.Status == "Finished"
    assert as_fields(response) == score_fields(score(audio, "captain", 1, 1.0))


def test_sdk_keyword_evaluate(sdk):
    session_id, audio = str(uuid.uuid1()), pcm(3000)
    keywords = [
        {"RefText": "red", "EvalMode": 0, "ServerType": 0, "TextMode": 0},
        {"RefText": "红色", "EvalMode": 1, "ServerType": 1, "TextMode": 0},
    ]
    parts = [audio[i : i + 1024] for i in range(0, len(audio), 1024)]
    for j, part in enumerate(parts):
        req = models.KeywordEvaluateRequest()
        req.from_json_string(
            json.dumps(
                {
                    "SeqId": j + 1,
                    "IsEnd": int(j == len(parts) - 1),
                    "VoiceFileType": 1,
                    "VoiceEncodeType": 1,
                    "UserVoiceData": base64.b64encode(part).decode(),
                    "SessionId": session_id,
                    "IsQuery": 0,
                    "Keywords": keywords,
                }
            )
        )
        response = sdk.KeywordEvaluate(req)
    got = [(k.Keyword, k.SuggestedScore, k.PronAccuracy) for k in response.KeywordScores]
    assert got == [
        (k["Keyword"], k["SuggestedScore"], k["PronAccuracy"])
        for k in keyword_scores(audio, keywords)
    ]


def test_sdk_with_sts_token(credentials, clients):
    token = secrets.token_hex(24)
    config = SandboxConfig(
        tencent_secret_id=credentials.secret_id,
        tencent_secret_key=credentials.secret_key,
        tencent_token=token,
    )
    with SandboxThread(config) as sandbox:
        client = make_client(
            sandbox, credential.Credential(credentials.secret_id, credentials.secret_key, token)
        )
        clients.append(client)
        assert (
            seed_loop(client, pcm(100), 1024, voice_file_type=1, ref_text="red")[-1].Status
            == "Finished"
        )
