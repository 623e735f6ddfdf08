"""``voxqueue api``: the producers' HTTP API (aiohttp), described at ``/v1/openapi.json``.

Every operation needs ``Authorization: Bearer <token>`` (``voxqueue api token create``) and
sees only the batches its token made: another token's batch is "not found", as a batch that
does not exist is. Errors are ``{"error": {"code", "message"}}``; 401 without a valid token,
413 for a body over its limit, 415 for a content type that is not taken, 408 for a body too
slow, 503 when the database does not answer within ``Limits.call_s``. ``/v1/openapi.json``
and ``/healthz`` are open.

Submission (:mod:`tasks.submit`) validates rows as ``voxqueue ingest`` does and records them
idempotently; its answer is 202 once the jobs are recorded, even when the broker did not take
their checks within ``VOXQUEUE_BROKER_WAIT_SECONDS``: the jobs are durable, housekeeping queues
checks that were never sent (within ``VOXQUEUE_STALE_SECONDS`` of the broker's return), and a
503 would tell the producer that nothing happened when everything did (``deferred`` counts
them). The job object is the report's (:func:`models.report.job_report`); the report is
streamed page by page (:func:`workers.reporting.write_report`, the command's own writer).

Blocking work runs in a thread pool, each call within its timeout; the access log names
routes, never query strings (a token or a notification URL's secret could be in one), and
copes with requests the HTTP parser refused (:class:`workers.webhooks.RouteAccessLogger`).
"""

from __future__ import annotations

import asyncio
import logging
import re
import signal
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import quote

from aiohttp import web
from sqlalchemy import select, text
from sqlalchemy.exc import SQLAlchemyError

from config.settings import SERVICES, Settings, get_settings, notify_url_problem
from models import Job
from models.db import engine_for, session_scope
from models.report import job_report
from models.stats import counts
from tasks import keys, tokens
from tasks.dispatch import BrokerUnavailable
from tasks.fields import MAX_ID, problem, shown
from tasks.manifest import ManifestError
from tasks.submit import SubmitError, failed_checks, owned_batch, submit
from workers import api_spec
from workers.api_body import Body, BodyError, Limits, read_body
from workers.api_spec import document
from workers.webhooks import (
    ParserRefusals,
    RouteAccessLogger,
    StartupError,
    _bound_broker_calls,
    _leave_stuck_threads,
    _within,
    ping_broker,
)

log = logging.getLogger("voxqueue.api")
http_log = logging.getLogger("voxqueue.api.http")
http_log.addFilter(ParserRefusals())

OPEN_PATHS = frozenset({"/v1/openapi.json", "/healthz"})
BATCH_NAME = re.compile(api_spec.BATCH_NAME.strip("^$"))
REPORT_TYPES = {"json": "application/json", "csv": "text/csv"}
STARTUP_S = 15.0
_STATUS_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 408: "slow_body",
                 413: "too_large", 415: "unsupported_media_type"}


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None,
                 **details: Any) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers, self.details = status, code, message, headers, details


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None,
                   **details: Any) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message, **details}}, status=status,
                             headers=headers)


