"""Worker liveness: every process that works on checks keeps a heartbeat in the broker.

A lease (``VOXQUEUE_LEASE_SECONDS``) tells a dead worker's check from a live
one only when it lapses, minutes later. A heartbeat tells it within seconds:

- every process that claims checks has a *holder* id (host, pid and a random
  part, so a reused pid is a new holder), recorded by each claim in
  ``checks.holder``;
- a thread refreshes ``voxqueue:alive:<holder>`` every :data:`BEAT_S` seconds
  with a TTL of :data:`TTL_S`; a process that dies (SIGKILL, OOM, power) stops
  refreshing it and the key vanishes;
- a worker's consuming process also writes which checks its messages carry
  (received, scheduled for a retry, or running) to ``voxqueue:holding:<holder>``,
  so housekeeping knows where every check's message is, and which checks a dead
  worker's messages took down with it (:func:`holdings`);
- housekeeping (:mod:`tasks.housekeeping`) finds the holders whose heartbeat
  lapsed and sends their work again.

A process that is stopped cleanly deletes its heartbeat (:meth:`Heartbeat.stop`),
so what it still held goes again on the next round. A process paused for longer
than :data:`TTL_S` (a debugger, SIGSTOP, a VM frozen) is taken for dead; its
work goes again and the claim lets only one delivery work on a check, while the
paused one, when it resumes, finishes its current call and records nothing over
a finished check.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterable

import redis

log = logging.getLogger("voxqueue.liveness")

BEAT_S = 2.0  # seconds between heartbeats
TTL_S = 10  # a heartbeat not refreshed this long means the process is gone
HOLDING_TTL_S = 24 * 3600  # what a dead holder held stays readable until housekeeping takes it
ALIVE = "voxqueue:alive:"
HOLDING = "voxqueue:holding:"
REGISTRY = "voxqueue:holders"  # every holder seen, scored by its last heartbeat (seconds)

Holding = Callable[[], Iterable[int]]


class HandBack(Exception):
    """Raised inside a work loop when the worker is stopping: the check goes back, checkpoint kept."""


def pause(seconds: float) -> None:
    """Sleep, but wake (and raise :class:`HandBack`) when the worker is asked to stop."""
    if stopping.wait(seconds):
        raise HandBack


def new_holder_id() -> str:
    return f"{socket.gethostname()[:64]}:{os.getpid()}:{secrets.token_hex(3)}"


class Heartbeat:
    """One process's heartbeat: :meth:`beat` once, or :meth:`start` a thread that keeps beating."""

    def __init__(self, client: redis.Redis, holder: str, holding: Holding | None = None) -> None:
        self.client = client
        self.holder = holder
        self.holding = holding
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False

    def beat(self) -> None:
        with self.client.pipeline(transaction=False) as pipe:
            pipe.set(ALIVE + self.holder, "1", ex=TTL_S)
            pipe.zadd(REGISTRY, {self.holder: time.time()})
            if self.holding is not None:
                pipe.set(HOLDING + self.holder, json.dumps(sorted(set(self.holding()))), ex=HOLDING_TTL_S)
            pipe.execute()

    def start(self) -> Heartbeat:
        """Beat now (so no claim precedes the first heartbeat), then every :data:`BEAT_S` in a thread."""
        self._safe_beat()
        self._thread = threading.Thread(target=self._run, name="voxqueue-heartbeat", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(BEAT_S):
            self._safe_beat()

    def _safe_beat(self) -> None:
        try:
            self.beat()
        except redis.RedisError as exc:  # the broker is away: say so once, keep trying
            if not self._failing:
                log.warning("heartbeat failed: %s: %s", type(exc).__name__, exc)
            self._failing = True
        else:
            if self._failing:
                log.info("heartbeat restored")
            self._failing = False

    def stop(self) -> None:
        """Stop beating and delete the heartbeat: a lease this process still holds goes again on
        the next round (its unfinished messages went back to their queues as it stopped)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(1)
        if self._failing:
            return  # the broker is away: the heartbeat lapses there on its own within TTL_S
        try:
            with self.client.pipeline(transaction=False) as pipe:
                pipe.delete(ALIVE + self.holder, HOLDING + self.holder)
                pipe.zrem(REGISTRY, self.holder)
                pipe.execute()
        except redis.RedisError:
            pass  # it lapses on its own within TTL_S


_lock = threading.Lock()
_current: Heartbeat | None = None
_pid: int | None = None
# Set when this worker is asked to stop (SIGTERM): work loops hand back what they have not
# started (their checkpoints kept) instead of running their whole message to the end.
stopping = threading.Event()


def start(client: redis.Redis, holding: Holding | None = None) -> Heartbeat:
    """Start this process's heartbeat (a worker process does, as it starts; again after a fork)."""
    global _current, _pid
    with _lock:
        if _pid != os.getpid() or _current is None:
            _current = Heartbeat(client, new_holder_id(), holding).start()
            _pid = os.getpid()
        return _current


def holder_id() -> str | None:
    """The holder id claims record, or None in a process with no heartbeat (a command, a test):
    its claims are covered by the lease alone."""
    beat = current()
    return beat.holder if beat is not None else None


def current() -> Heartbeat | None:
    return _current if _pid == os.getpid() else None


def stop() -> None:
    """Stop this process's heartbeat and delete it (a clean shutdown)."""
    global _current
    beat = current()
    if beat is not None:
        beat.stop()
        _current = None


def alive(client: redis.Redis, holders: Iterable[str]) -> set[str]:
    """The holders among ``holders`` whose heartbeat is current."""
    holders = list(holders)
    if not holders:
        return set()
    with client.pipeline(transaction=False) as pipe:
        for h in holders:
            pipe.exists(ALIVE + h)
        return {h for h, found in zip(holders, pipe.execute()) if found}


def known(client: redis.Redis) -> set[str]:
    return {h.decode() if isinstance(h, bytes) else h for h in client.zrange(REGISTRY, 0, -1)}


def holdings(client: redis.Redis, holders: Iterable[str]) -> dict[str, set[int]]:
    """holder -> the check ids its messages carry, as it last wrote them (absent: none written)."""
    holders = list(holders)
    if not holders:
        return {}
    found: dict[str, set[int]] = {}
    for h, raw in zip(holders, client.mget([HOLDING + h for h in holders])):
        if raw is not None:
            found[h] = {int(i) for i in json.loads(raw)}
    return found


def forget(client: redis.Redis, holders: Iterable[str]) -> None:
    """Drop dead holders from the registry once their work has gone again."""
    holders = list(holders)
    if holders:
        with client.pipeline(transaction=False) as pipe:
            pipe.zrem(REGISTRY, *holders)
            pipe.delete(*[HOLDING + h for h in holders])
            pipe.execute()
