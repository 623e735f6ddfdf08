"""Tencent Cloud API 3.0 client base, shared by SOE and GME.

One call is: JSON-encode the parameters, sign them with TC3-HMAC-SHA256
(:mod:`vendors.tc3`), POST them with :func:`vendors.http.post`, and unwrap the
``{"Response": {...}}`` envelope.  API errors arrive as HTTP 200 with
``Response.Error``; they become a :class:`~vendors.errors.VendorError` whose
disposition comes from :meth:`TencentApiClient.classify`.

Each product lists every code of its official SDK's ``errorcodes.py`` in
:attr:`TencentApiClient.ERRORS`, with the disposition its description asks for
("请稍后重试", try again later: retry; "请重新初始化", initialise again: a new
session; parameter, audio and text errors: permanent).  Codes no SDK lists fall
back on :data:`PREFIX_DEFAULTS` by their dotted prefix: a key matches the code
itself and every code below it, and the longest matching key wins, so an unlisted
``InternalError.Something`` is retried and ``AuthFailure.Something`` is not.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple
from urllib.parse import urlsplit

from vendors import http
from vendors.errors import BadResponse, Disposition, VendorError
from vendors.tc3 import Credentials, TC3Signer

MAX_MESSAGE_CHARS = 500


class Rule(NamedTuple):
    """What one error code means: the caller's next step, the reason recorded, and why."""

    disposition: Disposition
    reason: str
    meaning: str = ""


ErrorTable = dict[str, Rule]

# Prefix defaults of API 3.0 for codes that no product's SDK lists (the common codes
# such as ``AuthFailure.SignatureExpire``, and codes newer than the SDK).
PREFIX_DEFAULTS: ErrorTable = {
    "RequestLimitExceeded": Rule(Disposition.THROTTLED, "throttled", "request rate over the limit"),
    "LimitExceeded.ConcurrencyLimitExceeded": Rule(
        Disposition.THROTTLED, "throttled", "concurrent requests over the limit"),
    "InternalError": Rule(Disposition.RETRY, "internal_error", "internal error"),
    "ServiceUnavailable": Rule(Disposition.RETRY, "service_unavailable", "service unavailable"),
    "AuthFailure": Rule(Disposition.PERMANENT, "auth", "signature or authentication failed"),
    "UnauthorizedOperation": Rule(Disposition.PERMANENT, "unauthorized", "not authorised"),
    "InvalidParameter": Rule(Disposition.PERMANENT, "invalid_parameter", "invalid parameter"),
    "InvalidParameterValue": Rule(Disposition.PERMANENT, "invalid_parameter", "invalid value"),
    "MissingParameter": Rule(Disposition.PERMANENT, "invalid_parameter", "missing parameter"),
    "UnknownParameter": Rule(Disposition.PERMANENT, "invalid_parameter", "unknown parameter"),
    "RequestSizeLimitExceeded": Rule(
        Disposition.PERMANENT, "request_too_large", "request body too large"),
}

UNKNOWN_ERROR = Rule(Disposition.PERMANENT, "vendor_error", "a code nobody lists")


def error_table(rows: dict[str, tuple[Disposition, str, str]]) -> ErrorTable:
    """``{code: (disposition, reason, meaning)}`` as :class:`Rule` values."""
    return {code: Rule(*row) for code, row in rows.items()}


def matching_key(table: dict[str, Any], code: str) -> str | None:
    """The key of ``table`` for ``code``: the code itself, else its longest dotted prefix."""
    parts = code.split(".")
    for n in range(len(parts), 0, -1):
        key = ".".join(parts[:n])
        if key in table:
            return key
    return None


def _nothing() -> None:
    pass


