"""Shumei audio-file moderation v4: ``/audio/v4`` submit, ``/query_audio/v4`` poll, callback.

Both calls are JSON POSTs to the cluster's base URL authenticated by ``accessKey``
in the body, so stored request payloads must go through :func:`redact`. Shumei
answers HTTP 200 with a ``code``; :func:`error_for` turns codes into dispositions.

Code decisions (the seed and the vendor's newer docs disagree on 1903):
- 1903 is "service failure" on submit and, per the seed's query table, "decode
  failure" on query. The newer docs give it as service failure, with decode failure
  as 1905: RETRY everywhere, bounded by the caller's retry budget.
- 1904 (download failure, not in the seed) is RETRY on submit: nothing was accepted
  and the URL is ours, so a transient storage failure is the likely cause. In a
  query answer or callback it is PERMANENT: that btId is spent, asking again returns
  the same; resubmitting needs a new btId, which is the caller's decision.
- Unknown codes are PERMANENT (like botocore: retry only what is known transient).

``auxInfo.errorCode`` (newer v4 docs): 2003 (audio download failed) and 2007 (no valid
data) arrive with code 1100 and, often, ``riskLevel`` PASS. Such a file was never
moderated: :meth:`ShumeiResult.error` makes it a PERMANENT failure (reason
``shumei_<code>``), as it does for any other non-zero ``errorCode`` (an unknown one
cannot be shown to be harmless, so it never passes).

Language (``data.lang``, the vendor's default ``zh``): the sh/bj clusters serve
Chinese audio; English goes with ``lang`` "en" to the cluster the account was given
for it. The caller picks the endpoint; :data:`LANGS` are the values sent.
"""

from __future__ import annotations

import base64
import copy
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from vendors import http
from vendors.errors import BadResponse, Disposition, InvalidInput, VendorError

VENDOR = "shumei"
SUBMIT_PATH = "/audio/v4"
QUERY_PATH = "/query_audio/v4"
DEFAULT_TIMEOUT = 1.0  # the vendor's advice for both calls
DEFAULT_RAW_MAX_BYTES = 6 * 1024 * 1024  # seed: base64 content at most 6 MB (newer docs: 15 MB)
DEFAULT_TYPE = "POLITICS_PORN_AD_MOAN"
BT_ID_MAX = 128
RAW_FORMATS = ("pcm", "wav", "mp3")
PCM_RATES = range(8000, 32001)
PCM_TRACKS = (1, 2)
VERDICTS = ("PASS", "REVIEW", "REJECT")
SUCCESS, PROCESSING = 1100, 1101
Stage = Literal["submit", "result"]

CODES: dict[int, tuple[Disposition, str]] = {
    PROCESSING: (Disposition.PENDING, "processing"),
    1901: (Disposition.THROTTLED, "qps_limit"),
    1902: (Disposition.PERMANENT, "invalid_params"),
    1903: (Disposition.RETRY, "service_failure"),
    1904: (Disposition.RETRY, "download_failed"),
    1905: (Disposition.PERMANENT, "decode_failed"),
    9100: (Disposition.PERMANENT, "balance_exhausted"),
    9101: (Disposition.PERMANENT, "no_permission"),
}
RESULT_OVERRIDES: dict[int, tuple[Disposition, str]] = {
    1904: (Disposition.PERMANENT, "download_failed"),
}
LANGUAGE_TAGS = {0: "zh", 1: "en", 2: "yue"}  # audioTags.language label
LANGS = ("zh", "en")  # data.lang for the manifest's languages
AUX_ERRORS = {  # auxInfo.errorCode -> what it means
    2003: "audio download failed",
    2007: "no valid data in the audio",
}


def disposition_for(code: int, stage: Stage = "submit") -> tuple[Disposition, str]:
    """``(disposition, reason)`` for a non-success code at a stage ("submit" or "result")."""
    if stage == "result" and code in RESULT_OVERRIDES:
        return RESULT_OVERRIDES[code]
    return CODES.get(code, (Disposition.PERMANENT, "unknown_code"))


