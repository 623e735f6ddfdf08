"""Tencent offline speech recognition (``aai.qcloud.com/asr/v1/{appid}``).

The request is a POST whose parameters travel in the query string; the
``Authorization`` header is base64(HMAC-SHA1(SecretKey, string to sign)) where
the string to sign is ``"POST" + host + path + "?" + params sorted by key`` with
the values *not* URL-encoded (the seed's worked example), while the URL on the
wire carries them percent-encoded. The signed host and path are taken from the
URL the request is actually sent to, so the seed's vector holds for
``https://aai.qcloud.com`` and a sandbox at ``http://127.0.0.1:8700`` signs
``127.0.0.1:8700/asr/v1/{appid}``, exactly what it sees in ``Host`` and the path.

The result arrives only by callback (``res_type=1``); the receiver answers
:data:`CALLBACK_ACK` or the vendor notifies again. The callback is not signed:
put an unguessable token in ``callback_url`` if the receiver must authenticate it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from vendors import http
from vendors.errors import BadResponse, Disposition, InvalidInput, VendorError
from vendors.tc3 import Credentials

VENDOR = "asr"
DEFAULT_ENDPOINT = "https://aai.qcloud.com"
DEFAULT_ENGINE = "16k_0"
MAX_BODY_BYTES = 5 * 1024 * 1024  # source_type=1: the audio itself, at most 5 MB
MAX_URL_CHARS = 2047  # url and callback_url: longer than 0, shorter than 2048
MAX_EXPIRY_SECONDS = 90 * 24 * 3600  # expired - timestamp must stay under 90 days
MAX_NONCE = 9_999_999_999  # a positive integer of at most 10 digits
SOURCE_URL, SOURCE_BODY = 0, 1
CALLBACK_ACK = {"code": 0, "message": "success"}

P, R = Disposition.PERMANENT, Disposition.RETRY
# Seed return codes. Retried: server-side failures, and auth failures that a fresh
# timestamp and nonce (every attempt is signed anew) cure. The rest is our input or config.
# fmt: off
CODES: dict[int, tuple[Disposition, str]] = {
    1000: (P, "bad_request"), 1001: (P, "unparsable_request"),
    1002: (P, "invalid_projectid"), 1003: (P, "invalid_res_text_format"),
    1004: (P, "invalid_sub_service_type"), 1005: (P, "invalid_engine_model_type"),
    1006: (P, "invalid_callback_url"), 1007: (P, "invalid_res_type"),
    1008: (P, "invalid_source_type"), 1009: (P, "invalid_url"),
    1010: (P, "invalid_secretid"), 1011: (P, "invalid_timestamp"),
    1012: (P, "invalid_expired"), 1013: (P, "invalid_nonce"),
    1014: (P, "invalid_template_name"), 1016: (P, "url_too_long"),
    1018: (P, "appid_not_registered"), 1019: (P, "appid_project_template_mismatch"),
    1020: (R, "server_error"), 1021: (P, "malformed_signature"),
    1023: (P, "expiry_too_long"), 1024: (R, "signature_expired"),
    1026: (P, "unknown_secretid"), 1028: (R, "replay_rejected"),
    1029: (P, "signature_mismatch"), 1031: (P, "audio_too_large"),
    1033: (R, "unknown_error"),
}
# fmt: on


def error_for(code: int, message: str = "", request_id: str | None = None) -> VendorError:
    """The :class:`VendorError` for a non-zero return code (unknown codes are permanent)."""
    disposition, reason = CODES.get(code, (P, "unknown_code"))
    return VendorError(
        VENDOR, reason, message, disposition=disposition, code=code, request_id=request_id
    )


def host_path(endpoint: str, appid: str) -> str:
    """``netloc + path`` of the request URL: what the signature covers."""
    parts = urlsplit(request_url(endpoint, appid))
    return parts.netloc + parts.path


def request_url(endpoint: str, appid: str) -> str:
    return f"{endpoint.rstrip('/')}/asr/v1/{appid}"


class AsrSigner:
    """HMAC-SHA1 over ``METHOD + host/path + '?' + sorted query`` (values unencoded)."""

    def __init__(self, secret_key: str) -> None:
        self._secret_key = secret_key

    def __repr__(self) -> str:
        return "AsrSigner(secret_key='***')"

    @staticmethod
    def canonical_query(params: Mapping[str, Any]) -> str:
        return "&".join(f"{key}={params[key]}" for key in sorted(params))

    def string_to_sign(self, method: str, host_path: str, params: Mapping[str, Any]) -> str:
        return f"{method.upper()}{host_path}?{self.canonical_query(params)}"

    def sign(self, method: str, host_path: str, params: Mapping[str, Any]) -> str:
        message = self.string_to_sign(method, host_path, params).encode("utf-8")
        digest = hmac.new(self._secret_key.encode("utf-8"), message, hashlib.sha1).digest()
        return base64.b64encode(digest).decode("ascii")


@dataclass(frozen=True)
class AsrRequest:
    """A fully built, signed request: POST ``url`` with ``headers`` and ``body``."""

    url: str
    params: dict[str, str]
    headers: dict[str, str]
    body: bytes = field(repr=False)


@dataclass(frozen=True)
class AsrSubmitted:
    request_id: str
    raw: dict[str, Any]


@dataclass(frozen=True)
class AsrResult:
    """A recognition result from the callback. ASR judges nothing: no verdict, no labels."""

    request_id: str
    code: int
    message: str
    text: str | None
    audio_time: float | None
    raw: dict[str, Any]
    verdict: str | None = None
    labels: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.code == 0

    def error(self) -> VendorError | None:
        return None if self.ok else error_for(self.code, self.message, self.request_id)


def parse_callback(body: Mapping[str, Any]) -> AsrResult:
    """Parse a callback delivered as a form or as JSON (form values are strings).

    :class:`BadResponse` when it is not a callback: no integer ``code``, or a ``text``,
    ``message`` or ``requestId`` that is not text (or a number, for the id).
    """
    if not isinstance(body, Mapping):
        raise BadResponse(VENDOR, "callback is not an object")
    try:
        code = body["code"]
        if isinstance(code, bool) or not isinstance(code, (int, str, float)):
            raise TypeError(type(code).__name__)
        code = int(code)
    except (KeyError, TypeError, ValueError, OverflowError) as exc:  # 1e999 overflows
        raise BadResponse(VENDOR, "callback without a numeric code") from exc
    return AsrResult(
        request_id=_text(body, "requestId", numbers=True),
        code=code,
        message=_text(body, "message"),
        text=_text(body, "text") if body.get("text") is not None else None,
        audio_time=_float_or_none(body.get("audioTime")),
        raw=dict(body),
    )


def _text(body: Mapping[str, Any], name: str, *, numbers: bool = False) -> str:
    value = body.get(name)
    if value is None:
        return ""
    allowed = (str, int) if numbers else (str,)
    if isinstance(value, bool) or not isinstance(value, allowed):
        raise BadResponse(VENDOR, f"{name} is not text")
    return str(value)


def _float_or_none(value: Any) -> float | None:
    try:
        number = None if value in (None, "") else float(value)
    except (TypeError, ValueError):
        return None
    return number if number is None or math.isfinite(number) else None


def _check_source(audio: bytes | None, url: str | None) -> None:
    if (audio is None) == (url is None):
        raise ValueError("give exactly one of audio or url")
    if audio is not None and not audio:
        raise InvalidInput(VENDOR, "empty_audio", "audio is empty")
    if audio is not None and len(audio) > MAX_BODY_BYTES:
        raise InvalidInput(
            VENDOR,
            "audio_too_large",
            f"audio is {len(audio)} bytes; ASR takes at most {MAX_BODY_BYTES}",
        )
    if url is not None and not 0 < len(url) <= MAX_URL_CHARS:
        raise InvalidInput(VENDOR, "invalid_url", "audio URL must be 1 to 2047 characters")


def _check_callback(callback_url: str) -> None:
    if not 0 < len(callback_url) <= MAX_URL_CHARS:
        raise InvalidInput(
            VENDOR, "invalid_callback_url", "callback_url must be 1 to 2047 characters"
        )


class AsrClient:
    """Submits recognition jobs; results come back by callback (see :func:`parse_callback`)."""

    def __init__(
        self,
        endpoint: str,
        appid: str,
        credentials: Credentials,
        *,
        engine: str = DEFAULT_ENGINE,
        project_id: int = 0,
        expires_in: int = 3600,
        timeout: float = http.DEFAULT_TIMEOUT,
        clock: Callable[[], float] = time.time,
        rand: random.Random | None = None,
        before_send: Callable[[], None] | None = None,
    ) -> None:
        if not 0 < expires_in < MAX_EXPIRY_SECONDS:
            raise ValueError("expires_in must be positive and under 90 days")
        self.endpoint, self.appid, self.engine = endpoint, str(appid), engine
        self.project_id, self.expires_in, self.timeout = project_id, expires_in, timeout
        self._secret_id = credentials.secret_id
        self.before_send = before_send or (lambda: None)  # right before each request leaves
        self._signer = AsrSigner(credentials.secret_key)
        self._clock, self._rand = clock, rand or random.Random()

    def __repr__(self) -> str:
        return f"AsrClient(endpoint={self.endpoint!r}, appid={self.appid!r})"

    def params(
        self, *, callback_url: str, url: str | None, timestamp: int, nonce: int
    ) -> dict[str, str]:
        """The query parameters, every value a string (what is signed and sent)."""
        if not 0 < nonce <= MAX_NONCE:
            raise ValueError("nonce must be a positive integer of at most 10 digits")
        params = {
            "projectid": self.project_id,
            "sub_service_type": 0,
            "engine_model_type": self.engine,
            "callback_url": callback_url,
            "res_text_format": 0,
            "res_type": 1,
            "source_type": SOURCE_BODY if url is None else SOURCE_URL,
            "secretid": self._secret_id,
            "timestamp": timestamp,
            "expired": timestamp + self.expires_in,
            "nonce": nonce,
        }
        if url is not None:
            params["url"] = url
        return {key: str(value) for key, value in params.items()}

    def build_submit(
        self,
        *,
        callback_url: str,
        audio: bytes | None = None,
        url: str | None = None,
        timestamp: int | None = None,
        nonce: int | None = None,
    ) -> AsrRequest:
        """Validate, sign and assemble one request (no I/O)."""
        _check_source(audio, url)
        _check_callback(callback_url)
        timestamp = int(self._clock()) if timestamp is None else timestamp
        nonce = self._rand.randint(1, MAX_NONCE) if nonce is None else nonce
        params = self.params(callback_url=callback_url, url=url, timestamp=timestamp, nonce=nonce)
        signature = self._signer.sign("POST", host_path(self.endpoint, self.appid), params)
        query = urlencode(sorted(params.items()), quote_via=quote, safe="")
        headers = {"Authorization": signature, "Content-Type": "application/octet-stream"}
        return AsrRequest(
            f"{request_url(self.endpoint, self.appid)}?{query}", params, headers, audio or b""
        )

    def submit(
        self, *, callback_url: str, audio: bytes | None = None, url: str | None = None
    ) -> AsrSubmitted:
        """Send one job (the audio in the body, or a URL the vendor downloads)."""
        request = self.build_submit(callback_url=callback_url, audio=audio, url=url)
        self.before_send()
        response = http.post(
            VENDOR, request.url, data=request.body, headers=request.headers, timeout=self.timeout
        )
        return parse_submit_response(response.json(VENDOR), status=response.status)


def parse_submit_response(body: Any, *, status: int | None = None) -> AsrSubmitted:
    """``{"code": 0, "message": "success", "requestId": 500}`` or raise by code."""
    try:
        code = int(body["code"])
    except (KeyError, TypeError, ValueError) as exc:
        raise BadResponse(
            VENDOR, f"HTTP {status}: response without a numeric code", status=status
        ) from exc
    if code != 0:
        raise error_for(code, str(body.get("message") or ""))
    if body.get("requestId") in (None, ""):
        raise BadResponse(VENDOR, "success without a requestId", status=status)
    return AsrSubmitted(str(body["requestId"]), body)
