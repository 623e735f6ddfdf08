"""Counters of the sandbox that tests and benchmarks read (``GET /_sandbox/stats``)."""

from __future__ import annotations

import time
from collections import Counter, defaultdict, deque
from collections.abc import Iterable
from typing import Any


class PeakRate:
    """The most events seen inside any sliding window of ``window`` seconds.

    Keeps only the timestamps of the last window, so memory stays flat however long
    a benchmark runs. Timestamps must arrive in non-decreasing order (one event loop).
    """

    def __init__(self, window: float = 1.0) -> None:
        self.window = window
        self.recent: deque[float] = deque()
        self.peak = 0
        self.count = 0

    def add(self, t: float) -> None:
        self.recent.append(t)
        while t - self.recent[0] >= self.window:
            self.recent.popleft()
        self.peak = max(self.peak, len(self.recent))
        self.count += 1


def peak_in_window(timestamps: Iterable[float], window: float = 1.0) -> int:
    """The largest number of sorted ``timestamps`` inside any half-open window of ``window`` s."""
    rate = PeakRate(window)
    for t in timestamps:
        rate.add(t)
    return rate.peak


class Stats:
    """Counters the tests and benchmarks read."""

    def __init__(self) -> None:
        self.requests: Counter[str] = Counter()  # "soe.TransmitOralProcessWithInit" -> n
        self.faults: Counter[str] = Counter()  # fault kind -> n
        self.faults_by_action: Counter[str] = Counter()  # "gme.ScanVoice" -> faulted requests
        self.max_loop_lag_ms = 0.0  # the longest the event loop woke late
        self.rates: defaultdict[str, PeakRate] = defaultdict(PeakRate)  # vendor -> requests/s
        self.per_second: defaultdict[str, Counter[int]] = defaultdict(
            Counter
        )  # vendor -> epoch s -> n
        self.accepted: defaultdict[str, Counter[str]] = defaultdict(Counter)  # vendor -> key -> n
        self.duplicates: defaultdict[str, Counter[str]] = defaultdict(Counter)  # vendor -> key -> n
        # vendor -> "delivered" | "failed_attempts" | "gave_up" -> n
        self.callbacks: defaultdict[str, Counter[str]] = defaultdict(Counter)

    def record(self, vendor: str, action: str) -> None:
        """One arriving request, faulted or not."""
        self.requests[f"{vendor}.{action}"] += 1
        self.rates[vendor].add(time.monotonic())
        self.per_second[vendor][int(time.time())] += 1

    def fault(self, kind: str, endpoint: str | None = None) -> None:
        self.faults[kind] += 1
        if endpoint:
            self.faults_by_action[endpoint] += 1

    def loop_lag(self, ms: float) -> None:
        self.max_loop_lag_ms = max(self.max_loop_lag_ms, ms)

    def accept(self, vendor: str, key: str) -> None:
        """One accepted submission for ``key`` (an idempotency key: SessionId, btId, ...)."""
        self.accepted[vendor][key] += 1

    def duplicate(self, vendor: str, key: str) -> None:
        """A submission under a key seen before (``accepted`` shows if it made a new task)."""
        self.duplicates[vendor][key] += 1

    def callback(self, vendor: str, outcome: str) -> None:
        """One callback outcome: "delivered", "failed_attempts" (per attempt) or "gave_up"."""
        self.callbacks[vendor][outcome] += 1

    def peak_rps(self, vendor: str) -> int:
        return self.rates[vendor].peak if vendor in self.rates else 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests": dict(self.requests),
            "faults": dict(self.faults),
            "faults_by_action": dict(self.faults_by_action),
            "max_loop_lag_ms": round(self.max_loop_lag_ms, 1),
            "vendor_requests": {v: r.count for v, r in self.rates.items()},
            "peak_rps": {v: r.peak for v, r in self.rates.items()},
            "per_second": {
                v: {str(s): n for s, n in c.items()} for v, c in self.per_second.items()
            },
            "accepted": {v: dict(c) for v, c in self.accepted.items()},
            "duplicates": {v: dict(c) for v, c in self.duplicates.items()},
            "callbacks": {v: dict(c) for v, c in self.callbacks.items()},
        }
