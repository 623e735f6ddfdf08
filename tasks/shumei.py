"""Shumei audio v4: one file per request, its btId derived from the job.

Shumei signs no callback, so each check's callback URL carries a token of ours
(``/callbacks/shumei/{check_id}/{token}``). A callback without it is only a signal:
the receiver sends :func:`query` for the check it names, and what the vendor answers
to ``query_audio/v4`` is what is recorded.

A job's ``lang`` goes as ``data.lang``, to that language's cluster
(``VOXQUEUE_SHUMEI_ENDPOINT_EN`` for English). The cluster is recorded with the
check: its result is asked for where the file was submitted (:func:`endpoint_of`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select

from config.broker import broker_url, redis_client
from config.celery import SHUMEI_QUERY, SHUMEI_SUBMIT
from config.settings import get_settings
from models import Check, CheckStatus
from models.base import utcnow
from models.db import session_scope
from tasks import clients, common, keys, metrics, moderation, policy
from tasks.app import app
from tasks.infra import INFRA_ERRORS, retry_after_infra_error
from tasks.lifecycle import Lease
from tasks.media import callback_url, local_path, media_url
from tasks.ratelimit import Throttled
from tasks.results import apply, reschedule
from vendors.errors import Disposition, VendorError
from vendors.shumei import ShumeiResult

RAW_FORMATS = {".wav": "wav", ".mp3": "mp3", ".pcm": "pcm", ".raw": "pcm"}
QUERY_GAP_S = 10


def describe(lease: Lease) -> dict[str, Any]:
    settings = get_settings()
    job = lease.job
    path = local_path(job)
    facts: dict[str, Any] = {"token_id": job.options.get("user_id") or job.key[:64],
                             "lang": job.options.get("lang") or "en"}  # the manifest's default
    if path is not None and path.suffix.lower() in RAW_FORMATS and \
            _base64_size(path) <= settings.shumei_raw_max_bytes:
        return facts | {"path": str(path), "fmt": RAW_FORMATS[path.suffix.lower()]}
    return facts | {"url": media_url(job, settings, "shumei")}


def _base64_size(path: Path) -> int:
    return 4 * -(-path.stat().st_size // 3)


@app.task(bind=True, name=SHUMEI_SUBMIT, acks_late=True, ignore_result=True, max_retries=None)
def submit(self, check_ids: list[int]) -> str:
    """Submit a group of Shumei checks, one request each."""
    batch = moderation.claim_all("shumei", check_ids, describe)
    return moderation.submit_each(self, batch, _submit)


def _submit(check_id: int, facts: dict[str, Any]) -> moderation.Accepted:
    settings = get_settings()
    endpoint = settings.shumei_endpoint_for(facts["lang"])
    client = clients.shumei(settings, endpoint, clients.slot("shumei"))
    raw = Path(facts["path"]).read_bytes() if "path" in facts else None
    pcm = facts.get("fmt") == "pcm"
    token = keys.callback_token("shumei", check_id, settings)
    submitted = client.submit(
        facts["key"], url=facts.get("url"), raw=raw, fmt=facts.get("fmt"),
        rate=16000 if pcm else None, track=1 if pcm else None,
        callback=callback_url(settings, "shumei", f"/{check_id}/{token}"), token_id=facts["token_id"],
        lang=facts["lang"],
    )
    return moderation.Accepted(submitted.bt_id, {"requestId": submitted.request_id, "endpoint": client.endpoint})


def endpoint_of(result: Any) -> str | None:
    """The cluster a check was submitted to (recorded with it); None for one recorded before
    clusters were per language, which went to the default cluster."""
    endpoint = result.get("endpoint") if isinstance(result, dict) else None
    return endpoint if isinstance(endpoint, str) and endpoint else None


@app.task(bind=True, name=SHUMEI_QUERY, acks_late=True, ignore_result=True, max_retries=None)
def query(self, check_id: int) -> None:
    """Ask Shumei for one check's result now (an unauthenticated callback named it).

    At most once per :data:`QUERY_GAP_S` per check, whichever worker or receiver asks:
    a flood of such callbacks costs the vendor one query. The database or the broker
    away: retried as every task is (``policy.INFRA``).
    """
    try:
        _query(self, check_id)
    except INFRA_ERRORS as error:
        raise retry_after_infra_error(self, [], error) from error


def _query(task, check_id: int) -> None:
    running = _running(check_id)
    if running is None or not _first_query(check_id):
        return
    bt_id, endpoint = running
    try:
        client = clients.shumei(get_settings(), endpoint, clients.slot("shumei", max_wait=5.0))
        result: ShumeiResult | VendorError | None = client.query(bt_id)
    except Throttled as throttled:
        raise task.retry(countdown=policy.MODERATION.countdown(0, throttled.wait)) from throttled
    except VendorError as error:
        metrics.vendor_error("shumei", error)
        result = error if error.disposition is Disposition.PERMANENT else None
    _record_answer(check_id, result)


def _running(check_id: int) -> tuple[str, str | None] | None:
    """``(btId, cluster)`` of a running Shumei check."""
    with session_scope() as session:
        row = session.execute(select(Check.vendor_task_id, Check.result).where(
            Check.id == check_id, Check.service == "shumei", Check.status == CheckStatus.RUNNING.value,
            Check.vendor_task_id.is_not(None))).first()
    return None if row is None else (row[0], endpoint_of(row[1]))


def _first_query(check_id: int) -> bool:
    client = redis_client(broker_url(get_settings()))
    try:
        return bool(client.set(f"voxqueue:shumei-query:{check_id}", "1", nx=True, ex=QUERY_GAP_S))
    finally:
        client.close()


def _record_answer(check_id: int, result: ShumeiResult | VendorError | None) -> None:
    """As a poll round does: the result, the vendor's permanent error, or the next poll."""
    with session_scope() as session:
        check = session.get(Check, check_id)
        if check is None or check.status != CheckStatus.RUNNING.value:
            return
        if isinstance(result, VendorError):
            common.fail(check, result.reason, result.summary())
        elif result is None or not apply(session, check, result):
            reschedule(check, utcnow())

