"""Failures of our own infrastructure (database, Redis) inside a task.

They are not the vendor's and not the input's: the task sends its own retry
with backoff, then gives its leases back (best effort, briefly retried, since
the database may be the thing that failed), so the check is not left waiting
for its lease to lapse. Attempts are not counted. If the retry cannot be sent
(the broker is what failed), the leases stay held and lapse, and housekeeping
sends the work again.
"""

from __future__ import annotations

import logging
import time

import redis
from sqlalchemy.exc import InterfaceError, OperationalError

from tasks import policy

log = logging.getLogger("voxqueue.tasks")

INFRA_ERRORS = (OperationalError, InterfaceError, redis.RedisError)


def retry_after_infra_error(task, check_ids: list[int], error: Exception):
    """Send the task's retry, release the checks' leases, and return the Retry to raise."""
    from tasks.common import release

    log.warning("infrastructure error, retrying", extra={"error": type(error).__name__})
    retry = task.retry(countdown=policy.INFRA.countdown(task.request.retries + 1), exc=error,
                       max_retries=None, throw=False)  # raises if the broker is down: leases stay
    for attempt in range(3):
        try:
            for check_id in check_ids:
                release(check_id)
            break
        except INFRA_ERRORS:
            time.sleep(0.5 * (attempt + 1))
    return retry