def code_of(body: Any) -> int:
    """The integer ``code`` of an answer, or :class:`BadResponse` when there is none."""
    try:
        code = body["code"]
        if isinstance(code, bool) or not isinstance(code, (int, str, float)):
            raise TypeError(type(code).__name__)
        return int(code)
    except (KeyError, TypeError, ValueError, OverflowError) as exc:  # 1e999 overflows
        raise BadResponse(VENDOR, "answer without a numeric code") from exc


def error_for(body: dict[str, Any], stage: Stage = "submit") -> VendorError:
    code = code_of(body)
    disposition, reason = disposition_for(code, stage)
    return VendorError(
        VENDOR,
        reason,
        str(body.get("message") or ""),
        disposition=disposition,
        code=code,
        request_id=_id(body, "requestId") or None,
    )


def redact(body: dict[str, Any]) -> dict[str, Any]:
    """A copy safe to store: no ``accessKey`` (at any depth), RAW audio elided."""
    clean = _without_access_key(copy.deepcopy(body))
    if clean.get("contentType") == "RAW" and isinstance(clean.get("content"), str):
        clean["content"] = f"<base64 elided: {len(clean['content'])} chars>"
    return clean


def _without_access_key(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_access_key(v) for k, v in value.items() if k != "accessKey"}
    if isinstance(value, list):
        return [_without_access_key(v) for v in value]
    return value


@dataclass(frozen=True)
class ShumeiSubmitted:
    bt_id: str
    request_id: str
    raw: dict[str, Any]


@dataclass(frozen=True)
class ShumeiResult:
    bt_id: str
    request_id: str
    risk_level: str | None
    verdict: str | None
    text: str | None
    audio_time: float | None
    labels: list[str]
    raw: dict[str, Any] = field(repr=False)
    aux_code: int | None = None  # auxInfo.errorCode, when not 0

    @classmethod
    def from_dict(cls, body: dict[str, Any]) -> ShumeiResult:
        """A code-1100 answer; :class:`BadResponse` when a field has the wrong shape."""
        aux_code = aux_error_code(body)
        level = _optional(body, "riskLevel", str)
        segments = _segments(body.get("audioDetail"))
        tags = _optional(body, "audioTags", dict) or {}
        return cls(
            bt_id=_id(body, "btId"),
            request_id=_id(body, "requestId"),
            risk_level=level,
            verdict=level if level in VERDICTS else None,
            text=_optional(body, "audioText", str) or _segments_text(segments),
            audio_time=_seconds(body.get("audioTime")),
            labels=risk_labels(segments) + tag_labels(tags),
            raw=body,
            aux_code=aux_code,
        )

    def error(self) -> VendorError | None:
        """A PERMANENT error when ``auxInfo.errorCode`` says the file was not moderated."""
        if self.aux_code is None:
            return None
        meaning = AUX_ERRORS.get(self.aux_code, "an auxInfo error code this client does not know")
        return VendorError(
            VENDOR,
            f"shumei_{self.aux_code}",
            f"auxInfo.errorCode {self.aux_code}: {meaning}; the file was not moderated",
            code=self.aux_code,
            request_id=self.request_id or None,
        )


def aux_error_code(body: dict[str, Any]) -> int | None:
    """``auxInfo.errorCode`` when present and not 0; :class:`BadResponse` when malformed."""
    aux = _optional(body, "auxInfo", dict)
    if not aux or aux.get("errorCode") in (None, "", 0, "0"):
        return None
    try:
        return code_of({"code": aux["errorCode"]})
    except BadResponse as exc:
        raise BadResponse(VENDOR, "auxInfo.errorCode is not an integer") from exc


def _optional(body: dict[str, Any], name: str, kind: type) -> Any:
    value = body.get(name)
    if value is not None and not isinstance(value, kind):
        raise BadResponse(VENDOR, f"{name} is not a{'n object' if kind is dict else ' ' + kind.__name__}")
    return value


