"""Tencent GME voice moderation (API 3.0, Version 2018-07-11, service "gme").

``ScanVoice`` submits up to 100 files or live streams; the result arrives as a
callback whose body is one ``DescribeScanResult`` signed with the application's
SecretKey (query parameter ``Signatue``, sic), or is polled with
``DescribeScanResultList``. Each task carries the caller's ``DataId`` (its
idempotency key, derived from the job); the vendor mints the ``TaskId``.
Verdicts: ``HitFlag`` true → REJECT, ``Success`` without a hit → PASS, ``Start`` → pending.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import urlsplit

from vendors import safejson
from vendors.errors import BadResponse, InvalidInput, VendorError
from vendors.gme_errors import GME_ERRORS
from vendors.tc3 import Credentials
from vendors.tencent import ErrorTable, TencentApiClient

VENDOR = "gme"
SERVICE = "gme"
VERSION = "2018-07-11"
MAX_TASKS = 100
MAX_LIMIT = 500
MAX_FILE_BYTES = 100 * 1024 * 1024
FILE_EXTENSIONS = (".wav", ".m4a", ".amr", ".mp3", ".aac", ".wma", ".ogg")
STREAM_EXTENSIONS = (".m3u8", ".flv")
FILE_SCHEMES = ("http", "https")
STREAM_SCHEMES = ("rtmp", "http", "https")
SIGNATURE_PARAM = "Signatue"  # the vendor's spelling
STATUS_START, STATUS_SUCCESS, STATUS_ERROR = "Start", "Success", "Error"
STATUSES = (STATUS_START, STATUS_SUCCESS, STATUS_ERROR)

# -- media limits -------------------------------------------------------------
def _extension(path: str) -> str:
    name = path.rsplit("/", 1)[-1].lower()
    return name[name.rfind(".") :] if "." in name else ""


def check_media(url: str, size: int | None = None, *, live: bool | None = None) -> bool:
    """Raise :class:`InvalidInput` unless GME can take ``url``; return True for a stream.

    Streams: ``.m3u8``/``.flv`` over HTTP(S), or RTMP. Files: HTTP(S), one of
    :data:`FILE_EXTENSIONS`, at most 100 MB. ``live`` (when given) must match.
    """
    parts = urlsplit(url)
    scheme, ext = parts.scheme.lower(), _extension(parts.path)
    if scheme not in STREAM_SCHEMES or not parts.netloc:
        raise InvalidInput(
            VENDOR, "unsupported_url", "GME takes http(s) files and rtmp/http(s) streams"
        )
    stream = scheme == "rtmp" or ext in STREAM_EXTENSIONS
    if live is not None and live != stream:
        kind = "a live stream (.m3u8, .flv or rtmp)" if live else "an audio file"
        raise InvalidInput(VENDOR, "media_kind_mismatch", f"expected {kind}")
    if not stream:
        _check_file(ext, size)
    return stream


def _check_file(ext: str, size: int | None) -> None:
    if ext not in FILE_EXTENSIONS:
        raise InvalidInput(
            VENDOR, "unsupported_format", f"GME files must be one of {' '.join(FILE_EXTENSIONS)}"
        )
    if size is not None and size > MAX_FILE_BYTES:
        raise InvalidInput(
            VENDOR, "file_too_large", f"file is {size} bytes; GME takes at most {MAX_FILE_BYTES}"
        )


# -- requests -----------------------------------------------------------------
@dataclass(frozen=True)
class GmeTask:
    data_id: str  # the caller's key
    url: str
    room_id: str | None = None
    open_id: str | None = None

    def to_api(self) -> dict[str, str]:
        task = {
            "DataId": self.data_id,
            "Url": self.url,
            "RoomId": self.room_id,
            "OpenId": self.open_id,
        }
        return {k: v for k, v in task.items() if v is not None}


def lang_param(lang: str | None) -> str | None:
    """``Lang`` for a job's language: unsent for Chinese (the vendor's default), else the code
    ("en" for English)."""
    return None if lang in (None, "", "zh") else lang


def scan_voice_params(
    biz_id: int,
    tasks: Sequence[GmeTask],
    *,
    live: bool,
    callback: str | None,
    scenes: Sequence[str] = ("default",),
    lang: str | None = None,
) -> dict[str, Any]:
    """The ``ScanVoice`` parameters; 1 to 100 tasks."""
    if not 0 < len(tasks) <= MAX_TASKS:
        raise ValueError(f"ScanVoice takes 1 to {MAX_TASKS} tasks, got {len(tasks)}")
    params: dict[str, Any] = {
        "BizId": int(biz_id),
        "Scenes": list(scenes),
        "Live": bool(live),
        "Tasks": [t.to_api() for t in tasks],
    }
    optional = {"Callback": callback, "Lang": lang}
    return params | {k: v for k, v in optional.items() if v}


def describe_params(
    biz_id: int, task_ids: Sequence[str], limit: int | None = None
) -> dict[str, Any]:
    """``DescribeScanResultList`` parameters: 1 to 100 ids; ``Limit`` defaults to their count."""
    if not 0 < len(task_ids) <= MAX_TASKS:
        raise ValueError(
            f"DescribeScanResultList takes 1 to {MAX_TASKS} task ids, got {len(task_ids)}"
        )
    limit = len(task_ids) if limit is None else limit
    if not 0 < limit <= MAX_LIMIT:
        raise ValueError(f"limit must be 1 to {MAX_LIMIT}")
    return {"BizId": int(biz_id), "TaskIdList": list(task_ids), "Limit": limit}


# -- responses ----------------------------------------------------------------
@dataclass(frozen=True)
class GmeSubmitted:
    data_id: str
    task_id: str


def _flag(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")


def _rate(value: Any) -> float:
    try:
        rate = float(value)
    except (TypeError, ValueError):
        return 0.0
    return rate if math.isfinite(rate) else 0.0


def _code(value: Any) -> int:
    """``Code``: an integer (or its text); anything else is not a GME result."""
    if value in (None, ""):
        return 0
    if isinstance(value, (int, str)) or (isinstance(value, float) and math.isfinite(value)):
        try:
            return int(value)
        except ValueError:
            pass
    raise BadResponse(VENDOR, "Code is not an integer")


def _text(data: dict[str, Any], name: str) -> str:
    """A field that must be text (numbers are taken as their text)."""
    value = data.get(name)
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise BadResponse(VENDOR, f"{name} is not text")
    return str(value)


def _objects(value: Any, name: str) -> list[dict[str, Any]]:
    """A list of objects (absent or null: none); anything else is malformed."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise BadResponse(VENDOR, f"{name} is not a list of objects")
    return value


