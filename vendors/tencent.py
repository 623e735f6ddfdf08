"""Tencent Cloud API 3.0 client base, shared by SOE and GME.

One call is: JSON-encode the parameters, sign them with TC3-HMAC-SHA256
(:mod:`vendors.tc3`), POST them with :func:`vendors.http.post`, and unwrap the
``{"Response": {...}}`` envelope.  API errors arrive as HTTP 200 with
``Response.Error``; they become a :class:`~vendors.errors.VendorError` whose
disposition comes from :attr:`TencentApiClient.ERROR_DISPOSITIONS`.

Error codes are dotted (``RequestLimitExceeded.UinLimitExceeded``).  A table key
matches the code itself and every code below it, and the longest matching key
wins, so a subclass can refine ``InternalError`` (retry) with
``InternalError.InvalidWAVHeader`` (permanent).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, ClassVar
from urllib.parse import urlsplit

from vendors import http
from vendors.errors import BadResponse, Disposition, VendorError
from vendors.tc3 import Credentials, TC3Signer

MAX_MESSAGE_CHARS = 500

# code -> (disposition, reason); the public tables below are derived from it.
_COMMON_ERRORS: dict[str, tuple[Disposition, str]] = {
    "RequestLimitExceeded": (Disposition.THROTTLED, "throttled"),
    "LimitExceeded.ConcurrencyLimitExceeded": (Disposition.THROTTLED, "throttled"),
    "InternalError": (Disposition.RETRY, "internal_error"),
    "ServiceUnavailable": (Disposition.RETRY, "service_unavailable"),
    "AuthFailure": (Disposition.PERMANENT, "auth"),
    "UnauthorizedOperation": (Disposition.PERMANENT, "unauthorized"),
    "InvalidParameter": (Disposition.PERMANENT, "invalid_parameter"),
    "InvalidParameterValue": (Disposition.PERMANENT, "invalid_parameter"),
    "MissingParameter": (Disposition.PERMANENT, "invalid_parameter"),
    "UnknownParameter": (Disposition.PERMANENT, "invalid_parameter"),
    "RequestSizeLimitExceeded": (Disposition.PERMANENT, "request_too_large"),
}

UNKNOWN_ERROR: tuple[Disposition, str] = (Disposition.PERMANENT, "vendor_error")


def split_error_table(
    table: dict[str, tuple[Disposition, str]],
) -> tuple[dict[str, Disposition], dict[str, str]]:
    """``{code: (disposition, reason)}`` -> ``({code: disposition}, {code: reason})``."""
    return {k: d for k, (d, _) in table.items()}, {k: r for k, (_, r) in table.items()}


def matching_key(table: dict[str, Any], code: str) -> str | None:
    """The key of ``table`` for ``code``: the code itself, else its longest dotted prefix."""
    parts = code.split(".")
    for n in range(len(parts), 0, -1):
        key = ".".join(parts[:n])
        if key in table:
            return key
    return None


class TencentApiClient:
    """Signs and sends Tencent Cloud API 3.0 actions for one service and version."""

    ERROR_DISPOSITIONS: ClassVar[dict[str, Disposition]]
    ERROR_REASONS: ClassVar[dict[str, str]]
    ERROR_DISPOSITIONS, ERROR_REASONS = split_error_table(_COMMON_ERRORS)

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
        response = post(
            self.vendor, self.endpoint, data=payload,
            headers=self.signed_headers(action, payload), timeout=self.timeout,
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
        """``(disposition, reason)`` for an API error code; unknown codes are permanent."""
        key = matching_key(cls.ERROR_DISPOSITIONS, code)
        if key is None:
            return UNKNOWN_ERROR
        return cls.ERROR_DISPOSITIONS[key], cls.ERROR_REASONS.get(key, UNKNOWN_ERROR[1])
