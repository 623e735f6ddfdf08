"""Sending check work to the service queues (by task name, after the commit)."""

from __future__ import annotations

from collections.abc import Iterable

TASK_FOR = {
    "soe": "voxqueue.soe.evaluate",
    "gme": "voxqueue.gme.submit",
    "shumei": "voxqueue.shumei.submit",
    "asr": "voxqueue.asr.submit",
    "tupu": "voxqueue.tupu.submit",
}
BATCHED = {"gme": 100}  # services whose task takes a list of check ids


def available(service: str) -> bool:
    return service in TASK_FOR


def enqueue(pairs: Iterable[tuple[int, str]]) -> int:
    """Send one task per (check id, service); return how many were sent."""
    from workers.app import app

    sent = 0
    grouped: dict[str, list[int]] = {}
    with app.producer_or_acquire() as producer:
        for check_id, service in pairs:
            if service in BATCHED:
                grouped.setdefault(service, []).append(check_id)
                continue
            app.send_task(TASK_FOR[service], args=[check_id], queue=service, producer=producer)
            sent += 1
        for service, ids in grouped.items():
            size = BATCHED[service]
            for start in range(0, len(ids), size):
                app.send_task(TASK_FOR[service], args=[ids[start:start + size]], queue=service,
                              producer=producer)
                sent += 1
    return sent
