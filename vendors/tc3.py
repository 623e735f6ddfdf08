"""TC3-HMAC-SHA256, the signature of Tencent Cloud API 3.0 (SOE, GME).

Each step of the seed's "外部签名" section is its own method so that tests can
check them one by one against fixed vectors, and so the sandbox can verify a
request by recomputing the same steps from what arrived on the wire.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import time
from dataclasses import dataclass

ALGORITHM = "TC3-HMAC-SHA256"
SIGNED_HEADERS = "content-type;host"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
JSON_CONTENT_TYPE = "application/json; charset=utf-8"


def _hmac_sha256(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()


def sha256_hex(data: bytes | str) -> str:
    if isinstance(data, str):
        data = data.encode("utf-8")
    return hashlib.sha256(data).hexdigest()


def utc_date(timestamp: int) -> str:
    return _utc_day(timestamp // 86400)


@functools.lru_cache(maxsize=8)
def _utc_day(day: int) -> str:  # every request of a day formats the same date: once
    return time.strftime("%Y-%m-%d", time.gmtime(day * 86400))


@functools.lru_cache(maxsize=64)
def _derived_key(secret_key: str, service: str, date: str) -> bytes:
    """Step 3's key chain, the same for every request of one day, service and key: derived once."""
    key = _hmac_sha256(("TC3" + secret_key).encode("utf-8"), date)
    key = _hmac_sha256(key, service)
    return _hmac_sha256(key, "tc3_request")


@dataclass(frozen=True)
class Credentials:
    secret_id: str
    secret_key: str
    token: str | None = None  # STS temporary credentials only

    def __repr__(self) -> str:  # never print the key
        return f"Credentials(secret_id={self.secret_id!r}, secret_key='***')"


class TC3Signer:
    """Signs one Tencent Cloud API 3.0 request for one service (``soe``, ``gme``)."""

    def __init__(self, credentials: Credentials, service: str) -> None:
        self.credentials = credentials
        self.service = service

    # -- step 1 -----------------------------------------------------------
    @staticmethod
    def canonical_request(
        method: str, uri: str, query: str, content_type: str, host: str, payload_hash: str
    ) -> str:
        canonical_headers = f"content-type:{content_type}\nhost:{host}\n"
        return "\n".join([method, uri, query, canonical_headers, SIGNED_HEADERS, payload_hash])  # noqa: FLY002  (the spec's six lines)

    # -- step 2 -----------------------------------------------------------
    def credential_scope(self, date: str) -> str:
        return f"{date}/{self.service}/tc3_request"

    def string_to_sign(self, timestamp: int, canonical_request: str) -> str:
        scope = self.credential_scope(utc_date(timestamp))
        return "\n".join([ALGORITHM, str(timestamp), scope, sha256_hex(canonical_request)])

    # -- step 3 -----------------------------------------------------------
    def signing_key(self, date: str) -> bytes:
        return _derived_key(self.credentials.secret_key, self.service, date)

    def signature(self, timestamp: int, string_to_sign: str) -> str:
        key = self.signing_key(utc_date(timestamp))
        return hmac.new(key, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()

    # -- step 4 -----------------------------------------------------------
    def authorization(self, timestamp: int, signature: str) -> str:
        scope = self.credential_scope(utc_date(timestamp))
        return (
            f"{ALGORITHM} Credential={self.credentials.secret_id}/{scope}, "
            f"SignedHeaders={SIGNED_HEADERS}, Signature={signature}"
        )

    # -- all steps ----------------------------------------------------------
    def sign(
        self,
        *,
        host: str,
        payload: bytes,
        timestamp: int,
        uri: str = "/",
        content_type: str = JSON_CONTENT_TYPE,
        unsigned_payload: bool = False,
    ) -> str:
        """Return the ``Authorization`` header for a POST of ``payload``."""
        payload_hash = sha256_hex(UNSIGNED_PAYLOAD if unsigned_payload else payload)
        canonical = self.canonical_request("POST", uri, "", content_type, host, payload_hash)
        return self.authorization(timestamp, self.signature(timestamp, self.string_to_sign(timestamp, canonical)))

    def headers(
        self,
        *,
        host: str,
        action: str,
        version: str,
        payload: bytes,
        timestamp: int,
        region: str = "",
        uri: str = "/",
    ) -> dict[str, str]:
        """All headers of a signed API 3.0 POST (``Content-Type`` through ``X-TC-Token``)."""
        headers = {
            "Authorization": self.sign(host=host, payload=payload, timestamp=timestamp, uri=uri),
            "Content-Type": JSON_CONTENT_TYPE,
            "Host": host,
            "X-TC-Action": action,
            "X-TC-Timestamp": str(timestamp),
            "X-TC-Version": version,
        }
        if region:
            headers["X-TC-Region"] = region
        if self.credentials.token:
            headers["X-TC-Token"] = self.credentials.token
        return headers


def parse_authorization(value: str) -> dict[str, str]:
    """Split ``TC3-HMAC-SHA256 Credential=id/date/svc/tc3_request, SignedHeaders=..., Signature=...``.

    Returns keys ``algorithm``, ``secret_id``, ``date``, ``service``, ``signed_headers``,
    ``signature``; raises ``ValueError`` when the header is malformed.
    """
    algorithm, _, rest = value.strip().partition(" ")
    parts = dict(item.strip().split("=", 1) for item in rest.split(",") if "=" in item)
    missing = [k for k in ("Credential", "SignedHeaders", "Signature") if k not in parts]
    if missing:  # a KeyError here would escape callers that catch ValueError
        raise ValueError(f"authorization lacks {', '.join(missing)}")
    scope = parts["Credential"].split("/")
    if len(scope) != 4 or scope[3] != "tc3_request":
        raise ValueError("malformed credential scope")
    return {
        "algorithm": algorithm,
        "secret_id": scope[0],
        "date": scope[1],
        "service": scope[2],
        "signed_headers": parts["SignedHeaders"],
        "signature": parts["Signature"],
    }
