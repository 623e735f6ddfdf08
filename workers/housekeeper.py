"""A worker's own housekeeping rounds, and what its messages carry for its heartbeat.

Every worker that consumes the housekeeping queue runs a round every
``VOXQUEUE_HOUSEKEEPING_INTERVAL`` seconds in a thread of its main process
(:func:`tasks.housekeeping.run_round`, under the same lock as the beat's rounds),
so work stranded by a dead worker or a lost broker goes again with any one
worker alive, whether or not the beat is.
"""

from __future__ import annotations

import logging
import threading
from typing import ClassVar

from config.celery import SERVICE_TASKS as TASK_FOR
from config.settings import Settings
from tasks.infra import INFRA_ERRORS

log = logging.getLogger("voxqueue.housekeeping")

SERVICE_TASKS = frozenset(TASK_FOR.values())


class Housekeeper:
    running: ClassVar[Housekeeper | None] = None

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.interval = settings.housekeeping_interval
        self._stop = threading.Event()
        self._failing = False
        self.thread = threading.Thread(target=self._run, name="voxqueue-housekeeping", daemon=True)

    @classmethod
    def start_for(cls, settings: Settings) -> Housekeeper:
        """A round now, in the caller's thread (a worker starting after an outage; every module and
        engine a round needs is made here), then every interval in a thread."""
        cls.stop_running()
        cls.running = keeper = cls(settings)
        keeper._one_round()
        keeper.thread.start()
        return keeper

    @classmethod
    def stop_running(cls) -> None:
        keeper, cls.running = cls.running, None
        if keeper is not None:  # a round blocked on an absent broker is left behind (a daemon thread):
            keeper._stop.set()  # its lock expires, and the next process's rounds do its work
            keeper.thread.join(1)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._one_round()

    def _one_round(self) -> None:
        from tasks.housekeeping import run_round

        try:
            run_round(self.settings)
        except INFRA_ERRORS as exc:  # the broker or the database is away: say so once
            if not self._failing:
                log.warning("housekeeping round failed: %s: %s", type(exc).__name__, str(exc)[:200])
            self._failing = True
        except Exception as exc:  # a bug must not end the rounds: say so, go on
            log.error("housekeeping round failed: %s: %s", type(exc).__name__, str(exc)[:200],
                      exc_info=log.isEnabledFor(logging.DEBUG))
        else:
            self._failing = False


def carried_check_ids() -> list[int]:
    """The check ids this worker's messages carry: received, waiting for a countdown, or running."""
    from celery.worker import state

    ids: list[int] = []
    for requests in (state.reserved_requests, state.scheduled_requests, state.active_requests):
        for request in _snapshot(requests):
            if request.name in SERVICE_TASKS and request.args:
                ids += request.args[0]  # every service task takes a list of check ids
    return ids


def _snapshot(requests) -> list:
    """A copy of a set other threads change (a WeakSet raises if it changes while copied)."""
    for _ in range(5):
        try:
            return list(requests)
        except RuntimeError:
            continue
    return []
