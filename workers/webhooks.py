"""``voxqueue webhooks``: the HTTP receiver for vendor callbacks (aiohttp).

Each callback is read (at most :data:`MAX_BODY` bytes), identified and verified
(:mod:`workers.webhook_views`), stored as one :class:`CallbackEvent` and answered at
once; the merge into its check is a Celery task sent by name *after* the row is
committed. Database and broker calls block, so they run in a thread pool and the
event loop stays free. Refusals are logged with the vendor and a reason only.

Statuses: 200 stored (also for a task we do not know: it is kept, state "unknown"),
400 malformed, 401 unsigned, 403 bad signature/token or no key configured,
413 body over 1 MiB, 503 not stored or not enqueued (the vendor will deliver again).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from sqlalchemy import select

from config.settings import Settings, get_settings
from models import CallbackEvent, Check
from models.db import session_scope
from vendors.asr import CALLBACK_ACK
from workers.webhook_views import (
    Delivery,
    Inbound,
    Refused,
    Verifiers,
    asr_view,
    gme_view,
    shumei_view,
    tupu_view,
)

log = logging.getLogger("voxqueue.webhooks")

MAX_BODY = 1024 * 1024
MERGE_TASK = "voxqueue.callbacks.merge"
MERGE_QUEUE = "callbacks"
OK = {"ok": True}
View = Callable[[Delivery, Verifiers], Inbound]
ROUTES: list[tuple[str, str, View, dict[str, Any]]] = [
    ("/callbacks/gme", "gme", gme_view, OK),
    ("/callbacks/shumei", "shumei", shumei_view, OK),
    ("/callbacks/tupu", "tupu", tupu_view, OK),
    (r"/callbacks/asr/{check_id:\d{1,18}}/{token}", "asr", asr_view, CALLBACK_ACK),
]


def merge_sender(celery_app) -> Callable[[int], None]:
    """``enqueue`` for a Celery app: send the merge task by name to the callbacks queue."""

    def send(event_id: int) -> None:
        celery_app.send_task(MERGE_TASK, args=[event_id], queue=MERGE_QUEUE)

    return send


def _send_with_default_app(event_id: int) -> None:
    from workers.app import app

    merge_sender(app)(event_id)


class Receiver:
    def __init__(self, settings: Settings, enqueue: Callable[[int], None]) -> None:
        self.settings = settings
        self.verifiers = Verifiers.from_settings(settings)
        self.enqueue = enqueue
        self.executor: ThreadPoolExecutor | None = None

    async def blocking(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    def endpoint(self, vendor: str, view: View, ack: dict[str, Any]):
        async def handle(request: web.Request) -> web.Response:
            try:
                raw = await read_capped(request, MAX_BODY)
                inbound = view(_delivery(request, raw), self.verifiers)
            except Refused as refused:
                log.warning("%s callback refused: %s", vendor, refused.reason,
                            extra={"vendor": vendor, "reason": refused.reason})
                return web.json_response({"error": refused.reason}, status=refused.status)
            return await self.accept(inbound, ack)

        return handle

    async def accept(self, inbound: Inbound, ack: dict[str, Any]) -> web.Response:
        step = "store"
        try:
            event_id, state = await self.blocking(store, inbound, self.settings.database_url)
            step = "enqueue"
            if state == "received":
                await self.blocking(self.enqueue, event_id)
        except Exception as exc:  # noqa: BLE001  (a 503, so the vendor retries; never echo the error: it may quote the body or a URL)
            reason = f"{step}_failed"
            log.error("%s callback not handled (%s: %s)", inbound.vendor, reason,
                      type(exc).__name__, extra={"vendor": inbound.vendor, "reason": reason})
            return web.json_response({"error": "unavailable"}, status=503)
        return web.json_response(ack)


def _delivery(request: web.Request, raw: bytes) -> Delivery:
    return Delivery(raw, request.query, request.match_info, request.content_type)


async def read_capped(request: web.Request, limit: int) -> bytes:
    """The raw body, or :class:`Refused` (413) as soon as it exceeds ``limit`` bytes."""
    if request.content_length is not None and request.content_length > limit:
        raise Refused(413, "too_large")
    chunks, size = [], 0
    while chunk := await request.content.read(64 * 1024):
        size += len(chunk)
        if size > limit:
            raise Refused(413, "too_large")
        chunks.append(chunk)
    return b"".join(chunks)


def store(inbound: Inbound, database_url: str) -> tuple[int, str]:
    """Record the callback (one short transaction); return its id and state."""
    with session_scope(database_url) as session:
        check_id = _matching_check(session, inbound)
        unknown = check_id is None and inbound.must_match
        event = CallbackEvent(
            vendor=inbound.vendor, vendor_task_id=inbound.vendor_task_id, check_id=check_id,
            state="unknown" if unknown else "received", body=inbound.body,
            note=_note(inbound, check_id),
        )
        session.add(event)
        session.flush()
        return event.id, event.state


def _matching_check(session, inbound: Inbound) -> int | None:
    query = select(Check.id).where(Check.service == inbound.vendor)
    if inbound.check_id is not None:
        return session.scalar(query.where(Check.id == inbound.check_id))
    if not inbound.vendor_task_id:
        return None
    return session.scalar(query.where(Check.vendor_task_id == inbound.vendor_task_id).limit(1))


def _note(inbound: Inbound, check_id: int | None) -> str | None:
    if check_id is not None:
        return None
    if inbound.check_id is not None:
        return f"no {inbound.vendor} check {inbound.check_id}"
    if inbound.must_match:
        return f"no {inbound.vendor} check with this task id"
    return f"no {inbound.vendor} check with this task id yet"  # the merge looks again


async def healthz(_request: web.Request) -> web.Response:
    return web.json_response(OK)


async def _thread_pool(app: web.Application) -> AsyncIterator[None]:
    receiver = app[RECEIVER]
    receiver.executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix="webhooks")
    yield
    receiver.executor.shutdown(wait=True)


RECEIVER = web.AppKey("receiver", Receiver)


def create_app(
    settings: Settings | None = None, enqueue: Callable[[int], None] | None = None
) -> web.Application:
    """The receiver; ``enqueue(event_id)`` defaults to sending the merge task to the broker."""
    receiver = Receiver(settings or get_settings(), enqueue or _send_with_default_app)
    app = web.Application(client_max_size=MAX_BODY)
    app[RECEIVER] = receiver
    app.cleanup_ctx.append(_thread_pool)
    app.router.add_get("/healthz", healthz)
    for path, vendor, view, ack in ROUTES:
        app.router.add_post(path, receiver.endpoint(vendor, view, ack))
    return app


class RouteAccessLogger(AbstractAccessLogger):
    """Access log by route pattern: no query string (GME's signature), no ASR token."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        route = getattr(request, "match_info", None)
        resource = route.route.resource if route is not None else None
        path = resource.canonical if resource is not None else "(unmatched)"
        self.logger.info("%s %s %s %.1fms", request.method, path, response.status, time * 1000)


def run(host: str = "127.0.0.1", port: int = 8080) -> None:
    """Serve until interrupted."""
    log.info("webhook receiver listening on http://%s:%s", host, port)
    web.run_app(create_app(), host=host, port=port, print=None,
                access_log_class=RouteAccessLogger, handle_signals=True)

