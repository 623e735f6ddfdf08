"""Celery configuration: one queue per vendor, late acks, events for Flower.

A queue per service means a slow or throttled vendor never starves another:
workers can be split by ``-Q`` and each queue drains at its own pace.
"""

from __future__ import annotations

from datetime import timedelta

from kombu import Queue
from redis.backoff import NoBackoff
from redis.retry import Retry

from config.broker import CLIENT_OPTIONS, TIMEOUT_S, broker_url
from config.settings import SERVICES, Settings

# Every task's name, in one table: each task registers under its name here, and the beat, the
# producers and the webhook receiver (which import no task module) send by it.
SOE_EVALUATE = "voxqueue.soe.evaluate"
GME_SUBMIT = "voxqueue.gme.submit"
SHUMEI_SUBMIT = "voxqueue.shumei.submit"
ASR_SUBMIT = "voxqueue.asr.submit"
TUPU_SUBMIT = "voxqueue.tupu.submit"
SHUMEI_QUERY = "voxqueue.shumei.query"
CALLBACK_MERGE = "voxqueue.callbacks.merge"
POLL_GME = "voxqueue.poll.gme"
POLL_SHUMEI = "voxqueue.poll.shumei"
POLL_SOE = "voxqueue.poll.soe"
HOUSEKEEPING_RECOVER = "voxqueue.housekeeping.recover"
NOTIFY_ROUND = "voxqueue.notify.round"
NOTIFY_DELIVER = "voxqueue.notify.deliver"
# service -> its task; each takes one argument, a list of check ids
SERVICE_TASKS = {"soe": SOE_EVALUATE, "gme": GME_SUBMIT, "shumei": SHUMEI_SUBMIT, "asr": ASR_SUBMIT,
                 "tupu": TUPU_SUBMIT}

POLL_QUEUE = "poll"
HOUSEKEEPING_QUEUE = "housekeeping"
NOTIFY_QUEUE = "notify"  # outbound notifications (tasks.notify): a receiver that is down waits here alone
QUEUES = (*SERVICES, "callbacks", POLL_QUEUE, HOUSEKEEPING_QUEUE, NOTIFY_QUEUE)

# Longer than any countdown or ETA a task uses, so Redis never redelivers a message that a
# live worker still holds (a retry waiting for its countdown is held, unacknowledged).
VISIBILITY_TIMEOUT = 3600
# The longest countdown any task may give its retry (tasks.policy clamps every one to it): half
# the visibility timeout, the other half left for the task's run once it is due.
MAX_COUNTDOWN_S = VISIBILITY_TIMEOUT / 2


def task_routes() -> dict[str, dict[str, str]]:
    routes = {f"voxqueue.{service}.*": {"queue": service} for service in SERVICES}
    routes["voxqueue.callbacks.*"] = {"queue": "callbacks"}
    routes["voxqueue.poll.*"] = {"queue": POLL_QUEUE}
    routes["voxqueue.housekeeping.*"] = {"queue": HOUSEKEEPING_QUEUE}
    routes["voxqueue.notify.*"] = {"queue": NOTIFY_QUEUE}
    return routes


def beat_schedule(settings: Settings) -> dict[str, dict]:
    poll = timedelta(seconds=settings.poll_interval)
    housekeeping = timedelta(seconds=settings.housekeeping_interval)
    # A round nobody ran in time is dropped (expires): the next one does its work.
    return {
        "poll-gme": {"task": POLL_GME, "schedule": poll,
                     "options": {"expires": 2 * poll.total_seconds()}},
        "poll-shumei": {"task": POLL_SHUMEI, "schedule": poll,
                        "options": {"expires": 2 * poll.total_seconds()}},
        "deliver-notifications": {"task": NOTIFY_ROUND, "schedule": poll,
                                  "options": {"expires": 2 * poll.total_seconds()}},
        "poll-soe": {"task": POLL_SOE, "schedule": poll,  # async sessions (soe_mode async)
                     "options": {"expires": 2 * poll.total_seconds()}},
        "recover-stranded-checks": {"task": HOUSEKEEPING_RECOVER, "schedule": housekeeping,
                                    "options": {"expires": 2 * housekeeping.total_seconds()}},
    }


def celery_config(settings: Settings) -> dict:
    url = broker_url(settings)
    return {
        "broker_url": url,
        "broker_connection_retry_on_startup": True,
        "broker_connection_max_retries": None,  # a worker waits for its broker for as long as it takes
        "broker_connection_timeout": TIMEOUT_S,
        # Every broker command times out (a broker that accepts and never answers must not hang a
        # process); kombu's BRPOP waits 1 s, well inside it.
        "broker_transport_options": {"visibility_timeout": VISIBILITY_TIMEOUT, **CLIENT_OPTIONS},
        # Tasks publish their retries with a short retry of their own; producers (ingest, retry,
        # housekeeping) wait longer, up to VOXQUEUE_BROKER_WAIT_SECONDS (tasks.dispatch).
        "task_publish_retry_policy": {"max_retries": 3, "interval_start": 0.2, "interval_step": 0.5,
                                      "interval_max": 1.0},
        "result_backend": None,
        "task_ignore_result": True,
        "task_queues": [Queue(name) for name in QUEUES],
        "task_default_queue": "soe",
        "task_routes": task_routes(),
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_acks_on_failure_or_timeout": True,
        "worker_prefetch_multiplier": 1,
        # A task running when the broker connection drops goes on: it is idempotent and records
        # its outcome in the database; its message is redelivered or sent again by housekeeping.
        "worker_cancel_long_running_tasks_on_connection_loss": False,
        # Task events (received/started/succeeded: three Redis publishes per task, a tenth of a
        # worker's CPU) only while someone watches: Flower turns them on in every worker when it
        # starts and every few seconds after (`voxqueue flower`); `voxqueue worker --events`
        # sends them always. A "sent" event would add a publish to every message a producer sends.
        "worker_send_task_events": False,
        "task_send_sent_event": False,
        "worker_hijack_root_logger": False,
        "task_serializer": "json",
        "accept_content": ["json"],
        "beat_schedule": beat_schedule(settings),
        "redbeat_redis_url": url.replace("redis+socket://", "unix://"),
        "redbeat_key_prefix": "voxqueue:redbeat:",
        "redbeat_redis_options": {**CLIENT_OPTIONS, "retry": Retry(NoBackoff(), 0)},  # workers.beat retries
        "redbeat_lock_timeout": 30,
        "beat_max_loop_interval": 5,
    }
