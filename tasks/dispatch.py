"""Sending check work to the service queues (by task name, after the commit).

Each message carries only check ids; its ``argsrepr`` names the jobs and the
service, so Flower shows "job 'pupil-007' soe" rather than an opaque number.
Messages go out in pipelined groups (one Redis round trip per ``PIPELINE``
messages) and queues are declared once per call, not once per message; a
failure part-way leaves the rest pending in the database, where housekeeping
finds them (``tasks.housekeeping``: lost messages).

A broker that does not answer is waited for, with a bounded backoff, up to
``VOXQUEUE_BROKER_WAIT_SECONDS``; then :class:`BrokerUnavailable` says so. The
checks are recorded either way: they are sent when the broker is back (by
housekeeping, or by the producer run again). :class:`Deferred` is the producers'
enqueue: once the broker failed, it keeps what it could not send and tries again
at the end, so an ingest outlives a short outage instead of stopping at it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

import redis
from kombu.exceptions import InconsistencyError, OperationalError
from sqlalchemy import select

from config.celery import SERVICE_TASKS

log = logging.getLogger("voxqueue.dispatch")
BROKER_ERRORS = (OperationalError, InconsistencyError, redis.RedisError, ConnectionError, TimeoutError)

TASK_FOR = SERVICE_TASKS  # service -> its task's name (config.celery); each takes a list of ids
# Services whose task takes a list of check ids: GME's ScanVoice takes up to 100 files in one
# request; Shumei and ASR take one file per request, but a task submitting ten in turn spends
# a tenth of the broker and claim overhead per file.
BATCHED = {"gme": 100, "shumei": 10, "asr": 10}
# SOE evaluates one file per task, except in large batches, where every worker thread is busy
# anyway: there four files to a task (one after another) spend a quarter of the broker's work
# per file. Small batches keep a task per file, so their files run in parallel.
GROUPED_WHEN_MANY = {"soe": (4, 64)}  # service -> (checks per message, from this many at once)
# ... except the last of a batch: a message of four files keeps its thread busy four times as long
# as one, so a batch that ended in groups ran its last second or so on a few threads while the
# others idled. The last TAIL_ALONE files go one to a message (FIFO: they are taken last), and the
# batch's end is spread over every thread.
TAIL_ALONE = 128
PIPELINE = 500  # messages sent to Redis in one round trip (kombu's producer batch)


def available(service: str) -> bool:
    return service in TASK_FOR


def group_size(service: str, count: int) -> int:
    """Checks per message for ``count`` checks of ``service`` enqueued together."""
    if service in BATCHED:
        return BATCHED[service]
    size, from_count = GROUPED_WHEN_MANY.get(service, (1, 0))
    return size if count >= from_count else 1


def messages(service: str, ids: list[int], *, alone: bool = False, more_follow: bool = False) -> list[list[int]]:
    """The checks of one message each, in the order sent. Grouped services (SOE) send the last
    :data:`TAIL_ALONE` alone unless ``more_follow`` (the producer sends more of the batch next)."""
    size = 1 if alone else group_size(service, len(ids))
    if size == 1:
        return [[i] for i in ids]
    split = len(ids)
    if service in GROUPED_WHEN_MANY and not more_follow:  # whole groups, then the tail alone
        split = max(0, (len(ids) - TAIL_ALONE) // size * size)
    return [ids[at:at + size] for at in range(0, split, size)] + [[i] for i in ids[split:]]


class BrokerUnavailable(Exception):
    """The broker did not take the messages within ``VOXQUEUE_BROKER_WAIT_SECONDS``."""

    def __init__(self, waited: float, cause: Exception) -> None:
        self.waited = waited
        super().__init__(f"the broker did not answer for {waited:.0f}s ({type(cause).__name__}: {str(cause)[:120]})")


def enqueue(pairs: Iterable[tuple[int, str]], *, alone: bool = False, budget: float | None = None,
            more_follow: bool = False) -> int:
    """Send the tasks for (check id, service) pairs; return how many messages were sent.

    ``alone``: one check to a message, whatever the service (checks a dead delivery held:
    see :func:`tasks.lifecycle.take_leases`). ``more_follow``: more checks of the same batch are
    sent next (an ingest's writes but its last), so its end is not here (:func:`messages`).
    An unreachable broker is tried again with a
    backoff for up to ``budget`` seconds (``VOXQUEUE_BROKER_WAIT_SECONDS``; 0: one try),
    then :class:`BrokerUnavailable` is raised; a send interrupted part-way is sent whole
    again (a duplicate message is harmless)."""
    from config.settings import get_settings
    from tasks import policy

    pairs = list(pairs)
    if not pairs:
        return 0
    labels = job_labels([check_id for check_id, _ in pairs])
    budget = get_settings().broker_wait_seconds if budget is None else budget
    started, attempt = time.monotonic(), 0
    while True:
        try:
            return _send(pairs, labels, alone, more_follow)
        except BROKER_ERRORS as exc:
            attempt += 1
            waited = time.monotonic() - started
            pause = policy.BROKER_WAIT.delay(attempt)
            if waited + pause > budget:
                raise BrokerUnavailable(waited, exc) from exc
            if attempt == 1:
                log.warning("the broker does not answer (%s); trying again for up to %.0fs", type(exc).__name__,
                            budget)
            time.sleep(pause)


def _send(pairs: list[tuple[int, str]], labels: dict[int, str], alone: bool, more_follow: bool) -> int:
    from tasks.app import app

    by_service: dict[str, list[int]] = {}
    for check_id, service in pairs:
        by_service.setdefault(service, []).append(check_id)
    sent = 0
    with app.producer_or_acquire() as producer, producer.batch(max_size=PIPELINE):
        for service in by_service:  # once here, not once per message (kombu's default); always, not
            # maybe_declare's cached "declared": a broker that lost its data lost the queue bindings
            app.amqp.queues[service](producer.channel).declare()
        for service, ids in by_service.items():
            for group in messages(service, ids, alone=alone, more_follow=more_follow):
                if len(group) == 1:
                    label = f"job {labels.get(group[0], '?')!r} {service} (check {group[0]})"
                else:
                    label = _group_label(group, labels, service)
                app.send_task(TASK_FOR[service], args=[group], queue=service, producer=producer,
                              declare=[],
                              argsrepr=label, retry=False)  # enqueue's own wait retries
                sent += 1
    return sent


class Deferred:
    """``enqueue`` for a producer that records as it goes (ingest): the broker is waited for once,
    up to ``VOXQUEUE_BROKER_WAIT_SECONDS``; after that, what follows is kept, and :meth:`flush`
    tries once more at the end, so a short outage costs one wait and a long one a clear error."""

    def __init__(self) -> None:
        self.unsent: list[tuple[int, str]] = []
        self.sent = 0
        self.failing_since = 0.0

    def __call__(self, pairs: list[tuple[int, str]], *, more_follow: bool = False) -> None:
        if self.unsent:
            self.unsent += pairs
            return
        started = time.monotonic()
        try:
            self.sent += enqueue(pairs, more_follow=more_follow)
        except BrokerUnavailable:
            self.unsent += pairs
            self.failing_since = started

    def flush(self) -> None:
        """Send what the broker did not take, in one last try (raises :class:`BrokerUnavailable`)."""
        if not self.unsent:
            return
        try:
            self.sent += enqueue(self.unsent, budget=0)
        except BrokerUnavailable as exc:
            raise BrokerUnavailable(time.monotonic() - self.failing_since, exc.__cause__ or exc) from exc
        self.unsent = []


def _group_label(ids: list[int], labels: dict[int, str], service: str) -> str:
    names = [labels.get(i, "?") for i in ids]
    shown = ", ".join(repr(n) for n in names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    return f"{len(ids)} jobs {service}: {shown}"


def job_labels(check_ids: list[int]) -> dict[int, str]:
    """check id -> the job's id as the user knows it (one query)."""
    if not check_ids:
        return {}
    from models import Check, Job
    from models.db import session_scope

    with session_scope() as session:
        rows = session.execute(select(Check.id, Job.key).join(Job).where(Check.id.in_(check_ids)))
        return {check_id: key for check_id, key in rows}
