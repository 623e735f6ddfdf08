"""The Celery application every voxqueue worker, beat and producer shares.

It lives here, under the tasks that register on it, so a task module imports it without
reaching up into :mod:`workers`; the worker process's signal handlers (heartbeat,
housekeeping thread, hand-back on SIGTERM) are connected by :mod:`workers.app`, which the
worker and beat commands import.
"""

from __future__ import annotations

from celery import Celery

from config import transport
from config.celery import celery_config
from config.settings import get_settings

TASK_MODULES = [
    "tasks.soe",
    "tasks.gme",
    "tasks.shumei",
    "tasks.asr",
    "tasks.tupu",
    "tasks.results",
    "tasks.poll",
    "tasks.housekeeping",
    "tasks.notify",
]

transport.install()  # before any broker connection: see config.transport
app = Celery("voxqueue", include=TASK_MODULES)
# Evaluated on first use, so importing the app neither reads settings nor starts a broker.
app.add_defaults(lambda: celery_config(get_settings()))
