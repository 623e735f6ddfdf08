"""``voxqueue webhooks``: the HTTP receiver for vendor callbacks (aiohttp).

Each callback is read (at most :data:`MAX_BODY` bytes, within ``Limits.body_s``),
identified and verified (:mod:`workers.webhook_views`), stored as one
:class:`CallbackEvent` and answered at once; the merge into its check is a Celery task
sent by name *after* the row is committed. Only what passed authentication is stored:
an unauthenticated Shumei callback stores nothing; it sends ``voxqueue.shumei.query`` for
the running check it names (once per ``SIGNAL_GAP_S``: a flood of them asks the vendor once). Database and broker calls block, so they run in a thread pool, each
within ``Limits.call_s``: a database or broker that accepts connections and never
answers costs the vendor a 503 (it delivers again), never a hang. Refusals are logged
with the vendor and a reason only.

Statuses: 200 stored (also for a task we do not know: it is kept, state "unknown"; and for
an unauthenticated Shumei signal), 400 malformed, 401 unsigned, 403 bad signature/token or
no key configured, 408 body too slow, 413 body over 1 MiB, 503 not stored or not enqueued.
``GET /healthz``: 200 ``{"database": "ok", "broker": "ok"}``, or 503 naming what is down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import redis
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.http_exceptions import HttpProcessingError
from sqlalchemy import select, text

from config.broker import broker_url
from config.celery import CALLBACK_MERGE, SHUMEI_QUERY
from config.settings import Settings, get_settings
from models import CallbackEvent, Check, CheckStatus
from models.db import engine_for, session_scope
from tasks import metrics
from vendors.asr import CALLBACK_ACK
from workers.webhook_views import (
    Delivery,
    Inbound,
    Refused,
    Signal,
    Verifiers,
    asr_view,
    gme_view,
    shumei_signal_view,
    shumei_view,
    tupu_view,
)

log = logging.getLogger("voxqueue.webhooks")

MAX_BODY = 1024 * 1024
MERGE_TASK = CALLBACK_MERGE
MERGE_QUEUE = "callbacks"
QUERY_TASK = SHUMEI_QUERY
OK = {"ok": True}
BROKER_SOCKET_TIMEOUT_S = 5.0
SIGNAL_GAP_S = 10.0  # one query per check per gap, however many unauthenticated callbacks name it
MAX_REMEMBERED = 10_000
STARTUP_S = 15.0
View = Callable[[Delivery, Verifiers], Inbound | Signal]
CHECK = r"{check_id:[0-9]{1,18}}/{token}"
ROUTES: list[tuple[str, str, View, dict[str, Any]]] = [
    ("/callbacks/gme", "gme", gme_view, OK),
    ("/callbacks/shumei", "shumei", shumei_signal_view, OK),
    (f"/callbacks/shumei/{CHECK}", "shumei", shumei_view, OK),
    ("/callbacks/tupu", "tupu", tupu_view, OK),
    (f"/callbacks/asr/{CHECK}", "asr", asr_view, CALLBACK_ACK),
]


@dataclass(frozen=True)
class Limits:
    """How long the receiver waits, in seconds (tests shorten them)."""

    body_s: float = 5.0  # reading a body: a slow-loris sender gets a 408
    call_s: float = 10.0  # each database or broker call of a request (a callback: two at most)
    probe_s: float = 2.0  # each /healthz probe
    shutdown_s: float = 2.0  # for requests still running at SIGTERM (aiohttp may wait twice this)


def merge_sender(celery_app) -> Callable[[int], None]:
    """``enqueue`` for a Celery app: send the merge task by name to the callbacks queue."""

    def send(event_id: int) -> None:
        celery_app.send_task(MERGE_TASK, args=[event_id], queue=MERGE_QUEUE, retry=False)

    return send


def _send_with_default_app(event_id: int) -> None:
    from workers.app import app

    merge_sender(app)(event_id)


def _query_with_default_app(check_id: int) -> None:
    from workers.app import app

    app.send_task(QUERY_TASK, args=[check_id], retry=False)  # routed to the shumei queue


class Receiver:
    def __init__(self, settings: Settings, enqueue: Callable[[int], None], query: Callable[[int], None],
                 broker_probe: Callable[[], None], limits: Limits) -> None:
        self.settings = settings
        self.verifiers = Verifiers.from_settings(settings)
        self.enqueue, self.query, self.limits = enqueue, query, limits
        self.probes = {"database": self._probe_database, "broker": broker_probe}
        self.executor: ThreadPoolExecutor | None = None
        self.probe_executor: ThreadPoolExecutor | None = None
        self._probing: dict[str, asyncio.Future] = {}
        self._asked: dict[int, float] = {}  # check id -> when its query was sent (monotonic)

    def _first_ask(self, check_id: int) -> bool:
        """Whether to send a query for the check: not when one went in the last SIGNAL_GAP_S (a
        flood of signals sends one; the task itself asks at most once a gap across processes)."""
        now = time.monotonic()
        if now - self._asked.get(check_id, -SIGNAL_GAP_S) < SIGNAL_GAP_S:
            return False
        if len(self._asked) >= MAX_REMEMBERED:
            self._asked = {c: t for c, t in self._asked.items() if now - t < SIGNAL_GAP_S}
        self._asked[check_id] = now
        return True

    async def blocking(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` in the pool, within ``Limits.call_s`` (:class:`TimeoutError` after)."""
        future = asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)
        return await asyncio.wait_for(future, self.limits.call_s)

    def endpoint(self, vendor: str, view: View, ack: dict[str, Any]):
        async def handle(request: web.Request) -> web.StreamResponse:
            try:
                raw = await read_capped(request, MAX_BODY, self.limits.body_s)
                inbound = view(_delivery(request, raw), self.verifiers)
            except Refused as refused:
                log.warning("%s callback refused: %s", vendor, refused.reason,
                            extra={"vendor": vendor, "reason": refused.reason})
                self.tally(vendor, "refused")
                response = web.json_response({"error": refused.reason}, status=refused.status)
                if refused.status == 408:
                    response.force_close()  # the rest of the body is not read
                return response
            if isinstance(inbound, Signal):
                return await self.signal(inbound, ack)
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
            self.tally(inbound.vendor, "unavailable")
            return _unavailable(inbound.vendor, step, exc)
        self.tally(inbound.vendor, state)  # received, or unknown
        return web.json_response(ack)

    async def signal(self, inbound: Signal, ack: dict[str, Any]) -> web.Response:
        """An unauthenticated callback: nothing stored; the check it names is asked about."""
        step = "signal"
        try:
            check_id = await self.blocking(signalled_check, inbound, self.settings.database_url)
            if check_id is not None and self._first_ask(check_id):
                step = "enqueue"
                await self.blocking(self.query, check_id)
        except Exception as exc:  # noqa: BLE001  (as in accept)
            self.tally(inbound.vendor, "unavailable")
            return _unavailable(inbound.vendor, step, exc)
        self.tally(inbound.vendor, "signal")
        outcome = "a query of its check" if check_id is not None else "nothing to ask"
        log.info("%s callback without a token: %s", inbound.vendor, outcome,
                 extra={"vendor": inbound.vendor, "check_id": check_id})
        return web.json_response(ack)

    def tally(self, vendor: str, state: str) -> None:
        """Count a callback by the state it reached (:mod:`tasks.metrics`), in the pool: a Redis
        round trip never runs on the event loop."""
        with contextlib.suppress(RuntimeError):  # the pool is shutting down: the count is lost
            if self.executor is not None:
                self.executor.submit(metrics.count, "callback_events", vendor=vendor, state=state)

    async def health(self) -> tuple[int, dict[str, str]]:
        names = list(self.probes)
        states = await asyncio.gather(*(self._probe(name) for name in names))
        report = dict(zip(names, states, strict=True))
        return (200 if set(states) == {"ok"} else 503), report

    async def _probe(self, name: str) -> str:
        """"ok" or "down"; a probe still waiting from an earlier request is not started again."""
        future = self._probing.get(name)
        if future is None or future.done():
            loop = asyncio.get_running_loop()
            future = self._probing[name] = loop.run_in_executor(self.probe_executor, _failure_of, self.probes[name])
        try:
            failure = await asyncio.wait_for(asyncio.shield(future), self.limits.probe_s)
        except Exception as exc:  # noqa: BLE001  (down is the answer; the reason is logged)
            failure = exc
        if failure is not None:
            log.warning("health: %s is down (%s)", name, type(failure).__name__, extra={"probe": name})
            return "down"
        return "ok"

    def _probe_database(self) -> None:
        with engine_for(self.settings.database_url).connect() as conn:
            conn.execute(text("SELECT 1"))


