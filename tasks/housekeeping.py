"""Housekeeping: work that lost its worker or its message is sent again, within seconds.

A round runs every ``VOXQUEUE_HOUSEKEEPING_INTERVAL`` seconds in every worker
that consumes the housekeeping queue (a thread: ``workers.app``) and on the beat
(the ``voxqueue.housekeeping.recover`` task); a lock in Redis lets one round run
at a time, so a batch recovers with any one of them alive. A duplicate message
is harmless: the claim lets one delivery work and drops the other. A round:

1. *The broker.* A marker key (:data:`EPOCH_KEY`) lives in the broker. When it
   is gone, the broker lost its data (a restart without persistence, a flush):
   every check waiting for a message (pending, or waiting for a retry) is sent
   again at once, and so is every stored callback not yet merged.
2. *Dead workers* (:mod:`tasks.liveness`): a holder whose heartbeat lapsed is
   gone. The checks it held go again alone in their messages, where the claim
   charges them the death (a group cannot tell which of its checks killed the
   worker: :func:`tasks.lifecycle.take_leases`); the checks its unfinished
   messages carried go again in groups. For a short while after the broker lost
   its data no holder counts as dead: the heartbeats went with the data and
   come back within :data:`tasks.liveness.BEAT_S`.
3. *Lapsed leases*: the last backstop (a worker alive but stuck on one check).
4. *Lost messages*: a check waiting for a message for ``VOXQUEUE_STALE_SECONDS``,
   its service's queue empty, and in no live worker's messages (each writes
   which checks its messages carry): the message was lost.
5. *Callbacks* stored but not merged a minute later: their merge is sent again.
6. *Closed live streams* whose end callback did not come within the grace period end
   (:func:`tasks.streams.end_overdue`).
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field

import redis
from kombu.exceptions import ChannelError
from sqlalchemy import and_, or_, select, update

from config.broker import shared_client
from config.celery import CALLBACK_MERGE, HOUSEKEEPING_RECOVER
from config.settings import Settings, get_settings
from models import CallbackEvent, Check, Marker
from models.base import utcnow
from models.db import session_scope, transaction
from tasks import liveness, metrics, streams
from tasks.app import app
from tasks.common import ACTIVE
from tasks.dispatch import TASK_FOR, enqueue
from tasks.lifecycle import ENDED
from tasks.locks import round_lock

log = logging.getLogger("voxqueue.housekeeping")

LOCK_KEY = "voxqueue:housekeeping-lock"
EPOCH_KEY = "voxqueue:broker-epoch"
UNMERGED_AFTER_S = 60
LIMIT = 5000  # checks re-enqueued per round at most (the next round takes the rest)


@dataclass
class Round:
    """What one round found and sent again."""

    broker_lost: bool = False
    dead: list[str] = field(default_factory=list)  # holders whose heartbeat lapsed
    alone: list[tuple[int, str]] = field(default_factory=list)  # checks a dead delivery held
    grouped: list[tuple[int, str]] = field(default_factory=list)  # checks whose message was lost
    merges: list[int] = field(default_factory=list)
    streams_ended: int = 0
    orphaned: int = 0  # of ``grouped``, those a dead worker's messages carried (the rest: lost)

    @property
    def count(self) -> int:
        return len(self.alone) + len(self.grouped) + len(self.merges) + self.streams_ended


def run_round(settings: Settings | None = None) -> Round | None:
    """One round under the lock; None when another process holds it."""
    settings = settings or get_settings()
    client = shared_client(settings)
    with round_lock(client, LOCK_KEY) as lock:
        if not lock.held:
            return None
        found = _round(client, settings)
    _send(found)
    return found


def _round(client: redis.Redis, settings: Settings) -> Round:
    found = Round(broker_lost=_broker_lost(client))
    now = utcnow()
    holders = liveness.known(client) | _holders_in_db(now)
    live = liveness.alive(client, holders)
    dead = set() if _heartbeats_returning(client) else holders - live
    carried = liveness.holdings(client, live | dead)
    in_flight = set().union(*(carried.get(h, set()) for h in live))
    found.dead = sorted(dead)
    found.alone = sorted(set(_expire_leases(dead, now) + _lapsed(now)))
    taken = {check_id for check_id, _ in found.alone}
    orphans = set().union(*(carried.get(h, set()) for h in dead)) - in_flight
    waiting = _waiting(now, settings, client, everything=found.broker_lost, among=orphans)
    found.grouped = [(i, s) for i, s in waiting if i not in in_flight and i not in taken]
    found.orphaned = sum(1 for i, _ in found.grouped if i in orphans)
    found.merges = _unmerged(now, everything=found.broker_lost)
    found.streams_ended = streams.end_overdue()  # closed streams whose end callback never came
    liveness.forget(client, dead)
    return found


def _send(found: Round) -> None:
    if found.broker_lost:
        log.warning("the broker lost its data: sending every waiting check and callback again")
    if found.dead:
        log.warning("workers gone (heartbeat lapsed): %s", ", ".join(found.dead))
    if found.alone or found.grouped:
        log.warning("re-enqueueing stranded checks", extra={"count": len(found.alone) + len(found.grouped),
                                                            "held": len(found.alone), "lost": len(found.grouped)})
    if found.alone:
        enqueue(found.alone, alone=True)
    if found.grouped:
        enqueue(found.grouped)
    for event_id in found.merges:
        app.send_task(CALLBACK_MERGE, args=[event_id], queue="callbacks")
    metrics.add_all(recoveries(found))


def recoveries(found: Round) -> list[tuple[str, int, dict[str, str]]]:
    """What the round sent again, as counts (:mod:`tasks.metrics`)."""
    lost = len(found.grouped) - found.orphaned
    kind = "broker_loss" if found.broker_lost else "lost_message"
    return [("broker_losses", int(found.broker_lost), {}),
            ("housekeeping_recoveries", len(found.alone), {"kind": "dead_holder"}),
            ("housekeeping_recoveries", found.orphaned, {"kind": "orphaned"}),
            ("housekeeping_recoveries", lost, {"kind": kind}),
            ("housekeeping_recoveries", len(found.merges), {"kind": "callback"}),
            ("housekeeping_recoveries", found.streams_ended, {"kind": "stream_ended"})]


def _broker_lost(client: redis.Redis) -> bool:
    """True when the broker lost its data: its epoch marker is gone, and the database remembers
    the one it had (a broker new to the deployment has none to lose)."""
    if client.exists(EPOCH_KEY):
        return False
    epoch = f"{client.time()[0]}:{secrets.token_hex(4)}"
    if not client.set(EPOCH_KEY, epoch, nx=True):
        return False  # another process's round saw it first
    with session_scope() as session:
        marker = session.get(Marker, EPOCH_KEY)
        known = marker is not None
        if marker is None:
            session.add(Marker(name=EPOCH_KEY, value=epoch))
        else:
            marker.value = epoch
    return known


def _heartbeats_returning(client: redis.Redis) -> bool:
    """Whether the broker's epoch began so recently that live workers may not have beaten since
    (after a loss of its data, every heartbeat went with it)."""
    epoch = client.get(EPOCH_KEY)
    if epoch is None:
        return True
    began = int(epoch.split(b":")[0] if isinstance(epoch, bytes) else epoch.split(":")[0])
    return client.time()[0] - began < liveness.TTL_S + 2 * liveness.BEAT_S


def _holders_in_db(now: dt.datetime) -> set[str]:
    with session_scope() as session:
        query = (select(Check.holder).distinct().where(Check.status.in_(ACTIVE), Check.lease_until >= now,
                                                       Check.holder.is_not(None)))
        return set(session.scalars(query))


def _expire_leases(dead: Iterable[str], now: dt.datetime) -> list[tuple[int, str]]:
    """End the leases the dead holders held: the next claim counts the death, as for a lapsed one."""
    dead = sorted(dead)
    return _end_leases(Check.holder.in_(dead)) if dead else []


def _lapsed(now: dt.datetime) -> list[tuple[int, str]]:
    return _end_leases(Check.lease_until < now)


def _end_leases(which) -> list[tuple[int, str]]:
    """Set the leases ``which`` selects to :data:`~tasks.lifecycle.ENDED` (sent again once per
    death)."""
    statement = (update(Check).where(which, Check.status.in_(ACTIVE), Check.lease_until > ENDED)
                 .values(lease_until=ENDED).returning(Check.id, Check.service))
    with transaction() as conn:
        return sorted((check_id, service) for check_id, service in conn.execute(statement))


def _waiting(now: dt.datetime, settings: Settings, client: redis.Redis, *, everything: bool,
             among: set[int]) -> list[tuple[int, str]]:
    """Checks waiting for a message (no lease, nothing at the vendor): all of them when
    ``everything``; else those ``among`` a dead worker's messages, and those untouched for
    ``stale_seconds`` whose service's queue is empty."""
    unheld = or_(Check.lease_until.is_(None), Check.lease_until == ENDED)
    waiting = and_(Check.status.in_(ACTIVE), unheld, Check.vendor_task_id.is_(None), Check.service.in_(TASK_FOR))
    if not everything:
        stale = now - dt.timedelta(seconds=settings.stale_seconds)
        rule = and_(Check.updated_at < stale, Check.service.in_(empty_queues(client)))
        waiting = and_(waiting, or_(rule, Check.id.in_(sorted(among))) if among else rule)
    with session_scope() as session:
        query = select(Check.id, Check.service).where(waiting).order_by(Check.id).limit(LIMIT)
        return [(check_id, service) for check_id, service in session.execute(query)]


