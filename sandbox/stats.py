"""Counters of the sandbox that tests and benchmarks read (``GET /_sandbox/stats``)."""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from typing import Any


def peak_in_window(timestamps: list[float], window: float = 1.0) -> int:
    """The largest number of sorted ``timestamps`` inside any half-open window of ``window`` s."""
    best, start = 0, 0
    for end, t in enumerate(timestamps):
        while t - timestamps[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


class Stats:
    """Counters the tests and benchmarks read."""

    def __init__(self) -> None:
        self.requests: Counter[str] = Counter()  # "soe.TransmitOralProcessWithInit" -> n
        self.faults: Counter[str] = Counter()  # fault kind -> n
        self.times: defaultdict[str, list[float]] = defaultdict(list)  # vendor -> monotonic times
        self.per_second: defaultdict[str, Counter[int]] = defaultdict(Counter)  # vendor -> epoch s -> n
        self.accepted: defaultdict[str, Counter[str]] = defaultdict(Counter)  # vendor -> key -> n

    def record(self, vendor: str, action: str) -> None:
        self.requests[f"{vendor}.{action}"] += 1
        self.times[vendor].append(time.monotonic())
        self.per_second[vendor][int(time.time())] += 1

    def fault(self, kind: str) -> None:
        self.faults[kind] += 1

    def accept(self, vendor: str, key: str) -> None:
        """One accepted submission for ``key`` (an idempotency key: SessionId, btId, ...)."""
        self.accepted[vendor][key] += 1

    def peak_rps(self, vendor: str, window: float = 1.0) -> int:
        return peak_in_window(self.times.get(vendor, []), window)

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests": dict(self.requests),
            "faults": dict(self.faults),
            "vendor_requests": {v: len(ts) for v, ts in self.times.items()},
            "peak_rps": {v: self.peak_rps(v) for v in self.times},
            "per_second": {v: {str(s): n for s, n in c.items()} for v, c in self.per_second.items()},
            "accepted": {v: dict(c) for v, c in self.accepted.items()},
        }
