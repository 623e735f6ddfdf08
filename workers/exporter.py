"""``voxqueue exporter``: the pipeline's metrics for Prometheus, at ``/metrics``.

Nothing is kept in this process: each scrape reads the database (two aggregate
queries) and the broker (the queues' lengths and the counters of :mod:`tasks.metrics`,
one pipeline), so every host and process is counted once, however many exporters run.

The collector is a list of *sources*, each a function from a :class:`Scrape` to metric
families. A source that fails (its database or broker down) leaves its families out and
sets ``voxqueue_exporter_source_up{source}`` to 0; the others are still answered. One
more family is one more function in :data:`SOURCES` (``limits`` below is one).
"""

from __future__ import annotations

import datetime as dt
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import redis
from kombu.transport.redis import Channel
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from config.broker import broker_url, redis_client
from config.celery import QUEUES
from config.settings import SERVICES, Settings, get_settings
from models import Check, CheckStatus
from models.base import utcnow
from models.db import session_scope
from tasks import metrics, ratelimit

log = logging.getLogger("voxqueue.exporter")

PREFIX = "voxqueue_"
CHECK_STATES = tuple(s.value for s in CheckStatus)
AGED_STATES = (CheckStatus.PENDING.value, CheckStatus.RUNNING.value)
# Counters published from the start (0 until something happens), so a rate is never "no data".
RECOVERIES = ("dead_holder", "orphaned", "lost_message", "broker_loss", "callback", "stream_ended")
SEEDS: dict[str, dict[str, tuple[str, ...]]] = {
    "vendor_requests": {"vendor": SERVICES},
    "vendor_throttles": {"vendor": SERVICES, "source": ("vendor", "shared_limit")},
    "breaker_openings": {"vendor": SERVICES},
    "checks_poisoned": {"service": SERVICES, "cause": ("deliveries", "exception")},
    "housekeeping_recoveries": {"kind": RECOVERIES},
    "broker_losses": {},
}
Metric = GaugeMetricFamily | CounterMetricFamily


@dataclass
class Scrape:
    """What a source reads from: the settings, the broker, the time of the scrape.

    Once the broker has failed in a scrape, ``broker`` raises that error for every later source
    that asks for it: a broker that never answers costs one command's timeout (5 s) per scrape,
    within Prometheus's 10 s scrape timeout, and the database's families are still answered."""

    settings: Settings
    client: redis.Redis
    now: dt.datetime = field(default_factory=utcnow)
    broker_error: redis.RedisError | None = None

    @property
    def broker(self) -> redis.Redis:
        if self.broker_error is not None:
            raise self.broker_error
        return self.client


Source = Callable[[Scrape], Iterable[Metric]]


def checks(scrape: Scrape) -> Iterator[Metric]:
    """Checks by service and state, and how long the oldest pending and running ones have waited."""
    counted = select(Check.service, Check.status, func.count()).group_by(
        Check.service, Check.status
    )
    aged = (
        select(Check.service, Check.status, func.min(Check.updated_at))
        .where(Check.service.in_(SERVICES), Check.status.in_(AGED_STATES))
        .group_by(Check.service, Check.status)
    )
    with session_scope(scrape.settings.database_url) as session:
        counts = {(service, status): n for service, status, n in session.execute(counted)}
        oldest = {(service, status): at for service, status, at in session.execute(aged)}
    family = GaugeMetricFamily(
        PREFIX + "checks", "Vendor checks by service and state.", labels=["service", "state"]
    )
    services = sorted(set(SERVICES) | {service for service, _ in counts})
    for service in services:
        for state in sorted(set(CHECK_STATES) | {s for svc, s in counts if svc == service}):
            family.add_metric([service, state], counts.get((service, state), 0))
    yield family
    ages = GaugeMetricFamily(
        PREFIX + "oldest_check_age_seconds",
        "Seconds the longest-waiting check of the service has been in this state without "
        "progress: pending since it was recorded or queued again, running since its last claim, "
        "checkpoint or poll (a check held by a stopped or stuck worker grows here); 0 when there "
        "is none.",
        labels=["service", "state"],
    )
    for service in SERVICES:
        for state in AGED_STATES:
            at = oldest.get((service, state))
            ages.add_metric(
                [service, state], _seconds_since(at, scrape.now) if at is not None else 0.0
            )
    yield ages


def _seconds_since(at: dt.datetime, now: dt.datetime) -> float:
    aware = at if at.tzinfo else at.replace(tzinfo=dt.UTC)  # SQLite hands back naive UTC
    return max(0.0, (now - aware).total_seconds())


def queue_names(queues: Iterable[str] = QUEUES) -> list[tuple[str, str]]:
    """``(queue, Redis list)`` for every queue and each of kombu's priority sub-queues
    (``name\\x06\\x16<priority>``: empty unless a message is sent with a priority)."""
    return [
        (queue, queue if step == 0 else f"{queue}{Channel.sep}{step}")
        for queue in queues
        for step in Channel.priority_steps
    ]