class TencentApiClient:
    """Signs and sends Tencent Cloud API 3.0 actions for one service and version."""

    ERRORS: ClassVar[ErrorTable] = {}  # a product's every SDK code, explicitly

    def __init__(
        self,
        endpoint: str,
        credentials: Credentials,
        *,
        service: str,
        version: str,
        region: str = "",
        timeout: float = 10.0,
        vendor: str | None = None,
        clock: Callable[[], float] = time.time,
        post: Callable[..., http.Response] | None = None,
        before_send: Callable[[], None] | None = None,
    ) -> None:
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"endpoint must be an http(s) URL, got {endpoint!r}")
        self.endpoint = endpoint
        self.host = parts.netloc
        self.uri = parts.path or "/"
        self.signer = TC3Signer(credentials, service)
        self.version = version
        self.region = region
        self.timeout = timeout
        self.vendor = vendor or service
        self.clock = clock
        self._post = post
        # called right before each request leaves, after it is built and signed (a shared rate
        # limit's slot: requests arrive at the vendor spaced as their slots were)
        self.before_send = before_send or _nothing

    def __repr__(self) -> str:
        return f"{type(self).__name__}(endpoint={self.endpoint!r}, vendor={self.vendor!r})"

    # -- request ------------------------------------------------------------
    @staticmethod
    def encode(params: dict) -> bytes:
        """Compact UTF-8 JSON, non-ASCII text kept as is (Chinese RefText)."""
        return json.dumps(params, separators=(",", ":"), ensure_ascii=False).encode("utf-8")

    def signed_headers(self, action: str, payload: bytes) -> dict[str, str]:
        """All headers of one signed POST of ``payload``, timestamped by the clock."""
        return self.signer.headers(
            host=self.host, action=action, version=self.version, payload=payload,
            timestamp=int(self.clock()), region=self.region, uri=self.uri,
        )

    def call(self, action: str, params: dict) -> dict:
        """Run ``action`` and return the whole ``Response`` object; raise on errors."""
        payload = self.encode(params)
        post = self._post or http.post  # looked up per call, so tests may patch http.post
        headers = self.signed_headers(action, payload)
        self.before_send()
        response = post(
            self.vendor, self.endpoint, data=payload,
            headers=headers, timeout=self.timeout,
        )
        return self.unwrap(response)

    # -- response -----------------------------------------------------------
    def unwrap(self, response: http.Response) -> dict:
        """The ``Response`` object of an answer, or the error it carries, raised."""
        body = self._envelope(response)
        error = body.get("Error")
        if error is not None:
            raise self.error_for(error, body.get("RequestId"), response.status)
        return body

    def _envelope(self, response: http.Response) -> dict:
        try:
            body = response.json(self.vendor)
        except BadResponse:
            if response.status >= 400:
                raise self._http_error(response.status) from None
            raise
        inner = body.get("Response") if isinstance(body, dict) else None
        if not isinstance(inner, dict):
            if response.status >= 400:
                raise self._http_error(response.status)
            raise BadResponse(self.vendor, "no Response object", status=response.status)
        return inner

    def _http_error(self, status: int) -> VendorError:
        """A 4xx without an API envelope (gateway refusal): resending cannot help."""
        return VendorError(
            self.vendor, f"http_{status}", f"HTTP {status} without an API response",
            disposition=Disposition.PERMANENT, status=status,
        )

    def error_for(
        self, error: Any, request_id: str | None, status: int | None = None,
    ) -> VendorError:
        """The :class:`VendorError` for one ``Response.Error`` object."""
        error = error if isinstance(error, dict) else {}
        code = str(error.get("Code") or "UnknownError")
        message = str(error.get("Message") or "")[:MAX_MESSAGE_CHARS]
        disposition, reason = self.classify(code)
        return VendorError(
            self.vendor, reason, message, code=code, request_id=request_id,
            disposition=disposition, status=status,
        )

    @classmethod
    def classify(cls, code: str) -> tuple[Disposition, str]:
        """``(disposition, reason)`` for an API error code; see :meth:`rule`."""
        rule = cls.rule(code)
        return rule.disposition, rule.reason

    @classmethod
    def rule(cls, code: str) -> Rule:
        """The product's own entry for ``code``; else the longest dotted prefix among its
        entries and :data:`PREFIX_DEFAULTS`; else :data:`UNKNOWN_ERROR` (permanent)."""
        if code in cls.ERRORS:
            return cls.ERRORS[code]
        table = PREFIX_DEFAULTS | cls.ERRORS
        key = matching_key(table, code)
        return UNKNOWN_ERROR if key is None else table[key]