def _failure_of(probe: Callable[[], None]) -> Exception | None:
    """Run ``probe`` in a pool thread and return its error, never raise it: a probe that fails
    after its request timed out, or after the loop stopped, leaves no future whose exception
    asyncio would log as never retrieved."""
    try:
        probe()
    except Exception as exc:  # noqa: BLE001  (the caller says down and logs the reason)
        return exc
    return None


def _unavailable(vendor: str, step: str, exc: Exception) -> web.Response:
    reason = f"{step}_timeout" if isinstance(exc, TimeoutError) else f"{step}_failed"
    log.error("%s callback not handled (%s: %s)", vendor, reason, type(exc).__name__,
              extra={"vendor": vendor, "reason": reason})
    return web.json_response({"error": "unavailable"}, status=503)


def _delivery(request: web.Request, raw: bytes) -> Delivery:
    return Delivery(raw, request.query, request.match_info, request.content_type)


async def read_capped(request: web.Request, limit: int, timeout: float) -> bytes:
    """The raw body, or :class:`Refused`: 413 as soon as it exceeds ``limit`` bytes, 408 when it
    has not all arrived within ``timeout`` seconds."""
    if request.content_length is not None and request.content_length > limit:
        raise Refused(413, "too_large")
    chunks, size = [], 0
    try:
        async with asyncio.timeout(timeout):
            while chunk := await request.content.read(64 * 1024):
                size += len(chunk)
                if size > limit:
                    raise Refused(413, "too_large")
                chunks.append(chunk)
    except TimeoutError:
        raise Refused(408, "slow_body") from None
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


