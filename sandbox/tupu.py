"""Tupu live speech-stream moderation: submit, close, signed answers and callbacks.

Requests (seed 001) carry ``timestamp``, ``nonce`` and ``signature``: RSA-SHA256 over
``"{secretId},{timestamp},{nonce}"`` verified with ``config.tupu_client_public_key``
(the numbers exactly as written in the JSON), within ``clock_skew_s``. Answers and
callbacks are ``{"json": "<string>", "signature": b64}`` signed with the server key
(``config.tupu_server_private_key``, or one generated on first use; its public half
is at ``GET /_sandbox/tupu/public-key``).

A stream runs until closed or ``tupu_stream_duration_s``: after ``result_delay_s``
a non-PASS verdict of its URL (:func:`sandbox.moderation.verdict_for`) is POSTed as
a violation (callbackRules 1 and 3 also get a PASS result: label 0 from the vulgar task,
"Normal" with action "pass" from speech review); callbackRules 2 and 3
get ``{"status": "end"}`` when it ends. A stream closed before its result sends
none, unless ``tupu_result_after_close_s`` is set: then, as the real vendor does
with the audio it already pulled, the result comes that long after the close
answer, and the end callback after it. ``forumId`` is the idempotency key: a
duplicate is counted but, as with the real vendor, starts another task.

Error codes are the sandbox's own (the seed lists none); answers are HTTP 200.
"""

from __future__ import annotations

import asyncio
import json
import random
import secrets
import time
from typing import Any

from aiohttp import web
from cryptography.hazmat.primitives import serialization

from sandbox.callbacks import Callback
from sandbox.core import add_vendor_route
from sandbox.moderation import PASS, REVIEW, ModerationService, Task
from sandbox.tupu_keys import (  # noqa: F401  (the codes are part of this module's API)
    BAD_SIGNATURE,
    INVALID_PARAMS,
    STALE,
    UNKNOWN_SECRET_ID,
    UNKNOWN_TASK,
    KeyRing,
    TupuError,
)
from vendors.tupu import CLOSE_PATH, STREAM_SCHEMES, SUBMIT_PATH, TASK_NAMES

CALLBACK_ATTEMPTS = 3
END_CODE = 0  # closed by the customer or ended by itself: a normal end
TASK_IDS = {name: task_id for task_id, name in TASK_NAMES.items()}


def _stamp() -> dict[str, Any]:
    return {"nonce": str(random.random()), "timestamp": int(time.time() * 1000)}


def _stream(item: Any) -> dict[str, Any]:
    if not isinstance(item, dict) or not isinstance(item.get("url"), str):
        raise TupuError(INVALID_PARAMS, "each speechStream needs a url")
    url, callback = item["url"], item.get("callback")
    if url.split("://", 1)[0].lower() not in STREAM_SCHEMES or "://" not in url:
        raise TupuError(INVALID_PARAMS, "url must be an RTMP, RTSP, HLS or HTTP-FLV stream")
    if not isinstance(callback, str) or not callback.startswith(("http://", "https://")):
        raise TupuError(INVALID_PARAMS, "callback must be an http(s) URL")
    if item.get("callbackRules", 0) not in (0, 1, 2, 3):
        raise TupuError(INVALID_PARAMS, "callbackRules must be 0, 1, 2 or 3")
    return item


# Speech review's string labels as Tupu spells them (the client reads them in lower case).
REVIEW_LABELS = {"normal": "Normal", "politics": "Politics", "abuse": "Abuse", "ads": "ADs"}
CLEAN = [("vulgar:0", 99.0), ("speech_review:normal", 99.0)]  # a result that found nothing


def _speech(task: Task, label: str, rate: float) -> tuple[str, dict[str, Any]]:
    """(the Tupu task id of ``label``, one speech as ``vendors.tupu.parse_event`` reads it):
    speech review's label is a string with an ``action``, the other tasks' an integer."""
    name, value = label.split(":")
    review, score = task.verdict == REVIEW, round(rate / 100, 4)
    if name == "speech_review":
        action = "pass" if value == "normal" else "review" if review else "block"
        finding = {"label": REVIEW_LABELS[value], "action": action, "rate": score}
        details = [] if action == "pass" else [{"keyword": "", "hint": "", "mainLabel": REVIEW_LABELS[value]}]
    else:
        finding = {"label": int(value), "rate": score}
        details = [{"startTime": 0, "endTime": 3, **finding}]
    speech = {"requestId": task.task_id, "review": review, **finding,
              "name": f"http://sandbox.invalid/tupu/{task.task_id}.mp3", "details": details}  # fmt: skip
    return TASK_IDS[name], speech


def violation(task: Task) -> dict[str, Any]:
    """The callback of a judged stream: ``{"<task id>": {"speechs": [...]}, ...}``."""
    found = task.found
    pairs = zip(task.labels, found.rates, strict=True) if found and task.labels else CLEAN
    data = {"code": 0, "message": "success", "requestId": task.task_id,
            "forumId": task.info.get("forumId"), **_stamp()}  # fmt: skip
    for task_id, speech in (_speech(task, label, rate) for label, rate in pairs):
        data.setdefault(task_id, {"speechs": []})["speechs"].append(speech)
    return data


