"""Counters of what happens in the pipeline, kept in the broker's Redis where it happens.

Every process on every host adds to the same numbers (one ``HINCRBY`` on one hash,
:data:`KEY`), and ``voxqueue exporter`` reads them on each scrape, so a worker that
restarts loses nothing and two exporters agree. A field is one counter: its family
and labels as JSON, e.g. ``["vendor_errors", {"reason": "http_5xx", "vendor": "soe"}]``.

Counting never raises into the caller and never holds it up long: the client has its
own short timeouts, and after a failed write the process counts nothing for
:data:`PAUSE_S` seconds (a broker outage costs its counts, not its work).

Each family is declared in :data:`FAMILIES` (help text and label names): the exporter
publishes exactly those, with ``_total`` added.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

import redis

from config.broker import broker_url, redis_client
from config.settings import Settings, get_settings
from vendors.errors import Disposition, VendorError

log = logging.getLogger("voxqueue.metrics")

KEY = "voxqueue:metrics"
TIMEOUT_S = 0.5
PAUSE_S = 5.0


@dataclass(frozen=True)
class Family:
    help: str
    labels: tuple[str, ...]


FAMILIES: dict[str, Family] = {
    "vendor_requests": Family(
        "Requests sent to a vendor (each took its slot of the shared limit).", ("vendor",)
    ),
    "vendor_errors": Family(
        "Vendor requests that failed, by reason (HTTP 429/5xx, connection, "
        "the vendor's error code, an unreadable answer).",
        ("vendor", "reason"),
    ),
    "vendor_throttles": Family(
        "Throttling: the vendor answered 'too many requests' (source=vendor), or "
        "the shared limit made work step aside (source=shared_limit).",
        ("vendor", "source"),
    ),
    "vendor_retries": Family(
        "Work tried again after a retryable vendor error: the same request in "
        "place (scope=request), or the check later (scope=check).",
        ("vendor", "scope"),
    ),
    "breaker_openings": Family("Times a vendor's circuit breaker opened.", ("vendor",)),
    "checks_poisoned": Family(
        "Checks failed as poison: their worker died VOXQUEUE_MAX_DELIVERIES times "
        "(cause=deliveries), or an exception no rule expected (cause=exception).",
        ("service", "cause"),
    ),
    "callback_events": Family(
        "Vendor callbacks by the state they reached: received (stored), unknown "
        "(no check matches), merged, ignored, refused (401/403/4xx, not stored), "
        "signal (unauthenticated Shumei: its check is asked), unavailable (503).",
        ("vendor", "state"),
    ),
    "housekeeping_recoveries": Family(
        "Work housekeeping sent again: checks a dead worker held "
        "(dead_holder: heartbeat or lease lapsed), checks in a dead "
        "worker's messages (orphaned), checks whose message was lost "
        "(lost_message), every waiting check after the broker lost its "
        "data (broker_loss), callbacks whose merge was lost (callback), "
        "closed streams ended without their end callback (stream_ended).",
        ("kind",),
    ),
    "broker_losses": Family("Times housekeeping found that the broker had lost its data.", ()),
}


def field(name: str, labels: dict[str, str]) -> str:
    return _field(name, tuple(sorted((k, str(v)) for k, v in labels.items())))


@functools.lru_cache(maxsize=4096)
def _field(name: str, labels: tuple[tuple[str, str], ...]) -> str:
    return json.dumps([name, dict(labels)], separators=(",", ":"))


def parse(raw: bytes | str) -> tuple[str, dict[str, str]] | None:
    """A field back as (family, labels); None when it is not one of ours."""
    try:
        name, labels = json.loads(raw)
    except (ValueError, TypeError):
        return None
    if not isinstance(name, str) or not isinstance(labels, dict):
        return None
    return name, {str(k): str(v) for k, v in labels.items()}


class _Sink:
    """The process's client for counting, and when it last failed."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.owner: tuple[Settings, int] | None = None
        self.client: redis.Redis | None = None
        self.paused_until = 0.0

    def get(self) -> redis.Redis | None:
        if time.monotonic() < self.paused_until:
            return None
        settings = get_settings()
        if self.owner is not None and self.owner[0] is settings and self.owner[1] == os.getpid():
            return self.client
        with self.lock:
            self.client = redis_client(broker_url(settings), timeout=TIMEOUT_S)
            self.owner = (settings, os.getpid())
            return self.client

    def failed(self, exc: Exception) -> None:
        self.paused_until = time.monotonic() + PAUSE_S
        log.warning(
            "metrics not counted for %gs: %s: %s", PAUSE_S, type(exc).__name__, str(exc)[:200]
        )


_sink = _Sink()


def add_all(items: Iterable[tuple[str, int, dict[str, str]]]) -> None:
    """Add each ``(family, amount, labels)`` in one round trip; never raises."""
    writes = [(field(name, labels), amount) for name, amount, labels in items if amount]
    if not writes:
        return
    try:
        client = _sink.get()
        if client is None:
            return
        if len(writes) == 1:
            client.hincrby(KEY, *writes[0])
            return
        with client.pipeline(transaction=False) as pipe:
            for key, amount in writes:
                pipe.hincrby(KEY, key, amount)
            pipe.execute()
    except Exception as exc:  # noqa: BLE001  (a count is never worth a failed task)
        _sink.failed(exc)


def add(name: str, amount: int, **labels: str) -> None:
    add_all([(name, amount, labels)])


def count(name: str, **labels: str) -> None:
    """One more of ``name`` with ``labels`` (one HINCRBY; never raises)."""
    add_all([(name, 1, labels)])


def slot(vendor: str, granted: bool) -> None:
    """A request took its slot of the vendor's shared limit (it leaves now), or was sent away."""
    if granted:
        count("vendor_requests", vendor=vendor)
    else:
        count("vendor_throttles", vendor=vendor, source="shared_limit")


def vendor_error(vendor: str, error: VendorError) -> None:
    """A failed vendor request: its reason, and a throttle when the vendor throttled."""
    items = [("vendor_errors", 1, {"vendor": vendor, "reason": error.reason})]
    if error.disposition is Disposition.THROTTLED:
        items.append(("vendor_throttles", 1, {"vendor": vendor, "source": "vendor"}))
    add_all(items)


def read(client: redis.Redis) -> dict[str, list[tuple[dict[str, str], int]]]:
    """Every counter, by family (one HGETALL): :func:`decode`."""
    return decode(client.hgetall(KEY))


def decode(raw_hash: dict) -> dict[str, list[tuple[dict[str, str], int]]]:
    """The counters' hash by family, each field's labels those the family declares ("" for one
    it lacks); fields of unknown families are left out."""
    found: dict[str, list[tuple[dict[str, str], int]]] = {}
    for raw, value in raw_hash.items():
        parsed = parse(raw)
        if parsed is None or parsed[0] not in FAMILIES:
            continue
        name, labels = parsed
        wanted = FAMILIES[name].labels
        found.setdefault(name, []).append(({k: labels.get(k, "") for k in wanted}, int(value)))
    return found