def signalled_check(inbound: Signal, database_url: str) -> int | None:
    """The running, submitted check a signal names (by ``btId``, or for a failure, which names
    none, by the ``requestId`` recorded at submission), or None."""
    with session_scope(database_url) as session:
        query = select(Check.id).where(Check.service == inbound.vendor, Check.status == CheckStatus.RUNNING.value,
                                       Check.vendor_task_id.is_not(None))
        if inbound.bt_id is not None:
            query = query.where(Check.vendor_task_id == inbound.bt_id)
        else:
            query = query.where(Check.result["requestId"].as_string() == inbound.request_id)
        return session.scalar(query.order_by(Check.id).limit(1))


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


def ping_broker(settings: Settings, timeout: float) -> None:
    """One PING to the configured broker (Redis), within ``timeout`` seconds."""
    url = broker_url(settings)
    options = {"socket_timeout": timeout, "socket_connect_timeout": timeout}
    if url.startswith("redis+socket://"):
        client = redis.Redis(unix_socket_path=url.removeprefix("redis+socket://"), **options)
    else:
        client = redis.Redis.from_url(url, **options)
    try:
        client.ping()
    finally:
        client.close()


async def healthz(request: web.Request) -> web.Response:
    status, report = await request.app[RECEIVER].health()
    return web.json_response(report, status=status)


async def _thread_pools(app: web.Application) -> AsyncIterator[None]:
    receiver = app[RECEIVER]
    receiver.executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix="webhooks")
    receiver.probe_executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="webhooks-probe")
    yield
    for pool in (receiver.executor, receiver.probe_executor):  # a call stuck on a dead broker is left
        pool.shutdown(wait=False, cancel_futures=True)


RECEIVER = web.AppKey("receiver", Receiver)


def create_app(
    settings: Settings | None = None, enqueue: Callable[[int], None] | None = None, *,
    query: Callable[[int], None] | None = None, broker_probe: Callable[[], None] | None = None,
    limits: Limits | None = None,
) -> web.Application:
    """The receiver; ``enqueue(event_id)`` defaults to sending the merge task to the broker,
    ``query(check_id)`` to sending the Shumei query task, ``broker_probe()`` to a PING."""
    settings = settings or get_settings()
    limits = limits or Limits()
    probe = broker_probe or (lambda: ping_broker(settings, limits.probe_s))
    receiver = Receiver(settings, enqueue or _send_with_default_app, query or _query_with_default_app, probe,
                        limits)
    app = web.Application(client_max_size=MAX_BODY)
    app[RECEIVER] = receiver
    app.cleanup_ctx.append(_thread_pools)
    app.router.add_get("/healthz", healthz)
    for path, vendor, view, ack in ROUTES:
        app.router.add_post(path, receiver.endpoint(vendor, view, ack))
    return app