class Api:
    def __init__(self, settings: Settings, limits: Limits) -> None:
        self.settings, self.limits = settings, limits
        self.executor: ThreadPoolExecutor | None = None

    async def blocking(self, fn: Callable[..., Any], *args: Any, timeout: float | None = None) -> Any:
        """``fn(*args)`` in the pool, within ``timeout`` (``Limits.call_s``): TimeoutError after."""
        future = asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)
        return await asyncio.wait_for(future, timeout or self.limits.call_s)

    def caller(self, request: web.Request) -> tokens.Caller:
        return request[CALLER]

    async def batch_of(self, request: web.Request):
        name, token_id = request.match_info["batch"], self.caller(request).token_id
        if not BATCH_NAME.fullmatch(name):  # no batch of a token's has such a name
            raise ApiError(404, "not_found", f"no batch named {shown(name, 80)!r}")

        def find():
            with session_scope() as session:
                return owned_batch(session, name, token_id)

        batch = await self.blocking(find)
        if batch is None:
            raise ApiError(404, "not_found", f"no batch named {name!r}")
        return batch

    # ---- operations ----

    async def post_jobs(self, request: web.Request) -> web.Response:
        batch = request.match_info["batch"]
        if not BATCH_NAME.fullmatch(batch):
            raise ApiError(400, "bad_request", "a batch name is 1 to 200 letters, digits, '.', '_' or '-', "
                                               "starting with a letter or digit")
        body = await self._body(request)
        try:
            done = await self.blocking(
                lambda: submit(batch, body.rows, token_id=self.caller(request).token_id, uploads=body.uploads,
                               notify_url=body.notify_url),
                timeout=self.limits.call_s + self.settings.broker_wait_seconds)
        except BaseException:
            body.discard()
            raise
        body.discard(keep=done.used_uploads)
        answer: dict[str, Any] = {
            "batch": done.batch,
            "jobs": [{**job, "url": job_url(done.batch, job["id"])} for job in done.jobs],
            "rejected": done.rejected, "queued": done.queued, "deferred": done.deferred,
        }
        if done.notify is not None:
            answer["notify"] = {"url": body.notify_url, **({"secret": done.notify.secret} if done.notify.secret else {})}
        return web.json_response(answer, status=202)

    async def _body(self, request: web.Request) -> Body:
        query_url = request.query.get("notify_url")
        body = await read_body(request, self.settings, self.limits, self.blocking)
        if query_url is not None and body.notify_url is not None and query_url != body.notify_url:
            body.discard()
            raise ApiError(400, "bad_request", "notify_url is given twice, differently")
        body.notify_url = body.notify_url if body.notify_url is not None else query_url
        if body.notify_url is not None and notify_url_problem(body.notify_url):
            body.discard()
            raise ApiError(400, "bad_request", notify_url_problem(body.notify_url))
        return body

    async def get_batch(self, request: web.Request) -> web.Response:
        batch = await self.batch_of(request)

        def read():
            with session_scope() as session:
                return counts(session, batch.name).as_object()

        return web.json_response(await self.blocking(read))

    async def get_job(self, request: web.Request) -> web.Response:
        batch, key = await self.batch_of(request), request.match_info["id"]
        if len(key) > MAX_ID or problem("id", key):
            raise ApiError(404, "not_found", f"no job {shown(key, 80)!r} in batch {batch.name!r}")

        def read():
            with session_scope() as session:
                job = session.scalar(select(Job).where(Job.batch_id == batch.id, Job.key == key))
                return job_report(job) if job is not None else None

        found = await self.blocking(read)
        if found is None:
            raise ApiError(404, "not_found", f"no job {key!r} in batch {batch.name!r}")
        return web.json_response(found)

    async def get_report(self, request: web.Request) -> web.StreamResponse:
        fmt = request.query.get("format", "json")
        if fmt not in REPORT_TYPES:
            raise ApiError(400, "bad_request", "format must be json or csv")
        batch = await self.batch_of(request)
        from workers.api_report import stream_report

        return await stream_report(request, self.executor, batch.name, fmt, REPORT_TYPES[fmt])

    async def post_retry(self, request: web.Request) -> web.Response:
        service = request.query.get("service")
        if service is not None and service not in SERVICES:
            raise ApiError(400, "bad_request", f"service must be one of {', '.join(SERVICES)}")
        batch = await self.batch_of(request)

        def run() -> dict[str, Any]:
            from tasks.retry import retry_failed

            with session_scope() as session:
                failed = failed_checks(session, batch.id, service)
            try:
                return {"batch": batch.name, "retried": retry_failed(batch=batch.name, service=service),
                        "deferred": 0}
            except BrokerUnavailable:  # recorded as pending: housekeeping sends them when it is back
                return {"batch": batch.name, "retried": failed, "deferred": failed}

        return web.json_response(await self.blocking(run, timeout=self.limits.call_s + self.settings.broker_wait_seconds),
                                 status=202)

    async def openapi(self, _request: web.Request) -> web.Response:
        return web.json_response(document())

    async def health(self, _request: web.Request) -> web.Response:
        report = {}
        for name, probe in (("database", self._probe_database), ("broker", self._probe_broker)):
            try:
                await self.blocking(probe, timeout=2.0)
                report[name] = "ok"
            except Exception:  # noqa: BLE001  (down is the answer)
                report[name] = "down"
        return web.json_response(report, status=200 if set(report.values()) == {"ok"} else 503)

    def _probe_database(self) -> None:
        with engine_for(self.settings.database_url).connect() as conn:
            conn.execute(text("SELECT 1"))

    def _probe_broker(self) -> None:
        ping_broker(self.settings, 2.0)


