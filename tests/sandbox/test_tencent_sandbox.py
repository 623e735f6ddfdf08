"""The API 3.0 front door: TC3 verification and dispatch, with our signer over a real socket."""

from __future__ import annotations

import json
import secrets
import time

import pytest

from sandbox.core import SandboxConfig
from sandbox.server import SandboxThread
from tests.sandbox.helpers import TencentCaller, chunk_params, error_code, new_session_id, pcm
from vendors.tc3 import UNSIGNED_PAYLOAD, Credentials, TC3Signer

TRANSMIT = "TransmitOralProcessWithInit"


def one_chunk() -> dict:
    return chunk_params(new_session_id(), 1, pcm(100), is_end=True)


def test_a_correctly_signed_call_is_answered(caller):
    response = caller.call(TRANSMIT, one_chunk())
    assert response["Status"] == "Finished" and response["RequestId"]


def test_answers_are_json_with_the_content_type_the_sdk_checks(caller):
    response = caller.post(TRANSMIT, one_chunk())
    assert response.headers["Content-Type"] == "application/json"


def test_wrong_secret_key_is_a_signature_failure(caller, credentials):
    caller.credentials = Credentials(credentials.secret_id, secrets.token_hex(20))
    assert error_code(caller.call(TRANSMIT, one_chunk())) == "AuthFailure.SignatureFailure"


def test_unknown_secret_id_is_rejected(caller):
    caller.credentials = Credentials("AKID" + secrets.token_hex(16), secrets.token_hex(20))
    assert error_code(caller.call(TRANSMIT, one_chunk())) == "AuthFailure.SecretIdNotFound"


def test_altered_body_is_a_signature_failure(caller, sandbox):
    params = one_chunk()
    altered = json.dumps({**params, "RefText": "something else"}).encode()
    assert (
        error_code(caller.post(TRANSMIT, params, body=altered).json()["Response"])
        == "AuthFailure.SignatureFailure"
    )
    assert sandbox.stats()["services"]["soe"]["sessions"] == {}


@pytest.mark.parametrize("skew", [-301, 301, -3600])
def test_stale_or_future_timestamp_is_expired(caller, skew):
    response = caller.call(TRANSMIT, one_chunk(), timestamp=int(time.time()) + skew)
    assert error_code(response) == "AuthFailure.SignatureExpire"


def test_timestamp_inside_the_tolerance_is_accepted(caller):
    assert "Error" not in caller.call(TRANSMIT, one_chunk(), timestamp=int(time.time()) - 250)


def test_altered_header_after_signing_is_a_signature_failure(caller):
    response = caller.call(TRANSMIT, one_chunk(), **{"Content-Type": "application/json"})
    assert error_code(response) == "AuthFailure.SignatureFailure"


def test_malformed_authorization_is_rejected(caller):
    response = caller.call(TRANSMIT, one_chunk(), Authorization="Bearer nothing")
    assert error_code(response) == "AuthFailure.InvalidAuthorization"


def test_the_signature_covers_the_requests_own_path(caller):
    assert "Error" not in caller.call(TRANSMIT, one_chunk(), path="/soe")


def test_unsigned_payload_is_honoured(caller, credentials):
    params = one_chunk()
    payload = json.dumps(params).encode()
    signer, now = TC3Signer(credentials, "soe"), int(time.time())
    headers = signer.headers(
        host=caller.host, action=TRANSMIT, version="2018-07-24", payload=payload, timestamp=now
    )
    headers["Authorization"] = signer.sign(
        host=caller.host, payload=payload, timestamp=now, unsigned_payload=True
    )
    assert error_code(caller.call(TRANSMIT, params, **headers)) == "AuthFailure.SignatureFailure"
    headers["X-TC-Content-SHA256"] = UNSIGNED_PAYLOAD
    assert "Error" not in caller.call(TRANSMIT, params, **headers)


def test_unknown_action_and_version(caller):
    assert error_code(caller.call("DescribeNothing", one_chunk())) == "InvalidAction"
    assert (
        error_code(caller.call(TRANSMIT, one_chunk(), **{"X-TC-Version": "2017-01-01"}))
        == "NoSuchVersion"
    )


def test_unknown_product_in_the_credential_scope(caller):
    caller.service = "cvm"
    assert error_code(caller.call(TRANSMIT, one_chunk())) == "AuthFailure.InvalidAuthorization"


def test_a_signed_body_that_is_not_a_json_object_is_an_invalid_parameter(caller, credentials):
    payload = b"[1, 2]"
    headers = TC3Signer(credentials, "soe").headers(
        host=caller.host,
        action=TRANSMIT,
        version="2018-07-24",
        payload=payload,
        timestamp=int(time.time()),
    )
    response = caller.http.post(caller.url + "/", data=payload, headers=headers)
    assert error_code(response.json()["Response"]) == "InvalidParameter"


def test_requests_without_an_action_are_not_found(http, sandbox):
    assert http.post(sandbox.url + "/", data=b"{}").status_code == 404


def test_sts_token_is_checked_when_configured(credentials, http):
    token = secrets.token_hex(24)
    config = SandboxConfig(
        tencent_secret_id=credentials.secret_id,
        tencent_secret_key=credentials.secret_key,
        tencent_token=token,
    )
    with SandboxThread(config) as sandbox:
        with_token = TencentCaller(
            sandbox.url, Credentials(credentials.secret_id, credentials.secret_key, token), http
        )
        assert "Error" not in with_token.call(TRANSMIT, one_chunk())
        wrong = TencentCaller(
            sandbox.url, Credentials(credentials.secret_id, credentials.secret_key, "x"), http
        )
        assert error_code(wrong.call(TRANSMIT, one_chunk())) == "AuthFailure.TokenFailure"
        missing = TencentCaller(sandbox.url, credentials, http)
        assert error_code(missing.call(TRANSMIT, one_chunk())) == "AuthFailure.TokenFailure"
