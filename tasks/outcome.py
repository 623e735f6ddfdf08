"""What one delivery of a service task did with each of its checks, and the line that says so.

A service task returns :func:`summary` of its checks' outcomes: Flower shows it in its result
column (from the task-succeeded event's ``result``, the repr of what the task returned; no
result backend is involved), e.g. ``done``, ``failed: auth``, or ``2 done; 1 failed: auth``
for a group. A task that sends some of its checks again ends in a retry, as Celery's own
retries do: a moderation task's retry exception (:class:`SentAgain`) carries the same line,
e.g. ``Retry in 4s: SentAgain('retry in 4 s (throttled); 3 done')``; an SOE task's is the
vendor error that sent it again (its line is logged). Only reason codes go into it, never a vendor's
message or anything from a request, so no secret can.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace

DONE = "done"  # the result is recorded
SUBMITTED = "submitted"  # the vendor took it: its result comes by poll or callback
POLLED = "polled"  # SOE async: every chunk is in, its result is polled on the beat
FAILED = "failed"  # for good
RETRY = "retry"  # sent again after ``wait`` seconds
HANDED_BACK = "handed back"  # the worker is stopping: another one takes it at once
SKIPPED = "skipped"  # finished, gone or held by another delivery: nothing to do


@dataclass(frozen=True)
class Outcome:
    kind: str
    reason: str | None = None  # a reason code (failed, retry): "auth", "throttled", "http_5xx"
    wait: float = 0.0  # retry: seconds before the retry message is due
    error: Exception | None = field(default=None, compare=False, repr=False)  # why it goes again

    def label(self) -> str:
        if self.kind == FAILED:
            return f"failed: {self.reason}"
        if self.kind == RETRY:
            return f"retry in {self.wait:.0f} s" + (f" ({self.reason})" if self.reason else "")
        return self.kind


class SentAgain(Exception):
    """The exception a task gives its retry (the task ends RETRY, its message sent again): its text
    is the task's outcome line, which Flower shows as the retry's exception."""


def done() -> Outcome:
    return Outcome(DONE)


def failed(reason: str) -> Outcome:
    return Outcome(FAILED, reason)


def retry(wait: float, reason: str | None, error: Exception | None = None) -> Outcome:
    return Outcome(RETRY, reason, wait, error)


def retry_reason(error: Exception) -> str:
    """The reason a retry shows: ``throttled`` (the shared limit or the vendor), ``circuit open``,
    or the vendor error's reason code."""
    from tasks.breaker import CircuitOpen
    from tasks.ratelimit import Throttled
    from vendors.errors import Disposition, VendorError

    if isinstance(error, Throttled):
        return "throttled"
    if isinstance(error, CircuitOpen):
        return "circuit open"
    if isinstance(error, VendorError):
        return "throttled" if error.disposition is Disposition.THROTTLED else error.reason
    return type(error).__name__


def sent_again(outcomes: dict[int, Outcome], countdown: float) -> dict[int, Outcome]:
    """The outcomes with every retry due after ``countdown`` (its group's one retry message)."""
    return {i: replace(o, wait=countdown) if o.kind == RETRY else o for i, o in outcomes.items()}


def summary(outcomes: list[Outcome]) -> str:
    """One outcome's label; for several, each distinct label with its count, most first."""
    if not outcomes:
        return SKIPPED
    labels = Counter(o.label() for o in outcomes)
    if len(outcomes) == 1:
        return next(iter(labels))
    return "; ".join(f"{count} {label}" for label, count in labels.most_common())