def job_url(batch: str, job_id: str | None) -> str | None:
    if job_id is None:
        return None
    return f"/v1/batches/{quote(batch, safe='')}/jobs/{quote(job_id, safe='')}"


CALLER = web.RequestKey("caller", tokens.Caller)
API = web.AppKey("api", Api)


@web.middleware
async def errors(request: web.Request, handler) -> web.StreamResponse:
    """Every failure as ``{"error": {"code", "message"}}``; a bug is a 500 that says nothing more."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        return error_response(exc.status, _STATUS_CODES.get(exc.status, "error"), exc.reason, headers)
    except ApiError as exc:
        return error_response(exc.status, exc.code, exc.message, exc.headers, **exc.details)
    except (BodyError, SubmitError) as exc:
        return error_response(exc.status, exc.code, str(exc), **getattr(exc, "details", {}))
    except ManifestError as exc:
        return error_response(400, "bad_request", str(exc))
    except (TimeoutError, SQLAlchemyError, OSError) as exc:  # the database or the disk did not answer
        log.error("request not handled: %s", type(exc).__name__, extra={"reason": type(exc).__name__})
        return error_response(503, "unavailable", "the service cannot answer now; try again")
    except Exception as exc:
        log.exception("request failed: %s", type(exc).__name__)
        return error_response(500, "internal", "the request failed")


@web.middleware
async def authenticated(request: web.Request, handler) -> web.StreamResponse:
    if request.path in OPEN_PATHS:
        return await handler(request)
    api = request.app[API]
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    caller = None
    if scheme.lower() == "bearer" and token.strip():
        caller = await api.blocking(tokens.authenticate, token.strip(), api.settings.database_url)
    if caller is None:
        raise ApiError(401, "unauthorized", "a valid bearer token is required", {"WWW-Authenticate": "Bearer"})
    request[CALLER] = caller
    return await handler(request)


async def _thread_pool(app: web.Application) -> AsyncIterator[None]:
    api = app[API]
    api.executor = ThreadPoolExecutor(max_workers=16, thread_name_prefix="api")
    yield
    api.executor.shutdown(wait=False, cancel_futures=True)


def create_app(settings: Settings | None = None, limits: Limits | None = None) -> web.Application:
    settings = settings or get_settings()
    api = Api(settings, limits or Limits())
    app = web.Application(middlewares=[errors, authenticated], client_max_size=settings.api_max_body_bytes)
    app[API] = api
    app.cleanup_ctx.append(_thread_pool)
    app.router.add_get("/healthz", api.health)
    app.router.add_get("/v1/openapi.json", api.openapi)
    app.router.add_post("/v1/batches/{batch}/jobs", api.post_jobs)
    app.router.add_get("/v1/batches/{batch}", api.get_batch)
    app.router.add_get("/v1/batches/{batch}/jobs/{id:.+}", api.get_job)
    app.router.add_get("/v1/batches/{batch}/report", api.get_report)
    app.router.add_post("/v1/batches/{batch}/retry", api.post_retry)
    return app


MAX_LINE = 64 * 1024  # a request line: a notification URL of 2000 characters, percent-encoded


def server_options(limits: Limits | None = None) -> dict[str, Any]:
    """How the API's HTTP server is run (``run`` and the tests alike)."""
    return {"access_log_class": RouteAccessLogger, "logger": http_log, "max_line_size": MAX_LINE,
            "shutdown_timeout": (limits or Limits()).shutdown_s}


def _prepare(settings: Settings) -> web.Application:
    """Read the deployment secret (it signs notification URLs) and make the media folder."""
    keys.load(settings)
    settings.media_path.mkdir(parents=True, exist_ok=True)
    return create_app(settings)


def run(host: str = "127.0.0.1", port: int = 8800) -> None:
    settings = get_settings()
    _bound_broker_calls()
    app = _within(STARTUP_S, "reading the deployment secret", lambda: _prepare(settings))
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
        log.info("api listening on http://%s:%s", host, port)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        log.info("api stopping")
    finally:
        await runner.cleanup()
