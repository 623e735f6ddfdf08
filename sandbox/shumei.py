"""Shumei audio-file moderation v4: ``POST /audio/v4``, ``POST /query_audio/v4``, callback.

Every answer is HTTP 200 with a ``code`` (seed 004): 1100 success, 1101 still
processing, 1901 QPS limit (the ``throttle`` fault), 1902 invalid parameters,
1903 service failure (the ``overload`` fault), 1904 download failure, 9101 wrong
``accessKey``. RAW content is base64 (``formatInfo`` required; pcm also needs
``rate`` and ``track``) up to ``config.shumei_raw_max_bytes``; URL content is
downloaded when processed. After ``result_delay_s`` the query answers the seed's
result shape (and the ``callback``, if given, gets the same body at that very URL,
retried up to 12 times until HTTP 200). A failure carries only ``code``, ``message``
and ``requestId`` (no ``btId``), as the seed says. A ``btId`` seen before answers its
first ``requestId``.

Files the vendor could not moderate come with code 1100 and ``auxInfo.errorCode`` (newer
v4 docs), ``riskLevel`` PASS and no segments: 2007 for audio without valid data (empty,
or every sample silent), and 2003 for a failed download when
``config.shumei_download_failure`` is 2003 (by default a download failure is code 1904).

Clusters: ``/audio/v4`` and ``/query_audio/v4`` are the default cluster; the same under
``/{cluster}/`` are another one (``/en/audio/v4``: an English cluster). A task records
its cluster and the ``data.lang`` it was sent with; a cluster knows only its own btIds
(asked at another, the query answers 1902), and each task counts the queries it got
per cluster (``queries`` in its snapshot).
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from typing import Any

from aiohttp import web

from sandbox.callbacks import Callback
from sandbox.core import add_vendor_route
from sandbox.moderation import PASS, REJECT, ModerationService, Task

SUCCESS, PROCESSING, QPS_LIMIT, INVALID, SERVICE_FAILURE = 1100, 1101, 1901, 1902, 1903
DOWNLOAD_FAILED, NO_PERMISSION = 1904, 9101
AUX_DOWNLOAD_FAILED, AUX_NO_VALID_DATA = 2003, 2007  # auxInfo.errorCode, with code 1100
DOWNLOAD_FAILURES = (DOWNLOAD_FAILED, AUX_DOWNLOAD_FAILED)  # how a failed download is told
DEFAULT_CLUSTER = "default"
MESSAGES = {
    SUCCESS: "成功", PROCESSING: "处理中", QPS_LIMIT: "QPS超限", INVALID: "参数不合法",
    SERVICE_FAILURE: "服务失败", DOWNLOAD_FAILED: "下载失败", NO_PERMISSION: "无权限操作",
}  # fmt: skip
REQUIRED = ("appId", "eventId", "type", "contentType", "content", "btId", "data")
BT_ID_MAX = 128
CALLBACK_ATTEMPTS = 12
SEGMENT_S = 10
DESCRIPTIONS = {"porn": "色情", "abuse": "辱骂", "ad": "广告", "politics": "涉政", "moan": "娇喘"}


class ShumeiError(Exception):
    def __init__(self, code: int, detail: str = "") -> None:
        super().__init__(detail)
        self.code, self.detail = code, detail


def answer(code: int, detail: str = "", **fields: Any) -> web.Response:
    message = MESSAGES.get(code, "") + (f": {detail}" if detail else "")
    body = {"code": code, "message": message, "requestId": uuid.uuid4().hex} | fields
    return web.json_response(body, dumps=lambda o: json.dumps(o, ensure_ascii=False))


def _content(body: dict[str, Any], raw_max: int) -> bytes | str:
    """The audio (RAW, decoded) or the URL to download."""
    kind, content, data = body["contentType"], body["content"], body["data"]
    if not isinstance(data, dict) or not isinstance(content, str):
        raise ShumeiError(INVALID, "data must be an object and content a string")
    if kind == "URL":
        return content
    if kind != "RAW":
        raise ShumeiError(INVALID, "contentType must be URL or RAW")
    fmt = data.get("formatInfo")
    if fmt not in ("pcm", "wav", "mp3"):
        raise ShumeiError(INVALID, "RAW content needs data.formatInfo: pcm, wav or mp3")
    if fmt == "pcm" and (data.get("rate") is None or data.get("track") not in (1, 2)):
        raise ShumeiError(INVALID, "pcm needs data.rate and data.track")
    if len(content) > raw_max:
        raise ShumeiError(INVALID, f"RAW content is over {raw_max} bytes")
    try:
        return base64.b64decode(content, validate=True)
    except (binascii.Error, ValueError):
        raise ShumeiError(INVALID, "content is not base64") from None


def _segment(task: Task, i: int, label: str, level: str) -> dict[str, Any]:
    return {
        "audioStarttime": i * SEGMENT_S, "audioEndtime": (i + 1) * SEGMENT_S,
        "audioUrl": f"http://sandbox.invalid/shumei/{task.task_id}_a{i:04d}.mp3",
        "riskLevel": level, "riskLabel1": label, "riskLabel2": "", "riskLabel3": "",
        "riskDescription": DESCRIPTIONS.get(label, "正常"),
        "riskDetail": {"audioText": task.text if i == 0 else ""},
    }  # fmt: skip


def _details(task: Task) -> list[dict[str, Any]]:
    """One segment per label (the first at the task's verdict, the rest REJECT)."""
    if task.verdict == PASS:
        return [_segment(task, 0, "normal", PASS)] if task.info["return_all_text"] else []
    return [
        _segment(task, i, label, task.verdict if i == 0 else REJECT)
        for i, label in enumerate(task.labels)
    ]


def _tags(types: str) -> dict[str, Any]:
    kinds, tags = set(types.split("_")), {}
    if "GENDER" in kinds:
        tags["gender"] = {"label": "女性", "probability": 95}
    if "TIMBRE" in kinds:
        tags["timbre"] = [{"label": "少女音", "probability": 56}]
    if "SING" in kinds:
        tags["song"] = 0
    if "LANGUAGE" in kinds:
        tags["language"] = [{"label": 0, "confidence": 99}, {"label": 1, "confidence": 1}]
    return tags


def no_valid_data(audio: bytes) -> bool:
    """Audio with nothing to hear: no bytes after a WAV header, or only zero samples."""
    if audio[:4] == b"RIFF" and audio[8:12] == b"WAVE" and (at := audio.find(b"data", 12)) >= 0:
        audio = audio[at + 8 :]  # the samples, after the data chunk's id and size
    return not audio.strip(b"\x00")


def result_body(task: Task, download_failure: int = DOWNLOAD_FAILED) -> dict[str, Any]:
    """The query answer and callback body of a finished task (seed 004)."""
    ids = {"requestId": task.task_id, "btId": task.key}
    aux = AUX_NO_VALID_DATA if task.info.get("no_valid_data") else None
    if task.error is not None and download_failure == AUX_DOWNLOAD_FAILED:
        aux = AUX_DOWNLOAD_FAILED
    elif task.error is not None:  # "除message和requestId之外的字段，只有当code为1100时才会存在"
        return {"code": DOWNLOAD_FAILED, "message": f"下载失败: {task.error}", "requestId": task.task_id}
    if aux is not None:  # not moderated, yet code 1100 and PASS: the vendor says so in auxInfo
        return {"code": SUCCESS, "message": "成功", **ids, "riskLevel": PASS, "audioText": "",
                "audioTime": 0, "audioDetail": [], "requestParams": task.info["request_params"],
                "auxInfo": {"errorCode": aux}}  # fmt: skip
    body = {
        "code": SUCCESS, "message": "正常", **ids, "riskLevel": task.verdict,
        "audioText": task.text, "audioTime": max(1, round(task.seconds)),
        "audioDetail": _details(task), "requestParams": task.info["request_params"],
    }  # fmt: skip
    tags = _tags(task.info["type"])
    return body | ({"audioTags": tags} if tags else {})


class ShumeiService(ModerationService):
    name = "shumei"

    def add_vendor_routes(self, app: web.Application) -> None:
        for prefix in ("", "/{cluster:[A-Za-z0-9_-]+}"):
            add_vendor_route(app, self, "POST", prefix + "/audio/v4", self.submit, action="submit")
            add_vendor_route(app, self, "POST", prefix + "/query_audio/v4", self.query, action="query")

    def fault_response(self, kind: str, vendor: str) -> web.StreamResponse | None:
        return answer(QPS_LIMIT if kind == "throttle" else SERVICE_FAILURE, "sandbox fault")

    async def _body(self, request: web.Request) -> dict[str, Any]:
        try:
            body = json.loads(await request.read())
        except ValueError:
            raise ShumeiError(INVALID, "the body is not JSON") from None
        if not isinstance(body, dict):
            raise ShumeiError(INVALID, "the body must be a JSON object")
        key = self.config.shumei_access_key
        if not key or body.get("accessKey") != key:
            raise ShumeiError(NO_PERMISSION, "unknown accessKey")
        return body

    async def submit(self, request: web.Request) -> web.Response:
        try:
            body = await self._body(request)
            missing = [name for name in REQUIRED if body.get(name) in (None, "")]
            if missing:
                raise ShumeiError(INVALID, f"missing {', '.join(missing)}")
            bt_id = str(body["btId"])
            if len(bt_id) > BT_ID_MAX:
                raise ShumeiError(INVALID, f"btId is longer than {BT_ID_MAX}")
            source = _content(body, self.config.shumei_raw_max_bytes)
        except ShumeiError as error:
            return answer(error.code, error.detail)
        task = self.existing(bt_id) or self._start(bt_id, body, source, _cluster(request))
        return answer(SUCCESS, requestId=task.task_id, btId=bt_id)

    def _start(self, bt_id: str, body: dict[str, Any], source: bytes | str, cluster: str) -> Task:
        data = {k: v for k, v in body["data"].items() if k != "accessKey"}
        info = {"content_type": body["contentType"], "type": str(body["type"]),
                "callback": body.get("callback") or None, "request_params": data,
                "return_all_text": data.get("returnAllText") == 1, "cluster": cluster,
                "lang": data.get("lang"), "queries": {}}  # fmt: skip
        task = self.register(Task(uuid.uuid4().hex, bt_id, info))
        self.process(task, source, self._finish)
        return task

    async def _finish(self, task: Task) -> None:
        task.info["no_valid_data"] = task.error is None and no_valid_data(task.audio)
        task.finish(self.name, transcribe=True)
        if task.info["callback"]:
            body = json.dumps(self._result(task), ensure_ascii=False).encode()
            await self.deliver(Callback(task.info["callback"], body, attempts=CALLBACK_ATTEMPTS))

    async def query(self, request: web.Request) -> web.Response:
        try:
            body = await self._body(request)
            bt_id, cluster = str(body.get("btId") or ""), _cluster(request)
            task = self.ledger.for_key(bt_id)
            if task is not None:  # counted where it was asked, even at the wrong cluster
                task.info["queries"][cluster] = task.info["queries"].get(cluster, 0) + 1
            if task is None or task.info["cluster"] != cluster:
                raise ShumeiError(INVALID, f"unknown btId at cluster {cluster}")
        except ShumeiError as error:
            return answer(error.code, error.detail)
        if not task.ready:
            return answer(PROCESSING, requestId=task.task_id, btId=bt_id)
        return web.json_response(
            self._result(task), dumps=lambda o: json.dumps(o, ensure_ascii=False)
        )

    def _result(self, task: Task) -> dict[str, Any]:
        return result_body(task, self.config.shumei_download_failure)


def _cluster(request: web.Request) -> str:
    return request.match_info.get("cluster", DEFAULT_CLUSTER)