def broker(scrape: Scrape) -> Iterator[Metric]:
    """Messages waiting per queue, messages delivered and not yet acknowledged, and the counters."""
    lists = queue_names()
    with scrape.broker.pipeline(transaction=False) as pipe:
        for _, key in lists:
            pipe.llen(key)
        pipe.hlen(Channel.unacked_key)
        pipe.hgetall(metrics.KEY)
        *lengths, unacked, counters = pipe.execute()
    waiting = GaugeMetricFamily(
        PREFIX + "queue_messages",
        "Messages waiting in the broker per queue (not yet taken by a worker).",
        labels=["queue"],
    )
    depth: dict[str, int] = dict.fromkeys(QUEUES, 0)
    for (queue, _), length in zip(lists, lengths, strict=True):
        depth[queue] += int(length)
    for queue, length in depth.items():
        waiting.add_metric([queue], length)
    yield waiting
    yield GaugeMetricFamily(
        PREFIX + "unacked_messages",
        "Messages workers hold and have not acknowledged yet (running, reserved, or "
        "waiting for a retry's countdown), all queues.",
        value=int(unacked),
    )
    yield from counter_families(counters)


def counter_families(raw: dict[Any, Any]) -> Iterator[CounterMetricFamily]:
    """The families of :data:`tasks.metrics.FAMILIES` from the counters' hash, summed by labels."""
    values: dict[str, dict[tuple[str, ...], int]] = {name: {} for name in metrics.FAMILIES}
    for name, labels in SEEDS.items():
        for combo in _combinations(labels):
            values[name][tuple(combo[label] for label in metrics.FAMILIES[name].labels)] = 0
    for name, found in metrics.decode(raw).items():
        for labels, value in found:
            key = tuple(labels[label] for label in metrics.FAMILIES[name].labels)
            values[name][key] = values[name].get(key, 0) + value
    for name, family in metrics.FAMILIES.items():
        counter = CounterMetricFamily(PREFIX + name, family.help, labels=list(family.labels))
        for key, value in sorted(values[name].items()):
            counter.add_metric(list(key), value)
        yield counter


def _combinations(labels: dict[str, tuple[str, ...]]) -> list[dict[str, str]]:
    combos: list[dict[str, str]] = [{}]
    for label, choices in labels.items():
        combos = [combo | {label: choice} for combo in combos for choice in choices]
    return combos


def limits(scrape: Scrape) -> Iterator[Metric]:
    """The shared limits over the last seconds (:func:`tasks.ratelimit.limit_states`): the rate
    granted, the configured limit, requests that waited for a slot, and whether the limit held
    work back."""
    labels = ["limit", "setting"]
    rate = GaugeMetricFamily(PREFIX + "rate_limit_rate", "Requests per second granted by the "
                             "shared limit, over its window's busy seconds.", labels=labels)
    limit = GaugeMetricFamily(PREFIX + "rate_limit_limit", "The shared limit's configured "
                              "requests per second.", labels=labels)
    held = GaugeMetricFamily(PREFIX + "rate_limit_held_share", "Share of the window's requests "
                             "that had to wait for a slot (0 to 1).", labels=labels)
    saturated = GaugeMetricFamily(PREFIX + "rate_limit_saturated", "1 while the shared limit, "
                                  "not the work, sets the pace.", labels=labels)
    for name, state in ratelimit.limit_states(scrape.broker).items():
        values = [name, state.setting]
        rate.add_metric(values, state.rate)
        limit.add_metric(values, state.limit)
        asked = state.granted + state.held
        held.add_metric(values, state.held / asked if asked else 0.0)
        saturated.add_metric(values, int(state.saturated))
    yield from (rate, limit, held, saturated)


SOURCES: dict[str, Source] = {"database": checks, "broker": broker, "limits": limits}


class PipelineCollector(Collector):
    """Every source, read afresh on each scrape."""

    def __init__(
        self, settings: Settings | None = None, sources: dict[str, Source] | None = None
    ) -> None:
        self.settings = settings or get_settings()
        self.sources = dict(SOURCES if sources is None else sources)
        self._broker: redis.Redis | None = None

    def collect(self) -> Iterator[Metric]:
        scrape = Scrape(self.settings, self._client())
        up = GaugeMetricFamily(
            PREFIX + "exporter_source_up",
            "1 when the last scrape could read the source, else 0.",
            labels=["source"],
        )
        took = GaugeMetricFamily(
            PREFIX + "exporter_source_seconds",
            "Seconds the last scrape spent reading the source.",
            labels=["source"],
        )
        for name, source in self.sources.items():
            started = time.monotonic()
            try:
                families = list(source(scrape))
            except Exception as exc:  # noqa: BLE001  (one source down: the others are still answered)
                if isinstance(exc, redis.RedisError):
                    scrape.broker_error = exc
                log.warning(
                    "exporter: %s not read: %s: %s", name, type(exc).__name__, str(exc)[:200]
                )
                families, ok = [], 0
            else:
                ok = 1
            up.add_metric([name], ok)
            took.add_metric([name], round(time.monotonic() - started, 6))
            yield from families
        yield up
        yield took

    def _client(self) -> redis.Redis:
        if self._broker is None:  # one connection pool, shared by concurrent scrapes
            self._broker = redis_client(broker_url(self.settings))
        return self._broker


def registry(settings: Settings | None = None) -> CollectorRegistry:
    """A registry with the pipeline's collector only (no metrics of the exporter's own process)."""
    found = CollectorRegistry()
    found.register(PipelineCollector(settings))
    return found


class StartupError(RuntimeError):
    """The exporter cannot start: one line saying why (the command exits 1)."""


def run(host: str = "127.0.0.1", port: int = 9808) -> None:
    """Serve ``/metrics`` on ``host:port`` until SIGTERM or SIGINT."""
    settings = get_settings()
    try:
        server, thread = start_http_server(port, addr=host, registry=registry(settings))
    except OSError as exc:
        raise StartupError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    log.info("exporter listening on http://%s:%s/metrics", host, port)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    server.shutdown()
    server.server_close()
    thread.join(2)
    log.info("exporter stopped")
