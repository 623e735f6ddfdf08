"""HTTP plumbing shared by every vendor client.

One ``requests.Session`` per thread (connection reuse without sharing a session
across threads), failures wrapped into the taxonomy of :mod:`vendors.errors`,
and the jittered backoff used by every retry in the project.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter

from vendors.errors import BadResponse, Disposition, TransportError, VendorError

_local = threading.local()
log = logging.getLogger("voxqueue.vendors")

DEFAULT_TIMEOUT = 10.0


def session() -> requests.Session:
    """The calling thread's session (created on first use)."""
    s = getattr(_local, "session", None)
    if s is None:
        s = requests.Session()
        adapter = HTTPAdapter(pool_connections=8, pool_maxsize=32, max_retries=0)
        s.mount("http://", adapter)
        s.mount("https://", adapter)
        _local.session = s
    return s


@dataclass
class Response:
    status: int
    body: bytes
    headers: dict[str, str]

    def json(self, vendor: str) -> Any:
        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise BadResponse(vendor, f"HTTP {self.status}: response is not JSON", status=self.status) from exc


def post(
    vendor: str,
    url: str,
    *,
    data: bytes | str | None = None,
    headers: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> Response:
    """POST and return the response; raise on transport failures and HTTP 429/5xx.

    4xx other than 429 are returned to the caller, whose vendor knows what they mean.
    """
    started = time.monotonic()
    try:
        r = session().post(url, data=data, headers=headers, params=params, timeout=timeout)
    except requests.Timeout as exc:
        raise TransportError(vendor, f"timed out after {timeout:g}s") from exc
    except requests.ConnectionError as exc:
        raise TransportError(vendor, f"connection failed: {type(exc).__name__}") from exc
    except requests.RequestException as exc:
        raise TransportError(vendor, f"request failed: {type(exc).__name__}") from exc
    response = Response(r.status_code, r.content, dict(r.headers))
    log.info("vendor call", extra={"vendor": vendor, "path": urlsplit(url).path, "status": r.status_code,
                                   "elapsed_ms": round((time.monotonic() - started) * 1000, 1)})
    if r.status_code == 429:
        raise VendorError(
            vendor, "http_429", "HTTP 429 Too Many Requests",
            disposition=Disposition.THROTTLED, status=429,
            retry_after=_retry_after(r.headers.get("Retry-After")),
        )
    if r.status_code >= 500:
        raise VendorError(vendor, "http_5xx", f"HTTP {r.status_code}", disposition=Disposition.RETRY, status=r.status_code)
    return response


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


def backoff(
    attempt: int,
    *,
    base: float = 0.5,
    cap: float = 30.0,
    rand: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait before retry number ``attempt`` (1-based): full jitter.

    The ceiling doubles from ``base`` up to ``cap``; the wait is uniform in
    [ceiling/2, ceiling] so retries spread out but never come back at once.
    """
    ceiling = min(cap, base * (2 ** max(0, attempt - 1)))
    return ceiling / 2 + rand() * ceiling / 2