class TupuService(ModerationService):
    name = "tupu"

    def __init__(self, sandbox: Any) -> None:
        super().__init__(sandbox)
        self.keys = KeyRing(self.config)
        self.closed: dict[str, asyncio.Event] = {}

    def add_vendor_routes(self, app: web.Application) -> None:
        add_vendor_route(app, self, "POST", SUBMIT_PATH, self.submit, action="submit")
        add_vendor_route(app, self, "POST", CLOSE_PATH, self.close, action="close")
        app.router.add_get("/_sandbox/tupu/public-key", self.public_key)

    def reset(self) -> None:
        super().reset()
        self.closed.clear()

    async def public_key(self, request: web.Request) -> web.Response:
        key = await self.keys.server_key()
        pem = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return web.Response(body=pem, content_type="application/x-pem-file")

    async def _answer(self, code: int, message: str, result: list[dict[str, Any]]) -> web.Response:
        data = {"code": code, "message": message, "result": result, **_stamp()}
        return web.json_response(await self.keys.envelope(data, "valid"))

    async def _authenticated(self, request: web.Request) -> dict[str, Any]:
        raw = await request.read()
        try:
            body, literal = json.loads(raw), json.loads(raw, parse_int=str, parse_float=str)
        except ValueError:
            raise TupuError(INVALID_PARAMS, "the body is not JSON") from None
        if not isinstance(body, dict) or not isinstance(body.get("speechStream"), list):
            raise TupuError(INVALID_PARAMS, "speechStream must be a list")
        secret_id = request.match_info["secret_id"]
        if not self.config.tupu_secret_id or secret_id != self.config.tupu_secret_id:
            raise TupuError(UNKNOWN_SECRET_ID, "unknown secretId")
        self.keys.verify_request(secret_id, literal)
        if not body["speechStream"]:
            raise TupuError(INVALID_PARAMS, "speechStream is empty")
        return body

    async def submit(self, request: web.Request) -> web.Response:
        try:
            streams = [_stream(s) for s in (await self._authenticated(request))["speechStream"]]
        except TupuError as error:
            return await self._answer(error.code, error.message, [])
        return await self._answer(0, "success", [self._start(s) for s in streams])

    def _start(self, stream: dict[str, Any]) -> dict[str, Any]:
        task_id = secrets.token_hex(12)
        echo = {
            k: stream[k] for k in ("url", "callback", "roomId", "userId", "forumId") if k in stream
        }
        info = {**echo, "rules": stream.get("callbackRules", 0), "status": "running"}
        task = self.register(Task(task_id, str(stream.get("forumId") or task_id), info))
        task.audio = stream["url"].encode()
        self.closed[task_id] = asyncio.Event()
        self.courier.spawn(self.name, self._run(task, self.config.result_delay_s))
        return {"requestId": task_id, **echo}

    async def close(self, request: web.Request) -> web.Response:
        try:
            items = (await self._authenticated(request))["speechStream"]
            ids = [str(i.get("requestId")) if isinstance(i, dict) else "" for i in items]
            unknown = [i for i in ids if i not in self.ledger.tasks]
            if unknown:
                raise TupuError(UNKNOWN_TASK, f"unknown requestId {unknown[0]}")
        except TupuError as error:
            return await self._answer(error.code, error.message, [])
        for task_id in ids:
            self.ledger.tasks[task_id].info["status"] = "closed"
            self.closed[task_id].set()
        return await self._answer(0, "success", [{"requestId": i, "status": "closed"} for i in ids])

    async def _run(self, task: Task, delay: float) -> None:
        started, closed = time.monotonic(), self.closed[task.task_id]
        if not await _closed_within(closed, delay):
            await self._judge(task)
        elif self.config.tupu_result_after_close_s is not None:  # what it pulled before the close
            await asyncio.sleep(self.config.tupu_result_after_close_s)
            await self._judge(task)
        remaining = self.config.tupu_stream_duration_s - (time.monotonic() - started)
        if not await _closed_within(closed, remaining):
            task.info["status"] = "ended"
        if task.info["rules"] in (2, 3):
            end = {"code": END_CODE, "requestId": task.task_id, "status": "end"}
            await self._send(task, end | _stamp())

    async def _judge(self, task: Task) -> None:
        task.finish(self.name)
        if task.verdict != PASS or task.info["rules"] in (1, 3):
            await self._send(task, violation(task))

    async def _send(self, task: Task, data: dict[str, Any]) -> None:
        body = json.dumps(await self.keys.envelope(data, self.config.callback_signing)).encode()
        await self.deliver(Callback(task.info["callback"], body, attempts=CALLBACK_ATTEMPTS))


async def _closed_within(closed: asyncio.Event, seconds: float) -> bool:
    try:
        await asyncio.wait_for(closed.wait(), timeout=max(0.0, seconds))
    except TimeoutError:
        return closed.is_set()
    return True
