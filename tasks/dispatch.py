"""Sending check work to the service queues (by task name, after the commit).

Each message carries only check ids; its ``argsrepr`` names the jobs and the
service, so Flower shows "job 'pupil-007' soe" rather than an opaque number.
Messages go out in pipelined groups (one Redis round trip per ``PIPELINE``
messages) and queues are declared once per call, not once per message; a
failure part-way leaves the rest pending in the database, where housekeeping
finds them (``tasks.housekeeping``: lost messages).
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select

TASK_FOR = {
    "soe": "voxqueue.soe.evaluate",
    "gme": "voxqueue.gme.submit",
    "shumei": "voxqueue.shumei.submit",
    "asr": "voxqueue.asr.submit",
    "tupu": "voxqueue.tupu.submit",
}
# Services whose task takes a list of check ids: GME's ScanVoice takes up to 100 files in one
# request; Shumei and ASR take one file per request, but a task submitting ten in turn spends
# a tenth of the broker and claim overhead per file.
BATCHED = {"gme": 100, "shumei": 10, "asr": 10}
# SOE evaluates one file per task, except in large batches, where every worker thread is busy
# anyway: there four files to a task (one after another) spend a quarter of the broker's work
# per file. Small batches keep a task per file, so their files run in parallel.
GROUPED_WHEN_MANY = {"soe": (4, 64)}  # service -> (checks per message, from this many at once)
PIPELINE = 500  # messages sent to Redis in one round trip (kombu's producer batch)


def available(service: str) -> bool:
    return service in TASK_FOR


def group_size(service: str, count: int) -> int:
    """Checks per message for ``count`` checks of ``service`` enqueued together."""
    if service in BATCHED:
        return BATCHED[service]
    size, from_count = GROUPED_WHEN_MANY.get(service, (1, 0))
    return size if count >= from_count else 1


def enqueue(pairs: Iterable[tuple[int, str]], *, alone: bool = False) -> int:
    """Send the tasks for (check id, service) pairs; return how many messages were sent.

    ``alone``: one check to a message, whatever the service (checks a dead delivery held:
    see :func:`tasks.leases.take_leases`)."""
    from workers.app import app

    pairs = list(pairs)
    labels = job_labels([check_id for check_id, _ in pairs])
    by_service: dict[str, list[int]] = {}
    for check_id, service in pairs:
        by_service.setdefault(service, []).append(check_id)
    sent = 0
    with app.producer_or_acquire() as producer, producer.batch(max_size=PIPELINE):
        for service in by_service:  # once here, not once per message (kombu's default)
            producer.maybe_declare(app.amqp.queues[service])
        for service, ids in by_service.items():
            size = 1 if alone else group_size(service, len(ids))
            for start in range(0, len(ids), size):
                group = ids[start:start + size]
                if size == 1:
                    label = f"job {labels.get(group[0], '?')!r} {service} (check {group[0]})"
                    args = [group] if service in BATCHED else [group[0]]  # GME's task takes a list
                else:
                    args, label = [group], _group_label(group, labels, service)
                app.send_task(TASK_FOR[service], args=args, queue=service, producer=producer, declare=[],
                              argsrepr=label)
                sent += 1
    return sent


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
