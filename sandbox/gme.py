"""Tencent GME voice moderation (2018-07-11) behind the Tencent front door.

``ScanVoice`` takes 1..100 tasks for ``config.gme_biz_id``; a file is downloaded
when processed (a failure gives ``Status`` "Error"), a live stream is judged on its
URL. Until ``result_delay_s`` has passed a task is ``Status`` "Start";
``DescribeScanResultList`` then answers "Success" built from
:func:`sandbox.moderation.verdict_for`. With ``Callback``, the same
``DescribeScanResult`` is POSTed there, signed in the query parameter ``Signatue``
with ``config.gme_callback_key``. A ``DataId`` seen before gets its first ``TaskId``
back (counted as a duplicate, not accepted again). Each task records the ``Lang`` of the
call that made it (``lang`` in its snapshot; None when unsent, which the vendor reads as
Chinese).
"""

from __future__ import annotations

import json
import secrets
import uuid
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from sandbox.callbacks import Callback, tamper
from sandbox.moderation import ModerationService, Task
from sandbox.tencent import (
    INTERNAL_ERROR,
    INVALID_PARAMETER,
    MISSING_PARAMETER,
    TencentError,
    mount,
)
from vendors.gme import SIGNATURE_PARAM, sign_callback

MAX_TASKS = 100
MAX_LIMIT, DEFAULT_LIMIT = 500, 10
CALLBACK_ATTEMPTS = 3
DOWNLOAD_FAILED = 1001  # Code of an "Error" result (the sandbox's choice)
INVALID_CALLBACK = "InvalidParameter.CallbackAddress"
KEYWORD = "违规字"


def _required(params: dict[str, Any], name: str) -> Any:
    if params.get(name) in (None, ""):
        raise TencentError(
            MISSING_PARAMETER, f"The request is missing a required parameter `{name}`"
        )
    return params[name]


