"""TC3-HMAC-SHA256: fixed vectors from the seed's worked example, and the official SDK as oracle.

The expected literals below were computed once with ``seed_sign`` (the seed's own
"外部签名" code, wrapped in a function) and pasted here; ``seed_sign`` re-derives
them in a test so a bad paste shows up.  The secret key is an obvious fake.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from typing import ClassVar

import pytest
from tencentcloud.common import credential
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.sign import Sign
from tencentcloud.soe.v20180724 import soe_client

from vendors.tc3 import (
    ALGORITHM,
    JSON_CONTENT_TYPE,
    SIGNED_HEADERS,
    UNSIGNED_PAYLOAD,
    Credentials,
    TC3Signer,
    parse_authorization,
    sha256_hex,
    utc_date,
)

SECRET_ID = "AKIDEXAMPLE-not-a-real-id"
SECRET_KEY = "test-key-not-a-secret"
HOST = "soe.tencentcloudapi.com"
SERVICE = "soe"
TIMESTAMP = 1551113065  # the seed's commented-out fixed timestamp
DATE = "2019-02-25"

# The seed's payload, byte for byte (TransmitOralProcessWithInit, one MP3 chunk).
SEED_PAYLOAD = (
    '{"SeqId": 1, "IsEnd": 1, "VoiceFileType": 3, "VoiceEncodeType": 1, "UserVoiceData": '
    '"//MoxAALuN4gAUkwAYQh1xWKzZAAMDZPRAKCRiYoJEEP/c4jHPJk0zAGA02ghGPERnaPZARHP8f+BkQQ/Cq'
    'jfIxQLhkl2RAz//MoxAwPgNqoAZp4ADtQSTWOF1F+AEmTEImdt6jsb6WhXxTCvtkfiVUSLYdfX7hHvulYVqR'
    'fAZ+XOecxF//ph/+HbmNezSs8//MoxAkO4Oq4y9pQACMIy2HqbczDokotX71inxey/+udQMhypprA6IdjTWZ'
    'Wb0/QeaAFihx9/dr6NrdmgLOhat/++GIFmkGq//MoxAgOOO7UAHvKcD4u3EwOF9XNMK99Nu9Malj/0ERAqKi'
    '6tqYOCnGMAYuPg4il3/+fNB4QBhqZkYLEFC36InsC0mtHtEHf//MoxAoNYPLQAIPScBN69jsHpVNf/FFkPLf'
    '/UQ5X6QoAgm+QLisHkaUGoJEMFc///21mX2f9aRil/+KtwSkZ0XEtUWAzE23n//MoxA8Q4OrAAHvecHuoXU9'
    'pmuMRsAAl5kxR+iGa25Xy5K5DZndk+5GjFi4ruA3Po3Y////6CJMIhNvYgUhIGXFlFdljblAF//MoxAYOOLc'
    'WXmrSTqAB3RCZhvPpqgorarEywEZfpMLiImr/EbP9oFSJ/tRkmWkyCqSB7////ZGIiBim4gD60h/bQ8PAPWC'
    'j//MoxAgNMK7dlGveTCGa8yD4Mq/3dFs2/HPQW1XSttIJyKLf22MNsUyxqRmPUuHgi0b////9eQ9wkusmAPB'
    'sncNhPkwKoUqn//MoxA4MyK7IAGteTC6OJRT0Ugvx6Ur7OCiUV3r9HnSoYlWVg6oBkf////vLEFNRFMnV8nA'
    'FvQwtRZv2MBA4/bybO662jmbd//MoxBUMWNrIAGvMcOK8QpNEgWIosuBaLtuJf9k8M////7UF2StBPfNK6hD'
    'gnRvqAyTP/SiQH8hU31/HJqzWg1N61Y0lmoYI//MoxB4NINbEAGvQcGCCb5XfJDJD///1PwmCwKnlG36HrNE'
    'a6iqFSihJgRArUoxkzNS9Nr7hnHzGj4peHNfx0dx3LDJ2SFjN//MoxCQMcMrEAIvMcFl0ir////A6xOIktb+'
    'mtyEzawnALISGYieXWnFQ5AFCGKxU3XkVteSTc2uUS0oUBAWA0eU+W/t/9QVD//MoxC0NKMa8KmIEcEDQPB2'
    'WBqDVr/8/52mU2Dx0NTL1rqQqpzzbAf/0iBIOu37LJ1HPQzcM7dkKXYXETT9ZXqET//UHZbrV//MoxDMMkN6'
    'QUNJEcCkoBAN01mbKkI1yPAyqjxXtZltKeAxYa4aAqf+eSGHFlLlKD6m2O9vnhi9qmO////s/+lVRTMnty4k'
    'e//MoxDsM0Dp4H1kQABcA/8JwUE/8ciCyT/8YceY5ETf/8RgchQJAcBKf/5OGEHIPMwJQTP//83QGHJdyTGH'
    'HmQP///yTJceB//MoxEIXmxqkAYdoAdL49B6EoTBLB4BaP////wtAwA80jQvqY+XDQvrKtXQiaPYkjALhtQT'
    'GjWUR4g9zGdfMjohS5vsRp3Xo//MoxB4UcuLQAYcoAb+onWzt9f+RhpFP7qevrbvcyIFMkVE+uYqgxxbzTrF'
    'aiZ27KGnYnMR+UYQwfHKYo78ih2r+1cO1qvRa//MoxAcNkp68AYIoAHv6P9ef7/qHBTqpfQWY1u230+YsSHE'
    '+2/2RH7SlnoAx0+tLJ/r6CcvMYWMVd9n66oKbdTGxwbruYXOO//MoxAsOchKQAYI4ACXC5rVY5PHD9jnod+a'
    'rRqj5hL80xXnzl9f+sgPH/uPP/+3lHRircOlTv5Fm0l+qx+zHquq7CjCgJhQE//MoxAwNqSGQA8MQAEkzN/+'
    'hjPq1W//qygIlAICFKAnvBpZ0sWPCV1WCpU6DQ87/Ue6vyUGiwNVMQU1FMy45OS41VVVVVVVV", "Session'
    'Id": "test_1432543", "RefText": "bick sdfad", "WorkMode": 1, "EvalMode": 1, "ScoreCo'
    'eff": 1}'
)
SEED_PAYLOAD_SHA256 = "09eef4982d2c3010fe70f43195a0880d165d3e794cdbbf18081a751ef4617cc2"

EXPECTED_CANONICAL_REQUEST = (
    "POST\n/\n\ncontent-type:application/json; charset=utf-8\nhost:soe.tencentcloudapi.com\n\n"
    "content-type;host\n" + SEED_PAYLOAD_SHA256
)
EXPECTED_CANONICAL_HASH = "8f4f8ba821d715af2563eebc6618e9482ddb30b8399e36a97e4532a8614b06ca"
EXPECTED_STRING_TO_SIGN = (
    "TC3-HMAC-SHA256\n1551113065\n2019-02-25/soe/tc3_request\n" + EXPECTED_CANONICAL_HASH
)
EXPECTED_SIGNATURE = "bef637cb4e30807216c4846b7de3ee00511627f4cfb02aaf85cdfe0030e3b84a"
EXPECTED_AUTHORIZATION = (
    "TC3-HMAC-SHA256 Credential=AKIDEXAMPLE-not-a-real-id/2019-02-25/soe/tc3_request, "
    "SignedHeaders=content-type;host, Signature=" + EXPECTED_SIGNATURE
)
# The same request with X-TC-Content-SHA256: UNSIGNED-PAYLOAD.
EXPECTED_UNSIGNED_CANONICAL_HASH = "6e89d94f9c8a0695643d76c59cd1166f787901a794fe7ead057277dcc253c7fd"
EXPECTED_UNSIGNED_SIGNATURE = "4f83ed08dd964817f0537f50d765df28f0e3a015aa5e202402258924e09c2e93"


def seed_sign(secret_id, secret_key, payload, timestamp, *, host=HOST, service=SERVICE,
              ct="application/json; charset=utf-8", payload_hash=None):
    """The seed's "外部签名" steps 1-4, unchanged but for the date (no utcfromtimestamp)."""
    algorithm = "TC3-HMAC-SHA256"
    date = time.strftime("%Y-%m-%d", time.gmtime(timestamp))
    canonical_headers = "content-type:%s\nhost:%s\n" % (ct, host)  # noqa: UP031  (the seed's line)
    signed_headers = "content-type;host"
    hashed_request_payload = payload_hash or hashlib.sha256(payload.encode("utf-8")).hexdigest()
    canonical_request = ("POST" + "\n" + "/" + "\n" + "" + "\n" + canonical_headers + "\n"
                         + signed_headers + "\n" + hashed_request_payload)
    credential_scope = date + "/" + service + "/" + "tc3_request"
    hashed_canonical_request = hashlib.sha256(canonical_request.encode("utf-8")).hexdigest()
    string_to_sign = (algorithm + "\n" + str(timestamp) + "\n" + credential_scope + "\n"
                      + hashed_canonical_request)

    def sign(key, msg):
        return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()

    secret_date = sign(("TC3" + secret_key).encode("utf-8"), date)
    secret_service = sign(secret_date, service)
    secret_signing = sign(secret_service, "tc3_request")
    signature = hmac.new(secret_signing, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
    authorization = (algorithm + " " + "Credential=" + secret_id + "/" + credential_scope + ", "
                     + "SignedHeaders=" + signed_headers + ", " + "Signature=" + signature)
    return {
        "canonical_request": canonical_request,
        "canonical_hash": hashed_canonical_request,
        "string_to_sign": string_to_sign,
        "signature": signature,
        "authorization": authorization,
    }


@pytest.fixture
def signer() -> TC3Signer:
    return TC3Signer(Credentials(SECRET_ID, SECRET_KEY), SERVICE)


# -- the seed's worked example, step by step ----------------------------------------


def test_payload_literal_is_the_seeds():
    assert sha256_hex(SEED_PAYLOAD) == SEED_PAYLOAD_SHA256
    assert json.loads(SEED_PAYLOAD)["SessionId"] == "test_1432543"


def test_independent_implementation_reproduces_the_literals():
    expected = seed_sign(SECRET_ID, SECRET_KEY, SEED_PAYLOAD, TIMESTAMP)
    assert expected["canonical_request"] == EXPECTED_CANONICAL_REQUEST
    assert expected["canonical_hash"] == EXPECTED_CANONICAL_HASH
    assert expected["string_to_sign"] == EXPECTED_STRING_TO_SIGN
    assert expected["signature"] == EXPECTED_SIGNATURE
    assert expected["authorization"] == EXPECTED_AUTHORIZATION


def test_utc_date():
    assert utc_date(TIMESTAMP) == DATE
    assert utc_date(1551139199) == "2019-02-25"  # 23:59:59 UTC, already the 26th in Beijing
    assert utc_date(1551139200) == "2019-02-26"


def test_step1_canonical_request(signer):
    canonical = signer.canonical_request(
        "POST", "/", "", JSON_CONTENT_TYPE, HOST, sha256_hex(SEED_PAYLOAD.encode()))
    assert canonical == EXPECTED_CANONICAL_REQUEST
    assert sha256_hex(canonical) == EXPECTED_CANONICAL_HASH


def test_step2_string_to_sign(signer):
    assert signer.credential_scope(DATE) == "2019-02-25/soe/tc3_request"
    assert signer.string_to_sign(TIMESTAMP, EXPECTED_CANONICAL_REQUEST) == EXPECTED_STRING_TO_SIGN


def test_step3_signature(signer):
    assert signer.signature(TIMESTAMP, EXPECTED_STRING_TO_SIGN) == EXPECTED_SIGNATURE


def test_step3_signing_key_chain(signer):
    k_date = hmac.new(b"TC3" + SECRET_KEY.encode(), DATE.encode(), hashlib.sha256).digest()
    k_service = hmac.new(k_date, b"soe", hashlib.sha256).digest()
    k_signing = hmac.new(k_service, b"tc3_request", hashlib.sha256).digest()
    assert signer.signing_key(DATE) == k_signing


def test_step4_authorization(signer):
    assert signer.authorization(TIMESTAMP, EXPECTED_SIGNATURE) == EXPECTED_AUTHORIZATION


def test_sign_runs_all_steps(signer):
    got = signer.sign(host=HOST, payload=SEED_PAYLOAD.encode("utf-8"), timestamp=TIMESTAMP)
    assert got == EXPECTED_AUTHORIZATION


def test_unsigned_payload_vector(signer):
    unsigned_hash = sha256_hex(UNSIGNED_PAYLOAD)
    expected = seed_sign(SECRET_ID, SECRET_KEY, SEED_PAYLOAD, TIMESTAMP, payload_hash=unsigned_hash)
    assert expected["canonical_hash"] == EXPECTED_UNSIGNED_CANONICAL_HASH
    assert expected["signature"] == EXPECTED_UNSIGNED_SIGNATURE
    got = signer.sign(host=HOST, payload=SEED_PAYLOAD.encode(), timestamp=TIMESTAMP,
                      unsigned_payload=True)
    assert parse_authorization(got)["signature"] == EXPECTED_UNSIGNED_SIGNATURE
    # the body is not covered: any payload gives the same signature
    assert signer.sign(host=HOST, payload=b"{}", timestamp=TIMESTAMP, unsigned_payload=True) == got


def test_signature_covers_host_uri_content_type_and_body(signer):
    base = {"host": HOST, "payload": SEED_PAYLOAD.encode(), "timestamp": TIMESTAMP}
    variants = [
        {**base, "host": "127.0.0.1:8700"},
        {**base, "uri": "/v3"},
        {**base, "content_type": "application/json"},
        {**base, "payload": SEED_PAYLOAD.encode() + b" "},
        {**base, "timestamp": TIMESTAMP + 1},
    ]
    signatures = {signer.sign(**v) for v in variants} | {signer.sign(**base)}
    assert len(signatures) == len(variants) + 1


def test_headers(signer):
    headers = signer.headers(host=HOST, action="TransmitOralProcessWithInit", version="2018-07-24",
                             payload=SEED_PAYLOAD.encode(), timestamp=TIMESTAMP)
    assert headers == {
        "Authorization": EXPECTED_AUTHORIZATION,
        "Content-Type": "application/json; charset=utf-8",
        "Host": HOST,
        "X-TC-Action": "TransmitOralProcessWithInit",
        "X-TC-Timestamp": "1551113065",
        "X-TC-Version": "2018-07-24",
    }


def test_headers_region_and_sts_token():
    signer = TC3Signer(Credentials(SECRET_ID, SECRET_KEY, token="sts-token-not-real"), SERVICE)
    headers = signer.headers(host=HOST, action="InitOralProcess", version="2018-07-24",
                             payload=b"{}", timestamp=TIMESTAMP, region="ap-guangzhou")
    assert headers["X-TC-Region"] == "ap-guangzhou"
    assert headers["X-TC-Token"] == "sts-token-not-real"


# -- the official SDK as oracle -------------------------------------------------------


def _random_case(case: int) -> tuple[str, int]:
    """A key and a timestamp made in the test (the last case's key is not ASCII)."""
    key = secrets.token_hex(20) if case < 7 else "中文-key-" + secrets.token_hex(4)
    return key, 1_000_000_000 + secrets.randbelow(1_500_000_000)


@pytest.mark.parametrize("case", range(8))  # ids that do not change between runs (pytest-xdist)
def test_signature_matches_sdk_sign_tc3(case):
    key, timestamp = _random_case(case)
    signer = TC3Signer(Credentials("AKIDrandom", key), SERVICE)
    canonical = signer.canonical_request("POST", "/", "", JSON_CONTENT_TYPE, HOST,
                                         sha256_hex(secrets.token_bytes(64)))
    string_to_sign = signer.string_to_sign(timestamp, canonical)
    expected = Sign.sign_tc3(key, utc_date(timestamp), SERVICE, string_to_sign)
    assert signer.signature(timestamp, string_to_sign) == expected


class _CapturedResponse:
    status_code = 200
    headers: ClassVar[dict[str, str]] = {"Content-Type": "application/json"}
    content = b'{"Response": {"RequestId": "req-1"}}'


def sdk_request(key: str, *, unsigned: bool, token: str | None = None, region: str = ""):
    """The request the official SDK would send (transport replaced by a capture)."""
    profile = ClientProfile()
    profile.httpProfile.endpoint = HOST
    profile.unsignedPayload = unsigned
    cred = credential.Credential("AKIDoracle", key, token)
    client = soe_client.SoeClient(cred, region, profile)
    captured = []
    client.request.send_request = lambda req: captured.append(req) or _CapturedResponse()
    params = {"SeqId": 1, "IsEnd": 1, "VoiceFileType": 2, "VoiceEncodeType": 1,
              "UserVoiceData": "UklGRg==", "SessionId": "s-1", "RefText": "红色 red",
              "WorkMode": 0, "EvalMode": 1, "ScoreCoeff": 1.0}
    client.call_json("TransmitOralProcessWithInit", params)
    return captured[0]


@pytest.mark.parametrize("unsigned", [False, True], ids=["signed-payload", "unsigned-payload"])
@pytest.mark.parametrize("token,region", [(None, ""), ("sts-token-not-real", "ap-guangzhou")])
def test_sdk_request_verifies_with_our_signer(unsigned, token, region):
    key = secrets.token_hex(20)
    req = sdk_request(key, unsigned=unsigned, token=token, region=region)
    headers = req.header
    assert (headers.get("X-TC-Content-SHA256") == UNSIGNED_PAYLOAD) is unsigned
    timestamp = int(headers["X-TC-Timestamp"])
    parsed = parse_authorization(headers["Authorization"])
    assert parsed == {"algorithm": ALGORITHM, "secret_id": "AKIDoracle", "date": utc_date(timestamp),
                      "service": SERVICE, "signed_headers": SIGNED_HEADERS,
                      "signature": parsed["signature"]}
    ours = TC3Signer(Credentials("AKIDoracle", key, token), SERVICE)
    recomputed = ours.sign(host=headers["Host"], payload=req.data.encode("utf-8"),
                           timestamp=timestamp, uri=req.uri, content_type=headers["Content-Type"],
                           unsigned_payload=unsigned)
    assert recomputed == headers["Authorization"]
    same = ours.headers(host=headers["Host"], action="TransmitOralProcessWithInit",
                        version="2018-07-24", payload=req.data.encode(), timestamp=timestamp,
                        region=region)
    for name in ("Host", "X-TC-Action", "X-TC-Version", "X-TC-Timestamp", "X-TC-Region",
                 "X-TC-Token"):
        assert same.get(name) == headers.get(name), name


def test_sdk_request_with_a_wrong_key_does_not_verify():
    req = sdk_request(secrets.token_hex(20), unsigned=False)
    ours = TC3Signer(Credentials("AKIDoracle", secrets.token_hex(20)), SERVICE)
    recomputed = ours.sign(host=req.header["Host"], payload=req.data.encode(),
                           timestamp=int(req.header["X-TC-Timestamp"]),
                           content_type=req.header["Content-Type"])
    assert recomputed != req.header["Authorization"]


# -- parse_authorization and Credentials ---------------------------------------------


def test_parse_authorization_round_trip():
    assert parse_authorization(EXPECTED_AUTHORIZATION) == {
        "algorithm": "TC3-HMAC-SHA256",
        "secret_id": SECRET_ID,
        "date": DATE,
        "service": "soe",
        "signed_headers": "content-type;host",
        "signature": EXPECTED_SIGNATURE,
    }


def test_parse_authorization_tolerates_spacing():
    spaced = EXPECTED_AUTHORIZATION.replace(", ", ",   ") + "  "
    assert parse_authorization(spaced)["signature"] == EXPECTED_SIGNATURE


@pytest.mark.parametrize("value", [
    "",
    "garbage",
    "TC3-HMAC-SHA256",
    "TC3-HMAC-SHA256 Credential=id/2019-02-25/soe/tc3_request, SignedHeaders=content-type;host",
    "TC3-HMAC-SHA256 SignedHeaders=content-type;host, Signature=abc",
    "TC3-HMAC-SHA256 Credential=id/2019-02-25/soe, SignedHeaders=a, Signature=abc",
    "TC3-HMAC-SHA256 Credential=id/2019-02-25/soe/other, SignedHeaders=a, Signature=abc",
])
def test_parse_authorization_rejects_malformed_headers(value):
    with pytest.raises(ValueError):
        parse_authorization(value)


def test_credentials_repr_hides_secrets():
    creds = Credentials("AKIDvisible", "very-secret-key-value", token="very-secret-token")
    for text in (repr(creds), str(creds), repr([creds]), f"{creds}"):
        assert "AKIDvisible" in text
        assert "very-secret-key-value" not in text
        assert "very-secret-token" not in text