def _id(body: dict[str, Any], name: str) -> str:
    """``btId`` or ``requestId``: text (a number is taken as its text), or empty when absent."""
    value = body.get(name)
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise BadResponse(VENDOR, f"{name} is not text")
    return str(value)


def _seconds(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _segments(value: Any) -> list[dict[str, Any]]:
    """``audioDetail``: a list of segment objects whose labels and text are text."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(s, dict) for s in value):
        raise BadResponse(VENDOR, "audioDetail is not a list of objects")
    for segment in value:
        for name in ("riskLevel", "riskLabel1"):
            _optional(segment, name, str)
        detail = _optional(segment, "riskDetail", dict)
        if detail:
            _optional(detail, "audioText", str)
    return value


def risk_labels(segments: list[dict[str, Any]]) -> list[str]:
    """Distinct first-level risk labels of the segments that did not pass, in order."""
    labels: list[str] = []
    for segment in segments:
        label = segment.get("riskLabel1") or ""
        if (
            segment.get("riskLevel") != "PASS"
            and label
            and label != "normal"
            and label not in labels
        ):
            labels.append(label)
    return labels


def tag_labels(tags: dict[str, Any]) -> list[str]:
    """``gender:<label>``, ``singing``, ``language:<zh|en|yue>`` from ``audioTags``."""
    labels = []
    gender = tags.get("gender")
    if isinstance(gender, dict) and isinstance(gender.get("label"), str) and gender["label"]:
        labels.append(f"gender:{gender['label']}")
    if tags.get("song") == 1:
        labels.append("singing")
    language = _top(tags.get("language"))
    if language is not None and isinstance(language.get("label"), (int, str)):
        label = language["label"]
        labels.append(f"language:{LANGUAGE_TAGS.get(label, label)}")
    return labels


def _top(value: Any) -> dict[str, Any] | None:
    """The most likely entry of a tag given as one object or a list of candidates."""
    items = value if isinstance(value, list) else [value] if isinstance(value, dict) else []
    return max((i for i in items if isinstance(i, dict)), key=_likelihood, default=None)


def _likelihood(item: dict[str, Any]) -> float:
    value = item.get("probability", item.get("confidence"))
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return 0.0
    return float(value) if math.isfinite(value) else 0.0


def _segments_text(segments: list[dict[str, Any]]) -> str | None:
    parts = [(s.get("riskDetail") or {}).get("audioText") or "" for s in segments]
    return "".join(parts) or None


def parse_callback(body: dict[str, Any]) -> ShumeiResult:
    """A pushed result; raises the code's :class:`VendorError` when it is not a success."""
    return parse_result(body)


def parse_result(body: Any) -> ShumeiResult:
    """A query answer or callback body; raises by code (PENDING while 1101)."""
    if code_of(body) != SUCCESS:
        raise error_for(body, "result")
    return ShumeiResult.from_dict(body)


def _check_bt_id(bt_id: str) -> None:
    if not bt_id or len(bt_id) > BT_ID_MAX:
        raise InvalidInput(VENDOR, "invalid_bt_id", f"btId must be 1 to {BT_ID_MAX} characters")


def _check_raw(fmt: str | None, rate: int | None, track: int | None) -> None:
    if fmt not in RAW_FORMATS:
        raise InvalidInput(
            VENDOR, "unsupported_format", f"RAW audio must be one of {', '.join(RAW_FORMATS)}"
        )
    if fmt == "pcm" and rate not in PCM_RATES:
        raise InvalidInput(VENDOR, "invalid_rate", "pcm needs a sample rate from 8000 to 32000")
    if fmt == "pcm" and track not in PCM_TRACKS:
        raise InvalidInput(VENDOR, "invalid_track", "pcm needs track 1 (mono) or 2 (stereo)")


class ShumeiClient:
    def __init__(
        self,
        endpoint: str,
        access_key: str,
        *,
        app_id: str = "default",
        event_id: str = "default",
        types: str = DEFAULT_TYPE,
        raw_max_bytes: int = DEFAULT_RAW_MAX_BYTES,
        timeout: float = DEFAULT_TIMEOUT,
        before_send: Callable[[], None] | None = None,
    ) -> None:
        self.endpoint = endpoint.rstrip("/")
        self._access_key = access_key
        self.app_id, self.event_id, self.types = app_id, event_id, types
        self.raw_max_bytes, self.timeout = raw_max_bytes, timeout
        self.before_send = before_send or (lambda: None)  # right before each request leaves

    def __repr__(self) -> str:
        return f"ShumeiClient(endpoint={self.endpoint!r}, app_id={self.app_id!r}, access_key='***')"

    def _content(
        self,
        url: str | None,
        raw: bytes | None,
        fmt: str | None,
        rate: int | None,
        track: int | None,
    ) -> tuple[str, str]:
        if (url is None) == (raw is None):
            raise ValueError("give exactly one of url or raw")
        if url is not None:
            return "URL", url
        _check_raw(fmt, rate, track)
        encoded = base64.b64encode(raw).decode("ascii")
        if len(encoded) > self.raw_max_bytes:
            raise InvalidInput(
                VENDOR,
                "audio_too_large",
                f"RAW audio is {len(encoded)} bytes in base64; the limit is {self.raw_max_bytes}",
            )
        return "RAW", encoded

    def submit_body(
        self,
        bt_id: str,
        *,
        url: str | None = None,
        raw: bytes | None = None,
        fmt: str | None = None,
        rate: int | None = None,
        track: int | None = None,
        callback: str | None = None,
        token_id: str | None = None,
        lang: str | None = None,
        return_all_text: bool = False,
    ) -> dict[str, Any]:
        """The ``/audio/v4`` JSON body (validated; no I/O)."""
        _check_bt_id(bt_id)
        content_type, content = self._content(url, raw, fmt, rate, track)
        data = {"tokenId": token_id, "formatInfo": fmt, "rate": rate, "track": track, "lang": lang}
        data = {k: v for k, v in data.items() if v is not None} | {
            "returnAllText": int(return_all_text)
        }
        body = {
            "accessKey": self._access_key,
            "appId": self.app_id,
            "eventId": self.event_id,
            "type": self.types,
            "contentType": content_type,
            "content": content,
            "btId": bt_id,
            "data": data,
        }
        return body | ({"callback": callback} if callback else {})

    def query_body(self, bt_id: str) -> dict[str, Any]:
        _check_bt_id(bt_id)
        return {"accessKey": self._access_key, "btId": bt_id}

    def submit(self, bt_id: str, **options: Any) -> ShumeiSubmitted:
        """Submit one file under the caller's ``bt_id``, its idempotency key.

        ``options`` are those of :meth:`submit_body` (url or raw, fmt, rate, track, callback, ...).
        """
        answer = self._post(SUBMIT_PATH, self.submit_body(bt_id, **options))
        if code_of(answer) != SUCCESS:
            raise error_for(answer, "submit")
        return ShumeiSubmitted(bt_id, str(answer.get("requestId", "")), answer)

    def query(self, bt_id: str) -> ShumeiResult:
        """The result; raises with PENDING while code 1101 (processing)."""
        return parse_result(self._post(QUERY_PATH, self.query_body(bt_id)))

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        payload = json.dumps(body, ensure_ascii=False).encode("utf-8")
        headers = {"Content-Type": "application/json; charset=utf-8"}
        self.before_send()
        response = http.post(
            VENDOR, self.endpoint + path, data=payload, headers=headers, timeout=self.timeout
        )
        answer = response.json(VENDOR)
        if not isinstance(answer, dict):
            raise BadResponse(
                VENDOR, f"HTTP {response.status}: unexpected response shape", status=response.status
            )
        return answer
