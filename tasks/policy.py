"""Every retry rule of the project, in one place: how often, how soon, and when to give up.

A :class:`RetryPolicy` is a small frozen value: the attempts allowed, and a capped
exponential backoff with jitter whose random source is an argument (as botocore's and
stripe's are), so a test fixes it. The waits of every service task, in-process retry,
poll schedule and producer wait are the named policies below; nothing else in the
code computes a backoff.

A wait that becomes a task's countdown (a retry message held by a worker until it is due)
never exceeds :data:`config.celery.MAX_COUNTDOWN_S`, derived from the broker's visibility
timeout, so Redis never redelivers a message a live worker still holds:
:meth:`RetryPolicy.countdown` clamps a vendor's Retry-After or a rate-limit wait to it too.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from config.celery import MAX_COUNTDOWN_S
from config.settings import Settings

Random = Callable[[], float]


@dataclass(frozen=True)
class RetryPolicy:
    """``attempts`` tries in all (None: no limit); the n-th wait doubles from ``base`` to ``cap``.

    With ``jitter`` the wait is uniform in [ceiling/2, ceiling]: retries spread out but
    never come back at once; without it, the ceiling itself (poll schedules).
    """

    attempts: int | None
    base: float
    cap: float
    jitter: bool = True

    def delay(self, attempt: int, rand: Random = random.random) -> float:
        """Seconds before retry number ``attempt`` (1-based)."""
        ceiling = min(self.cap, self.base * 2 ** min(max(0, attempt - 1), 32))
        return ceiling / 2 + rand() * ceiling / 2 if self.jitter else ceiling

    def exhausted(self, attempts: int) -> bool:
        """True when ``attempts`` tries have used up what the policy allows."""
        return self.attempts is not None and attempts >= self.attempts

    def countdown(
        self, attempt: int, hint: float | None = None, rand: Random = random.random
    ) -> float:
        """The delay of a retry message: the vendor's or the limiter's ``hint`` when it gave one,
        else :meth:`delay`; never beyond :data:`~config.celery.MAX_COUNTDOWN_S`."""
        wait = hint if hint is not None else self.delay(attempt, rand)
        return max(0.0, min(wait, MAX_COUNTDOWN_S))


# Service tasks: a retry message after a retryable failure (attempts counted on the check).
MODERATION = RetryPolicy(attempts=6, base=1.0, cap=120.0)  # a submission to GME, Shumei, ASR, Tupu


def soe(settings: Settings) -> RetryPolicy:
    """An SOE check: ``VOXQUEUE_SOE_MAX_ATTEMPTS`` sessions tried, then failed."""
    return RetryPolicy(attempts=settings.soe_max_attempts, base=1.0, cap=300.0)


def notify(settings: Settings) -> RetryPolicy:
    """An outbound notification: retried until ``VOXQUEUE_NOTIFY_RETRY_SECONDS`` is spent (a
    time stored with it, not a countdown: its cap may exceed the visibility timeout)."""
    return RetryPolicy(attempts=None, base=1.0, cap=settings.notify_backoff_max_seconds)


INFRA = RetryPolicy(
    attempts=None, base=1.0, cap=60.0
)  # our database or Redis failed: no attempt spent

# In-process retries (a thread waits; the task keeps its lease).
SOE_CHUNK = RetryPolicy(attempts=4, base=0.2, cap=4.0)  # one chunk, before the task itself retries
SOE_THROTTLED = RetryPolicy(attempts=None, base=0.25, cap=4.0)  # SOE throttles one request
SOE_THROTTLE_BUDGET_S = 20.0  # in-process waiting on SOE's throttling before the task retries
SOE_RESULT = RetryPolicy(attempts=10, base=0.2, cap=3.0)  # asking for a session's result
STREAM_CLOSE = RetryPolicy(
    attempts=MODERATION.attempts, base=0.5, cap=8.0
)  # `voxqueue stream close`
STREAM_CLOSE_PAUSE_BUDGET_S = 30.0  # its waiting on limits, throttling and an open circuit, in all
BROKER_WAIT = RetryPolicy(attempts=None, base=0.5, cap=4.0)  # a producer waiting for its broker

# Schedules (no jitter): the n-th poll of a check, the n-th wait for a callback's submission.
POLL = RetryPolicy(attempts=None, base=2.0, cap=60.0, jitter=False)  # GME, Shumei results
SOE_POLL = RetryPolicy(attempts=None, base=1.0, cap=10.0, jitter=False)  # SOE async sessions
CALLBACK_BEFORE_SUBMISSION = RetryPolicy(attempts=5, base=1.0, cap=16.0, jitter=False)

# Every policy whose waits become countdowns: each cap within the visibility rule.
COUNTDOWNS = (MODERATION, INFRA, CALLBACK_BEFORE_SUBMISSION)
