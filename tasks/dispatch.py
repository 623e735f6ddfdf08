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
PIPELINE = 500  # messages sent to Redis in one round trip (kombu's producer batch)


def available(service: str) -> bool:
    return service in TASK_FOR


def enqueue(pairs: Iterable[tuple[int, str]]) -> int:
    """Send the tasks for (check id, service) pairs; return how many messages were sent."""
    from workers.app import app

    pairs = list(pairs)
    labels = job_labels([check_id for check_id, _ in pairs])
    single = [(cid, s) for cid, s in pairs if s not in BATCHED]
    sent = 0
    with app.producer_or_acquire() as producer, producer.batch(max_size=PIPELINE):
        for service in {s for _, s in pairs}:  # once here, not once per message (kombu's default)
            producer.maybe_declare(app.amqp.queues[service])
        for check_id, service in single:
            app.send_task(TASK_FOR[service], args=[check_id], queue=service, producer=producer, declare=[],
                          argsrepr=f"job {labels.get(check_id, '?')!r} {service} (check {check_id})")
            sent += 1
        for service, size in BATCHED.items():
            ids = [cid for cid, s in pairs if s == service]
            for start in range(0, len(ids), size):
                group = ids[start:start + size]
                app.send_task(TASK_FOR[service], args=[group], queue=service, producer=producer, declare=[],
                              argsrepr=_group_label(group, labels, service))
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
