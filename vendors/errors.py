"""The error taxonomy shared by every vendor client.

Every failure a vendor call can produce becomes a :class:`VendorError` whose
``disposition`` tells the caller what to do next, and whose ``reason`` is a
short machine-readable string used in logs, metrics and the job's error field.
Messages never contain secrets: clients build them from vendor codes and
vendor messages only.
"""

from __future__ import annotations

import enum


class Disposition(enum.Enum):
    """What the caller should do after a failure."""

    RETRY = "retry"  # transient: send the same request again after a backoff
    THROTTLED = "throttled"  # the vendor is rate limiting: wait, do not count an attempt
    RESEND = "resend"  # SOE: the vendor lost earlier chunks, resend from the checkpoint
    RESTART = "restart"  # SOE: the session is gone, start a new one from the first chunk
    PENDING = "pending"  # the result is not ready yet: ask again later
    PERMANENT = "permanent"  # cannot succeed: fail the check with this reason


class VendorError(Exception):
    """A failed vendor call, with everything needed to decide and to report."""

    def __init__(
        self,
        vendor: str,
        reason: str,
        message: str = "",
        *,
        disposition: Disposition = Disposition.PERMANENT,
        code: str | int | None = None,
        status: int | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.vendor = vendor
        self.reason = reason
        self.message = message
        self.disposition = disposition
        self.code = None if code is None else str(code)
        self.status = status
        self.request_id = request_id
        self.retry_after = retry_after
        super().__init__(self.summary())

    @property
    def retryable(self) -> bool:
        return self.disposition is not Disposition.PERMANENT

    def summary(self) -> str:
        """One line: ``vendor: code: message (reason)``."""
        head = f"{self.vendor}: {self.code}" if self.code else self.vendor
        text = self.message or self.reason
        return f"{head}: {text} ({self.reason})"

    def __reduce__(self):  # picklable, so Celery can carry it between processes
        kwargs = {
            "disposition": self.disposition,
            "code": self.code,
            "status": self.status,
            "request_id": self.request_id,
            "retry_after": self.retry_after,
        }
        return (_rebuild, (type(self), self.vendor, self.reason, self.message, kwargs))


def _rebuild(cls, vendor, reason, message, kwargs):
    return cls(vendor, reason, message, **kwargs)


class TransportError(VendorError):
    """The request did not get an HTTP answer: connection refused or reset, timeout."""

    def __init__(self, vendor: str, message: str, **kwargs) -> None:
        kwargs.setdefault("disposition", Disposition.RETRY)
        super().__init__(vendor, "connection", message, **kwargs)


class BadResponse(VendorError):
    """An HTTP answer that could not be understood (not JSON, wrong shape)."""

    def __init__(self, vendor: str, message: str, **kwargs) -> None:
        kwargs.setdefault("disposition", Disposition.RETRY)
        super().__init__(vendor, "bad_response", message, **kwargs)


class InvalidInput(VendorError):
    """Our input cannot be sent to this vendor (too large, wrong format, no URL)."""

    def __init__(self, vendor: str, reason: str, message: str) -> None:
        super().__init__(vendor, reason, message, disposition=Disposition.PERMANENT)