class RouteAccessLogger(AbstractAccessLogger):
    """Access log by route pattern: no query string (GME's signature), no callback token.

    Copes with requests the HTTP parser refused, which never reached the router.
    """

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info("%s %s %s %.1fms", request.method, _route(request), response.status, time * 1000)


def _route(request: web.BaseRequest) -> str:
    try:
        info = request.match_info
    except (AttributeError, AssertionError):  # a BaseRequest, or one the parser refused
        return "(unmatched)"
    resource = info.route.resource if info is not None else None
    return resource.canonical if resource is not None else "(unmatched)"


class ParserRefusals(logging.Filter):
    """aiohttp logs each request its HTTP parser refuses (negative Content-Length, 500 headers,
    a 10 kB URL...) with a traceback; the client got its 400, so here that is one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            record.msg, record.args = "request refused by the HTTP parser: %s %s", (exc.code, type(exc).__name__)
            record.exc_info = record.exc_text = None
            if record.levelno > logging.WARNING:
                record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


http_log = logging.getLogger("voxqueue.webhooks.http")
http_log.addFilter(ParserRefusals())


def server_options(limits: Limits | None = None) -> dict[str, Any]:
    """How the receiver's HTTP server is run (``run`` and the tests alike)."""
    return {"access_log_class": RouteAccessLogger, "logger": http_log,
            "shutdown_timeout": (limits or Limits()).shutdown_s}


class StartupError(RuntimeError):
    """The receiver cannot start: one line saying why (the command exits 1)."""


def run(host: str = "127.0.0.1", port: int = 8080) -> None:
    """Load the keys, bind, say so, and serve until SIGTERM or SIGINT."""
    settings = get_settings()
    _bound_broker_calls()
    app = _within(STARTUP_S, "reading the keys and the deployment secret", lambda: create_app(settings))
    asyncio.run(_serve(app, host, port))
    _leave_stuck_threads()


async def _serve(app: web.Application, host: str, port: int) -> None:
    runner = web.AppRunner(app, handle_signals=False, **server_options())
    await runner.setup()
    try:
        try:
            await web.TCPSite(runner, host, port).start()
        except OSError as exc:
            raise StartupError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
        log.info("webhook receiver listening on http://%s:%s", host, port)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        log.info("webhook receiver stopping")
    finally:
        await runner.cleanup()


def _within(seconds: float, what: str, fn: Callable[[], Any]) -> Any:
    """``fn()`` in a daemon thread, or :class:`StartupError` when it takes over ``seconds``
    (a database that accepts connections and never answers)."""
    outcome: dict[str, Any] = {}

    def call() -> None:
        try:
            outcome["value"] = fn()
        except BaseException as exc:  # noqa: BLE001  (re-raised in the caller's thread)
            outcome["error"] = exc

    thread = threading.Thread(target=call, name="webhooks-startup", daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        raise StartupError(f"{what}: no answer within {seconds:g}s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def _bound_broker_calls() -> None:
    """The receiver's broker connections time out (a broker that never answers costs a 503)."""
    from workers.app import app

    options = dict(app.conf.broker_transport_options or {})
    options.setdefault("socket_timeout", BROKER_SOCKET_TIMEOUT_S)
    options.setdefault("socket_connect_timeout", BROKER_SOCKET_TIMEOUT_S)
    app.conf.broker_transport_options = options


def _leave_stuck_threads() -> None:
    """Exit now even if pool threads still wait on a dead database or broker: the interpreter
    would join them for ever. What they were doing was answered with a 503 already."""
    others = [t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon]
    for thread in others:  # idle pool threads end at once
        thread.join(0.2)
    stuck = [t for t in others if t.is_alive()]
    if stuck:
        log.warning("webhook receiver stopped; %d call(s) still waiting were abandoned", len(stuck))
        logging.shutdown()
        os._exit(0)
