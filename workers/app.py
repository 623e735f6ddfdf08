"""The Celery application (:mod:`tasks.app`) with a worker process's signal handlers connected.

The worker and beat commands (and ``celery -A workers.app``) import the app from here, so a
worker process beats, runs its housekeeping rounds and hands back its work on SIGTERM.
"""

from __future__ import annotations

import gc
import logging
import warnings

from celery.exceptions import CPendingDeprecationWarning
from celery.signals import (
    worker_init,
    worker_process_init,
    worker_process_shutdown,
    worker_ready,
    worker_shutdown,
    worker_shutting_down,
)

from config.celery import HOUSEKEEPING_QUEUE
from config.settings import get_settings
from tasks.app import TASK_MODULES, app

__all__ = ["TASK_MODULES", "app"]
log = logging.getLogger("voxqueue.worker")


@worker_init.connect
def _start_liveness(sender=None, **_kwargs) -> None:
    """The worker's heartbeat, carrying which checks its messages hold."""
    from config.broker import shared_client
    from tasks import liveness
    from workers.housekeeper import carried_check_ids

    # Chosen on purpose (config.celery: worker_cancel_long_running_tasks_on_connection_loss), not a
    # warning to print at every broker reconnection (after Celery's own "always" filters).
    warnings.filterwarnings("ignore", message="\nIn Celery 5.1 we introduced", category=CPendingDeprecationWarning)
    liveness.start(shared_client(get_settings()), holding=carried_check_ids)


@worker_process_init.connect
def _fresh_connections(**_kwargs) -> None:
    """A forked child must not reuse its parent's database connections; it beats on its own."""
    from config.broker import shared_client
    from models.db import dispose_engines
    from tasks import liveness

    dispose_engines()
    liveness.start(shared_client(get_settings()))
    gc.freeze()


@worker_ready.connect
def _warm_database(**_kwargs) -> None:
    """The engine made, and one connection opened, before the first message is taken: making the
    engine imports the driver and SQLAlchemy's dialect (about 135 ms of CPU here), and a task
    thread that did it held every other thread of the process on the engine's lock, on the first
    files of a batch. A database not reachable yet is the first task's to report."""
    from models.db import engine_for
    from tasks.infra import INFRA_ERRORS

    engine = engine_for(get_settings().database_url)
    try:
        with engine.connect():
            pass
    except INFRA_ERRORS as exc:
        log.info("database not reachable at start (%s); the first task tries again", type(exc).__name__)


@worker_ready.connect
def _start_housekeeping(sender=None, **_kwargs) -> None:
    """A worker that consumes the housekeeping queue runs its own rounds: recovery needs no beat.
    Started once the pool has forked, and its first round run here, in this thread: a child
    forked later (a prefork child replaced) must not find an import or an engine half made by
    another thread, whose locks it would wait on for ever."""
    from workers.housekeeper import Housekeeper

    queues = set(sender.app.amqp.queues.consume_from or sender.app.amqp.queues)
    if HOUSEKEEPING_QUEUE in queues:
        Housekeeper.start_for(get_settings())


@worker_ready.connect
def _start_limit_log(**_kwargs) -> None:
    """A line in the log, once a minute per host, while a shared rate limit holds work back."""
    from config.broker import shared_client
    from workers.limitlog import LimitLog

    LimitLog.start(shared_client(get_settings()))


@worker_ready.connect
def _freeze_startup_objects(**_kwargs) -> None:
    """Modules, configuration and the app live as long as the worker: keep them out of the
    cyclic collector's way, so its full collections are short (they pause every thread)."""
    gc.freeze()


@worker_shutting_down.connect
def _hand_back(**_kwargs) -> None:
    """SIGTERM: running work hands back what it has not finished (see tasks.liveness.stopping)."""
    from tasks import liveness

    liveness.stopping.set()


@worker_shutdown.connect
@worker_process_shutdown.connect
def _stop_liveness(**_kwargs) -> None:
    from tasks import liveness
    from workers.housekeeper import Housekeeper
    from workers.limitlog import LimitLog

    Housekeeper.stop_running()
    LimitLog.stop_running()
    liveness.stop()
