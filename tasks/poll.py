"""Polling on the beat: GME in groups of 100 task ids, Shumei one btId at a time, each at
the cluster it was submitted to, SOE async sessions one IsQuery at a time (:mod:`tasks.soe_async`).

Only checks whose ``next_poll_at`` has come are polled, so vendor calls grow
with the pending checks divided by the group size, not with time. A round holds
a lock in Redis, so two beats started by mistake do not double the polling.
"""

from __future__ import annotations

import logging

from sqlalchemy import select

from config.broker import shared_client
from config.celery import POLL_GME, POLL_SHUMEI, POLL_SOE
from config.settings import get_settings
from models import Check, CheckStatus
from models.base import utcnow
from models.db import session_scope
from tasks import clients, common, locks, metrics, soe_async
from tasks.app import app
from tasks.ratelimit import Throttled
from tasks.results import apply, reschedule
from tasks.shumei import endpoint_of
from vendors.errors import Disposition, VendorError
from vendors.shumei import ShumeiClient

log = logging.getLogger("voxqueue.poll")

GME_GROUP = 100
MAX_GME_CALLS = 20  # per round: up to 2000 checks
MAX_SHUMEI_CALLS = 200
MAX_SOE_CALLS = 200


def round_lock(vendor: str):
    """``with round_lock(vendor) as lock:``, ``lock.held`` when this process runs the vendor's round."""
    return locks.round_lock(shared_client(get_settings()), f"voxqueue:poll-lock:{vendor}")


def due(service: str, limit: int) -> list[tuple[int, str]]:
    with session_scope() as session:
        rows = session.execute(
            select(Check.id, Check.vendor_task_id)
            .where(Check.service == service, Check.status == CheckStatus.RUNNING.value)
            .where(Check.vendor_task_id.is_not(None), Check.next_poll_at <= utcnow())
            .order_by(Check.next_poll_at).limit(limit)
        )
        return [(check_id, task_id) for check_id, task_id in rows]


@app.task(name=POLL_GME, acks_late=True, ignore_result=True)
def poll_gme() -> int:
    """One round: DescribeScanResultList for due GME checks, 100 task ids a call."""
    with round_lock("gme") as lock:
        if not lock.held:
            return 0
        checks = due("gme", GME_GROUP * MAX_GME_CALLS)
        calls = 0
        for start in range(0, len(checks), GME_GROUP):
            if not _gme_group(checks[start:start + GME_GROUP]) or not lock.renew():
                break
            calls += 1
        return calls


def _gme_group(group: list[tuple[int, str]]) -> bool:
    try:
        # DescribeScanResultList has a limit of its own; its slot is taken as the request leaves
        client = clients.gme(get_settings(), clients.slot("gme_result", max_wait=5.0))
        results = client.describe_scan_results([task_id for _, task_id in group])
    except (Throttled, VendorError) as error:
        if isinstance(error, VendorError):
            metrics.vendor_error("gme", error)
        log.warning("gme poll failed: %s", error, extra={"reason": getattr(error, "reason", "throttled")})
        return False
    by_task = {r.task_id: r for r in results}
    _merge_round([(cid, by_task.get(tid)) for cid, tid in group])
    return True


@app.task(name=POLL_SHUMEI, acks_late=True, ignore_result=True)
def poll_shumei() -> int:
    """One round: query_audio/v4 for each due Shumei check."""
    with round_lock("shumei") as lock:
        if not lock.held:
            return 0
        calls = 0
        by_cluster: dict[str | None, ShumeiClient] = {}  # a client per cluster, made on first use
        for check_id, bt_id, endpoint in due_shumei(MAX_SHUMEI_CALLS):
            try:
                if endpoint not in by_cluster:  # its slot taken as each query leaves
                    by_cluster[endpoint] = clients.shumei(get_settings(), endpoint,
                                                          clients.slot("shumei", max_wait=5.0))
                result = by_cluster[endpoint].query(bt_id)
            except Throttled:
                break
            except VendorError as error:
                metrics.vendor_error("shumei", error)
                result = None if error.disposition is not Disposition.PERMANENT else error
            calls += 1
            _merge_round([(check_id, result)])
            if not lock.renew():
                break
        return calls


def due_shumei(limit: int) -> list[tuple[int, str, str | None]]:
    """``(check id, btId, cluster)`` of the Shumei checks due; the cluster None is the default."""
    with session_scope() as session:
        rows = session.execute(
            select(Check.id, Check.vendor_task_id, Check.result)
            .where(Check.service == "shumei", Check.status == CheckStatus.RUNNING.value)
            .where(Check.vendor_task_id.is_not(None), Check.next_poll_at <= utcnow())
            .order_by(Check.next_poll_at).limit(limit)
        )
        return [(check_id, bt_id, endpoint_of(result)) for check_id, bt_id, result in rows]


@app.task(name=POLL_SOE, acks_late=True, ignore_result=True)
def poll_soe() -> int:
    """One round: IsQuery for each due SOE async session."""
    with round_lock("soe") as lock:
        if not lock.held:
            return 0
        settings, calls = get_settings(), 0
        for check_id, _ in due("soe", MAX_SOE_CALLS):
            try:  # its client takes the slot as the query leaves
                calls += soe_async.poll_one(check_id, settings)
            except Throttled:
                break
            if not lock.renew():
                break
        return calls


def _merge_round(pairs) -> None:
    """Apply each result (None: not ready) and schedule the next poll of what is still open."""
    now = utcnow()
    with session_scope() as session:
        for check_id, result in pairs:
            check = session.get(Check, check_id)
            if check is None or check.status != CheckStatus.RUNNING.value:
                continue
            if isinstance(result, VendorError):
                common.fail(check, result.reason, result.summary())
            elif result is None or not apply(session, check, result):
                reschedule(check, now)
