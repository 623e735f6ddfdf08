"""The Celery application every voxqueue worker, beat and producer shares."""

from __future__ import annotations

import gc

from celery import Celery
from celery.signals import worker_process_init, worker_ready

from config import transport
from config.celery import celery_config
from config.settings import get_settings

TASK_MODULES = [
    "tasks.soe", "tasks.gme", "tasks.shumei", "tasks.asr", "tasks.tupu",
    "tasks.results", "tasks.poll", "tasks.housekeeping",
]

transport.install()  # before any broker connection: see config.transport
app = Celery("voxqueue", include=TASK_MODULES)
# Evaluated on first use, so importing the app neither reads settings nor starts a broker.
app.add_defaults(lambda: celery_config(get_settings()))


@worker_process_init.connect
def _fresh_connections(**_kwargs) -> None:
    """A forked child must not reuse its parent's database connections."""
    from models.db import dispose_engines

    dispose_engines()
    gc.freeze()


@worker_ready.connect
def _freeze_startup_objects(**_kwargs) -> None:
    """Modules, configuration and the app live as long as the worker: keep them out of the
    cyclic collector's way, so its full collections are short (they pause every thread)."""
    gc.freeze()
