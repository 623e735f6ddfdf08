"""Tencent offline speech recognition: ``POST /asr/v1/{appid}?...`` and its callback.

The ``Authorization`` header must be base64(HMAC-SHA1(``config.asr_secret_key``,
``"POST" + Host + path + "?" + query sorted by key, values decoded``)), computed
from the request as it arrived (seed 002). Checks and their codes, in order: appid
(1018), signature present (1021), secretid (1010 missing, 1026 unknown), timestamp,
expired, nonce (1011, 1012, 1013), signature (1029), freshness (1023 over 90 days,
1024 expired), nonce replay (1028), parameters (1003..1009, 1016), body (1031).

The answer is ``{"code": 0, "message": "success", "requestId": <int>}``. After
``result_delay_s`` (download included, for ``source_type=0``) the result is POSTed
form-encoded to ``callback_url`` (a failed download: code 1009); the receiver must
answer ``{"code": 0}``, or the sandbox notifies again. ``callback_url`` is the
idempotency key: a duplicate is counted and gets a new ``requestId``.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import itertools
import json
import random
import time
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from sandbox.callbacks import Callback
from sandbox.core import add_vendor_route
from sandbox.moderation import ModerationService, Task
from vendors.asr import AsrSigner

MAX_BODY_BYTES = 5 * 1024 * 1024
MAX_URL_CHARS = 2047
MAX_EXPIRY_S = 90 * 24 * 3600
CALLBACK_ATTEMPTS = 5
DOWNLOAD_FAILED = 1009  # ERROR_HAS_NO_VALID_URL: the audio URL could not be downloaded
NAMES = {0: "success", 1000: "ERROR_BAD_REQ", 1003: "ERROR_HAS_NO_VALID_RES_TEXT_FORMAT",
         1004: "ERROR_HAS_NO_VALID_SUB_SERVICE_TYPE", 1005: "ERROR_HAS_NO_VALID_ENGINE_MODEL_TYPE",
         1006: "ERROR_HAS_NO_VALID_CALLBACK_URL", 1007: "ERROR_HAS_NO_VALID_RES_TYPE",
         1008: "ERROR_HAS_NO_VALID_SOURCE_TYPE", 1009: "ERROR_HAS_NO_VALID_URL",
         1010: "ERROR_HAS_NO_VALID_SECRET_ID", 1011: "ERROR_HAS_NO_VALID_TIMESTAMP",
         1012: "ERROR_HAS_NO_VALID_EXPIRED", 1013: "ERROR_HAS_NO_VALID_NONCE",
         1016: "ERROR_URL_TOO_LONG", 1018: "ERROR_APPID_NOT_REG", 1020: "ERROR_PROCESS_FAILED",
         1021: "ERROR_PROXY_BAD_AUTH", 1023: "ERROR_PROXY_AUTH_TOO_LONG_EXPIRED",
         1024: "ERROR_PROXY_AUTH_EXPIRED", 1026: "ERROR_PROXY_AUTH_SECRETID_NOEXIST",
         1028: "ERROR_PROXY_AUTH_REPLAY_ATTACK", 1029: "ERROR_PROXY_AUTH_FAILED",
         1031: "ERROR_AUDIO_TOO_LARGE"}  # fmt: skip
# name -> (code when missing or invalid, allowed values or None for "a number")
CHOICES: dict[str, tuple[int, tuple[str, ...] | None]] = {
    "res_text_format": (1003, ("0", "1", "2", "3")),
    "sub_service_type": (1004, ("0",)),
    "res_type": (1007, ("1",)),  # only asynchronous results
    "source_type": (1008, ("0", "1")),
}


class AsrError(Exception):
    def __init__(self, code: int, detail: str = "") -> None:
        super().__init__(detail)
        self.code = code


def answer(code: int, detail: str = "", **fields: Any) -> web.Response:
    message = NAMES.get(code, "ERROR_UNKNOWN") + (f": {detail}" if detail else "")
    return web.json_response({"code": code, "message": message, **fields})


def _int(params: dict[str, str], name: str, code: int) -> int:
    try:
        return int(params[name])
    except (KeyError, ValueError):
        raise AsrError(code, f"{name} is missing or not an integer") from None


def _check_numbers(params: dict[str, str]) -> None:
    timestamp, expired = _int(params, "timestamp", 1011), _int(params, "expired", 1012)
    if not 0 < _int(params, "nonce", 1013) <= 9_999_999_999:
        raise AsrError(1013, "nonce must be a positive integer of at most 10 digits")
    if expired <= timestamp:
        raise AsrError(1012, "expired must be after timestamp")


def _check_fresh(params: dict[str, str]) -> None:
    """After the signature: a genuine but stale request says so (the seed's vector: 1024)."""
    timestamp, expired = int(params["timestamp"]), int(params["expired"])
    if expired - timestamp >= MAX_EXPIRY_S:
        raise AsrError(1023, "the signature must expire within 90 days")
    if expired < time.time():
        raise AsrError(1024, "the signature has expired")


def _check_params(params: dict[str, str]) -> None:
    for name, (code, allowed) in CHOICES.items():
        if params.get(name) not in allowed:
            raise AsrError(code, f"{name} must be one of {allowed}")
    if not params.get("engine_model_type"):
        raise AsrError(1005, "engine_model_type is required")
    if not params.get("projectid", "0").isdigit():
        raise AsrError(1000, "projectid must be a number")
    for name, code in (("callback_url", 1006), ("url", 1009)):
        if name == "url" and params["source_type"] != "0":
            continue
        value = params.get(name, "")
        if len(value) > MAX_URL_CHARS:
            raise AsrError(1016, f"{name} is longer than {MAX_URL_CHARS}")
        if not value.startswith(("http://", "https://")):
            raise AsrError(code, f"{name} must be an http(s) URL")


def callback_ack(status: int, body: bytes) -> bool:
    """Delivered only when the receiver answers HTTP 200 with ``{"code": 0}``."""
    try:
        return status == 200 and int(json.loads(body).get("code")) == 0
    except (ValueError, TypeError, AttributeError):
        return False


class AsrService(ModerationService):
    name = "asr"

    def __init__(self, sandbox: Any) -> None:
        super().__init__(sandbox)
        self.request_ids = itertools.count(random.randint(10**8, 9 * 10**8))
        self.nonces: dict[tuple[str, str], float] = {}  # (secretid, nonce) -> expired

    def add_vendor_routes(self, app: web.Application) -> None:
        add_vendor_route(app, self, "POST", "/asr/v1/{appid}", self.submit, action="submit")

    def reset(self) -> None:
        super().reset()
        self.nonces.clear()

    def fault_response(self, kind: str, vendor: str) -> web.StreamResponse | None:
        return answer(1020) if kind == "overload" else None

    def _authenticate(self, request: web.Request, params: dict[str, str]) -> None:
        if request.match_info["appid"] != (self.config.asr_appid or ""):
            raise AsrError(1018, "appid is not registered")
        given = request.headers.get("Authorization", "")
        try:
            if len(base64.b64decode(given, validate=True)) != 20:
                raise ValueError
        except (binascii.Error, ValueError):
            raise AsrError(1021, "Authorization is not a base64 HMAC-SHA1") from None
        if not params.get("secretid"):
            raise AsrError(1010, "secretid is required")
        if not self.config.asr_secret_id or params["secretid"] != self.config.asr_secret_id:
            raise AsrError(1026, "secretid does not exist")
        _check_numbers(params)
        host_path = request.headers.get("Host", "") + request.path
        expected = AsrSigner(self.config.asr_secret_key or "").sign("POST", host_path, params)
        if not hmac.compare_digest(expected.encode(), given.encode()):
            raise AsrError(1029, "the signature does not match")
        _check_fresh(params)
        self._check_replay(params)

    def _check_replay(self, params: dict[str, str]) -> None:
        now = time.time()
        self.nonces = {k: exp for k, exp in self.nonces.items() if exp >= now}
        key = (params["secretid"], params["nonce"])
        if key in self.nonces:
            raise AsrError(1028, "this nonce was already used")
        self.nonces[key] = float(params["expired"])

    async def submit(self, request: web.Request) -> web.Response:
        params = dict(request.rel_url.query)
        try:
            self._authenticate(request, params)
            _check_params(params)
            body = await request.read()
            if params["source_type"] == "1" and not 0 < len(body) <= MAX_BODY_BYTES:
                raise AsrError(1031 if body else 1000, "the body must hold 1 byte to 5 MB of audio")
        except AsrError as error:
            return answer(error.code, str(error))
        info = {
            "callback_url": params["callback_url"],
            "url": params.get("url", ""),
            "projectid": params.get("projectid", "0"),
            "appid": self.config.asr_appid,
        }
        task = self.register(Task(str(next(self.request_ids)), params["callback_url"], info))
        self.process(task, body if params["source_type"] == "1" else params["url"], self._finish)
        return answer(0, requestId=int(task.task_id))

    async def _finish(self, task: Task) -> None:
        task.finish(None, transcribe=True)
        code = 0 if task.error is None else DOWNLOAD_FAILED
        info = task.info
        fields = {"code": code, "message": task.error or "success", "requestId": task.task_id,
                  "appid": info["appid"], "projectid": info["projectid"], "audioUrl": info["url"],
                  "text": task.text or "", "audioTime": task.seconds}  # fmt: skip
        callback = Callback(info["callback_url"], urlencode(fields).encode(),
                            "application/x-www-form-urlencoded", attempts=CALLBACK_ATTEMPTS,
                            accept=callback_ack)  # fmt: skip
        await self.deliver(callback)