def label_rates(pieces: list[dict[str, Any]]) -> dict[str, float]:
    """Highest ``Rate`` per label over the hit pieces (``MainType`` and ``ScanDetail[].Label``)."""
    rates: dict[str, float] = {}
    for piece in _objects(pieces, "ScanPiece"):
        details = _objects(piece.get("ScanDetail"), "ScanDetail")
        if not _flag(piece.get("HitFlag")):
            continue
        pairs = [(_text(piece, "MainType"), 0.0)] + [(_text(d, "Label"), _rate(d.get("Rate"))) for d in details]
        for label, rate in pairs:
            if label and label != "normal":
                rates[label] = max(rates.get(label, 0.0), rate)
    return rates


@dataclass(frozen=True)
class GmeScanResult:
    data_id: str
    task_id: str
    status: str
    code: int
    msg: str
    hit_flag: bool
    verdict: str | None
    labels: list[str]  # highest rate first
    label_rates: dict[str, float]
    raw: dict[str, Any] = field(repr=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GmeScanResult:
        """A ``DescribeScanResult``; :class:`BadResponse` when its shape is not one."""
        if not isinstance(data, dict):
            raise BadResponse(VENDOR, "a scan result is not an object")
        status, hit = _text(data, "Status"), _flag(data.get("HitFlag"))
        if status not in STATUSES:
            raise BadResponse(VENDOR, "Status is not Start, Success or Error")
        rates = label_rates(data.get("ScanPiece"))
        verdict = "REJECT" if hit else "PASS" if status == STATUS_SUCCESS else None
        return cls(
            data_id=_text(data, "DataId"),
            task_id=_text(data, "TaskId"),
            status=status,
            code=_code(data.get("Code")),
            msg=_text(data, "Msg"),
            hit_flag=hit,
            verdict=verdict,
            labels=sorted(rates, key=lambda k: (-rates[k], k)),
            label_rates=rates,
            raw=data,
        )

    @property
    def pending(self) -> bool:
        return self.status == STATUS_START and not self.hit_flag

    def error(self) -> VendorError | None:
        """A PERMANENT error when the vendor gave up on this task (``Status`` "Error")."""
        if self.status != STATUS_ERROR:
            return None
        return VendorError(
            VENDOR, "scan_failed", self.msg, code=self.code or None, request_id=self.task_id
        )


def parse_submitted(response: dict[str, Any]) -> list[GmeSubmitted]:
    data = response.get("Data")
    if not isinstance(data, list):
        raise BadResponse(VENDOR, "ScanVoice answer without Data")
    return [
        GmeSubmitted(str(d.get("DataId", "")), str(d.get("TaskId", "")))
        for d in data
        if isinstance(d, dict)
    ]


def parse_results(response: dict[str, Any]) -> list[GmeScanResult]:
    """The readable results of a ``DescribeScanResultList`` answer: one malformed entry does not
    hide the others (its task is simply not in the list, as if not ready)."""
    data = response.get("Data")
    if not isinstance(data, list):
        raise BadResponse(VENDOR, "DescribeScanResultList answer without Data")
    results = []
    for item in data:
        try:
            results.append(GmeScanResult.from_dict(item))
        except BadResponse:
            continue
    return results


# -- callbacks ----------------------------------------------------------------
def sign_callback(body: bytes, key: str) -> str:
    """base64(HMAC-SHA1(key, "POST" + raw body)): the ``Signatue`` query parameter."""
    digest = hmac.new(key.encode("utf-8"), b"POST" + body, hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def verify_callback(body: bytes, signature: str | None, key: str) -> bool:
    """Constant-time check of a callback's signature over its raw body."""
    if not signature or not key:
        return False
    # An unencoded '+' in the query string arrives as a space; base64 never has one.
    given = signature.strip().replace(" ", "+").encode("ascii", "replace")
    return hmac.compare_digest(sign_callback(body, key).encode("ascii"), given)


def parse_callback(body: bytes) -> GmeScanResult:
    """A verified callback body (one ``DescribeScanResult``)."""
    try:
        data = safejson.loads(body)
    except safejson.UnsafeJSON as exc:
        raise BadResponse(VENDOR, f"callback body: {exc}") from exc
    if not isinstance(data, dict):
        raise BadResponse(VENDOR, "callback body is not an object")
    return GmeScanResult.from_dict(data)


# -- client -------------------------------------------------------------------
class GmeClient(TencentApiClient):
    """ScanVoice and DescribeScanResultList; errors classified by :data:`GME_ERRORS`."""

    ERRORS: ClassVar[ErrorTable] = GME_ERRORS

    def __init__(
        self, endpoint: str, credentials: Credentials, *, biz_id: int, **kwargs: Any
    ) -> None:
        super().__init__(
            endpoint, credentials, service=SERVICE, version=VERSION, vendor=VENDOR, **kwargs
        )
        self.biz_id = int(biz_id)

    def scan_voice(
        self,
        tasks: Sequence[GmeTask],
        *,
        live: bool,
        callback: str | None,
        scenes: Sequence[str] = ("default",),
        lang: str | None = None,
    ) -> list[GmeSubmitted]:
        params = scan_voice_params(
            self.biz_id, tasks, live=live, callback=callback, scenes=scenes, lang=lang
        )
        return parse_submitted(self.call("ScanVoice", params))

    def describe_scan_results(
        self, task_ids: Sequence[str], limit: int | None = None
    ) -> list[GmeScanResult]:
        return parse_results(
            self.call("DescribeScanResultList", describe_params(self.biz_id, task_ids, limit))
        )