def _flag(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")


def _id_list(params: dict[str, Any], name: str) -> list[Any]:
    items = _required(params, name)
    if not isinstance(items, list) or not 0 < len(items) <= MAX_TASKS:
        raise TencentError(INVALID_PARAMETER, f"`{name}` must hold 1 to {MAX_TASKS} items")
    return items


def _task(item: Any) -> dict[str, str]:
    if not isinstance(item, dict):
        raise TencentError(INVALID_PARAMETER, "each of `Tasks` must be a Task object")
    data_id, url = _required(item, "DataId"), _required(item, "Url")
    if not isinstance(data_id, str) or not isinstance(url, str) or "://" not in url:
        raise TencentError(INVALID_PARAMETER, "Task.DataId must be a string and Task.Url a URL")
    return {"DataId": data_id, "Url": url, "RoomId": item.get("RoomId", ""),
            "OpenId": item.get("OpenId", "")}  # fmt: skip


def _callback(params: dict[str, Any]) -> str | None:
    url = params.get("Callback") or None
    if url is not None and (urlsplit(url).scheme not in ("http", "https") or "://" not in url):
        raise TencentError(INVALID_CALLBACK, "Callback must be an http(s) URL")
    return url


def _piece(task: Task) -> dict[str, Any]:
    found, info = task.found, task.info
    assert found is not None
    seconds = (task.finished or task.created) - task.created if info["live"] else task.seconds
    duration = int(1000 * seconds)
    span = {"KeyWord": KEYWORD, "StartTime": 0, "EndTime": duration}
    details = [
        {"Label": label, "Rate": f"{rate:.2f}", **span}
        for label, rate in zip(task.labels, found.rates, strict=True)
    ]
    return {
        "HitFlag": found.hit, "MainType": task.labels[0] if found.hit else "normal",
        "ScanDetail": details, "DumpUrl": "", "Offset": 0, "Duration": duration,
        "PieceStartTime": int(task.created), "RoomId": info["room_id"], "OpenId": info["open_id"],
        "Info": "",
    }  # fmt: skip


def scan_result(task: Task, biz_id: int) -> dict[str, Any]:
    """The ``DescribeScanResult`` of a task, as polled or pushed."""
    info = task.info
    result = {
        "Code": 0, "Msg": "", "DataId": task.key, "TaskId": task.task_id, "BizId": biz_id,
        "Url": info["url"], "Live": info["live"], "Scenes": info["scenes"],
        "ScanStartTime": int(task.created), "ScanFinishTime": 0, "HitFlag": False,
        "Status": "Start", "ScanPiece": [],
    }  # fmt: skip
    if not task.ready:
        return result
    result["ScanFinishTime"] = int(task.finished or 0)
    if task.error is not None:
        return result | {"Status": "Error", "Code": DOWNLOAD_FAILED, "Msg": task.error}
    hit = task.found is not None and task.found.hit
    return result | {"Status": "Success", "HitFlag": hit, "ScanPiece": [_piece(task)]}


def signed(body: bytes, key: str, mode: str) -> tuple[bytes, str]:
    """(body, Signatue) for a callback under the ``callback_signing`` mode."""
    if mode == "forged":
        return body, sign_callback(body, secrets.token_hex(16))
    signature = sign_callback(body, key)
    return (tamper(body) if mode == "corrupt" else body), signature


class GmeService(ModerationService):
    name = "gme"
    version = "2018-07-11"
    overload_code = INTERNAL_ERROR

    def __init__(self, sandbox: Any) -> None:
        super().__init__(sandbox)
        self.actions = {
            "ScanVoice": self.scan_voice,
            "DescribeScanResultList": self.describe_scan_result_list,
        }

    def add_vendor_routes(self, app: web.Application) -> None:
        mount(app, self)

    def _biz_id(self, params: dict[str, Any]) -> int:
        try:
            biz_id = int(_required(params, "BizId"))
        except (TypeError, ValueError):
            raise TencentError(INVALID_PARAMETER, "`BizId` must be an integer") from None
        if self.config.gme_biz_id is None or biz_id != self.config.gme_biz_id:
            raise TencentError(
                INVALID_PARAMETER, f"BizId {biz_id} is not an application of this account"
            )
        return biz_id

    def scan_voice(self, params: dict[str, Any]) -> dict[str, Any]:
        self._biz_id(params)
        items = [_task(item) for item in _id_list(params, "Tasks")]
        live, callback = _flag(params.get("Live")), _callback(params)
        scenes = params.get("Scenes") or ["default"]
        lang = params.get("Lang")  # recorded as received (unsent: Chinese, the vendor's default)
        data = []
        for item in items:
            task = self.existing(item["DataId"]) or self._start(item, live, scenes, callback, lang)
            data.append({"DataId": task.key, "TaskId": task.task_id})
        return {"Data": data}

    def _start(
        self, item: dict[str, str], live: bool, scenes: list[str], callback: str | None,
        lang: Any = None,
    ) -> Task:
        info = {"url": item["Url"], "live": live, "scenes": scenes, "callback": callback,
                "room_id": item["RoomId"], "open_id": item["OpenId"], "lang": lang}  # fmt: skip
        task = self.register(Task(str(uuid.uuid4()), item["DataId"], info))
        if live:
            task.audio = item["Url"].encode()
        self.process(task, None if live else item["Url"], self._finish)
        return task

    async def _finish(self, task: Task) -> None:
        task.finish(self.name)
        callback = task.info["callback"]
        if callback:
            result = scan_result(task, int(self.config.gme_biz_id or 0))
            body, signature = signed(
                json.dumps(result, ensure_ascii=False).encode(),
                self.config.gme_callback_key or "",
                self.config.callback_signing,
            )
            params = {SIGNATURE_PARAM: signature}
            await self.deliver(Callback(callback, body, params=params, attempts=CALLBACK_ATTEMPTS))

    def describe_scan_result_list(self, params: dict[str, Any]) -> dict[str, Any]:
        biz_id = self._biz_id(params)
        task_ids = _id_list(params, "TaskIdList")
        try:
            limit = int(params.get("Limit") or DEFAULT_LIMIT)
        except (TypeError, ValueError):
            raise TencentError(INVALID_PARAMETER, "`Limit` must be an integer") from None
        if not 0 < limit <= MAX_LIMIT:
            raise TencentError(INVALID_PARAMETER, f"`Limit` must be 1 to {MAX_LIMIT}")
        tasks = [
            self.ledger.tasks[t]
            for t in dict.fromkeys(map(str, task_ids))
            if t in self.ledger.tasks
        ]
        return {"Data": [scan_result(t, biz_id) for t in tasks[:limit]]}
