"""Sending check work to the service queues (by task name, after the commit)."""

from __future__ import annotations

from collections.abc import Iterable

TASK_FOR = {
    "soe": "voxqueue.soe.evaluate",
}


def available(service: str) -> bool:
    return service in TASK_FOR


def enqueue(pairs: Iterable[tuple[int, str]]) -> int:
    """Send one task per (check id, service); return how many were sent."""
    from workers.app import app

    sent = 0
    with app.producer_or_acquire() as producer:
        for check_id, service in pairs:
            app.send_task(TASK_FOR[service], args=[check_id], queue=service, producer=producer)
            sent += 1
    return sent
