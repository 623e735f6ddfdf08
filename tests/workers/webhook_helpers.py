"""A webhook receiver on a real socket (its own event loop in a thread), rows and signatures."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import json
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import requests
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from sqlalchemy import select

from config.settings import get_settings
from models import Batch, CallbackEvent, Check, Job
from models.base import utcnow
from models.db import session_scope
from tasks.keys import callback_token
from workers.webhooks import server_options


@contextlib.contextmanager
def serve(app: web.Application, options: dict | None = None) -> Iterator[Callable[[str], str]]:
    """Serve ``app`` on a free port (with ``options``, the receiver's by default); yield ``url(path)``;
    stop the server and its thread."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="webhooks-test-loop", daemon=True)
    thread.start()

    def call(coro):
        return asyncio.run_coroutine_threadsafe(coro, loop).result(30)

    server = TestServer(app, host="127.0.0.1")
    try:
        call(server.start_server(**(options if options is not None else server_options())))  # as `run` does
        yield lambda path: str(server.make_url(path))
    finally:
        call(server.close())
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def make_check(url: str, service: str, vendor_task_id: str | None = None, *, request_id: str | None = None,
               next_poll_in: float | None = 60.0) -> int:
    """A running check, submitted when it has a task id (its ``requestId`` recorded as a
    submission records it), its next poll ``next_poll_in`` seconds away."""
    with session_scope(url) as session:
        batch = Batch(name=f"b-{uuid.uuid4().hex[:8]}")
        job = Job(batch=batch, key="row-1", seq=1, audio="a.wav", services=[service], options={})
        check = Check(job=job, service=service, status="running", vendor_task_id=vendor_task_id,
                      result={"requestId": request_id} if request_id else None)
        if vendor_task_id and next_poll_in is not None:
            check.next_poll_at = utcnow() + dt.timedelta(seconds=next_poll_in)
            check.deadline_at = utcnow() + dt.timedelta(hours=2)
        session.add(check)
        session.flush()
        return check.id


def check_row(url: str, check_id: int) -> Check:
    with session_scope(url) as session:
        return session.get(Check, check_id)


def events(url: str) -> list[CallbackEvent]:
    with session_scope(url) as session:
        return list(session.scalars(select(CallbackEvent).order_by(CallbackEvent.id)))


def key(event: CallbackEvent) -> tuple:
    return event.vendor, event.vendor_task_id, event.check_id, event.state


def tupu_envelope(key: rsa.RSAPrivateKey, data: dict[str, Any]) -> dict[str, str]:
    """What Tupu posts: the data as a JSON string, RSA PKCS#1 v1.5 SHA-256 over it, base64."""
    text = json.dumps(data, ensure_ascii=False)
    signature = key.sign(text.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())
    return {"json": text, "signature": base64.b64encode(signature).decode("ascii")}


def gme_body(task_id: str) -> bytes:
    return json.dumps({
        "Code": 0, "DataId": "vq-data", "TaskId": task_id, "BizId": 1400000000, "Status": "Success",
        "HitFlag": True, "ScanPiece": [{"HitFlag": True, "MainType": "abuse", "ScanDetail": [
            {"Label": "abuse", "Rate": "91.50", "KeyWord": "x", "StartTime": 0, "EndTime": 1000}]}],
    }).encode()


def shumei_body(bt_id: str, access_key: str) -> dict[str, Any]:
    return {
        "requestId": "6a9cb980346dfea41111656a514e9109", "btId": bt_id, "code": 1100,
        "message": "正常", "riskLevel": "PASS", "audioText": "hello", "audioTime": 40,
        "requestParams": {"accessKey": access_key, "btId": bt_id, "channel": "default"},
    }


def tupu_data(task_id: str) -> dict[str, Any]:
    return {
        "code": 0, "message": "success", "nonce": "0.5", "timestamp": 1629969759333,
        "5c8213b9bc807806aab0a574": {"speechs": [
            {"requestId": task_id, "label": 1, "review": False, "url": "http://x/seg.mp3"}]},
    }


def asr_form(request_id: str) -> dict[str, str]:
    return {"code": "0", "message": "success", "requestId": request_id, "appid": "1250000000",
            "projectid": "0", "audioUrl": "http://x/a.wav", "text": "你好", "audioTime": "2.5"}


class Client:
    """Posts callbacks to a served receiver; ``sent`` records the event ids it enqueued,
    ``queried`` the checks it asked Shumei about."""

    def __init__(self, url: Callable[[str], str], database_url: str, sent: list[int] | None = None,
                 queried: list[int] | None = None):
        self.url, self.database_url = url, database_url
        self.sent = sent if sent is not None else []
        self.queried = queried if queried is not None else []

    def gme(self, body: bytes, signature: str | None) -> requests.Response:
        params = {"Signatue": signature} if signature is not None else {}
        return requests.post(self.url("/callbacks/gme"), params=params, data=body,
                             headers={"Content-Type": "application/json"}, timeout=10)

    def post(self, path: str, **kwargs) -> requests.Response:
        return requests.post(self.url(path), timeout=10, **kwargs)

    def asr_path(self, check_id: int, token: str | None = None) -> str:
        token = token or callback_token("asr", check_id, get_settings())
        return f"/callbacks/asr/{check_id}/{token}"

    def shumei_path(self, check_id: int, token: str | None = None) -> str:
        token = token or callback_token("shumei", check_id, get_settings())
        return f"/callbacks/shumei/{check_id}/{token}"

    def shumei(self, check_id: int, bt_id: str) -> requests.Response:
        """An authenticated Shumei callback: the check's own URL, with its token."""
        return self.post(self.shumei_path(check_id), json=shumei_body(bt_id, "shumei-key"))

    def shumei_unauthenticated(self, body: dict[str, Any]) -> requests.Response:
        return self.post("/callbacks/shumei", json=body)