def empty_queues(client: redis.Redis) -> list[str]:
    """Service queues with no message waiting in the broker, as kombu counts them (a passive
    ``queue_declare``: its message count, every priority level included), not by reading the
    transport's own key layout. A queue the broker does not know (it lost its data) is empty."""
    empty = []
    with app.connection_for_read() as conn:
        channel = conn.default_channel
        for service in TASK_FOR:
            try:
                waiting = channel.queue_declare(queue=service, passive=True).message_count
            except ChannelError:
                waiting = 0
            if waiting == 0:
                empty.append(service)
    return empty


def _unmerged(now: dt.datetime, *, everything: bool) -> list[int]:
    """Callback events stored but not merged: their merge message was lost."""
    query = select(CallbackEvent.id).where(CallbackEvent.state == "received")
    if not everything:
        query = query.where(CallbackEvent.received_at < now - dt.timedelta(seconds=UNMERGED_AFTER_S))
    with session_scope() as session:
        return list(session.scalars(query.order_by(CallbackEvent.id).limit(LIMIT)))


@app.task(name=HOUSEKEEPING_RECOVER, acks_late=True, ignore_result=True)
def recover() -> int:
    """A housekeeping round, sent by the beat (workers run their own rounds too)."""
    found = run_round()
    return found.count if found is not None else 0
