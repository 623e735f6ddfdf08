"""Failures of our own infrastructure (database, Redis) inside a task.

They are not the vendor's and not the input's: the task gives its leases back
(best effort, briefly retried, since the database may be the thing that
failed) and retries itself with backoff, so the check is not left waiting for
its lease to lapse. Attempts and deliveries are not counted.
"""

from __future__ import annotations

import logging
import time

import redis
from sqlalchemy.exc import InterfaceError, OperationalError

from vendors.http import backoff

log = logging.getLogger("voxqueue.tasks")

INFRA_ERRORS = (OperationalError, InterfaceError, redis.RedisError)


def retry_after_infra_error(task, check_ids: list[int], error: Exception):
    """Release the checks' leases and return the task's retry exception to raise."""
    from tasks.common import release

    for attempt in range(3):
        try:
            for check_id in check_ids:
                release(check_id)
            break
        except INFRA_ERRORS:
            time.sleep(0.5 * (attempt + 1))
    log.warning("infrastructure error, retrying", extra={"error": type(error).__name__})
    return task.retry(countdown=backoff(task.request.retries + 1, base=1.0, cap=60.0), exc=error,
                      max_retries=None)
