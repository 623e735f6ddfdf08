"""CPU and memory of process groups, machine-load notes, and timers for child processes."""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import threading
import time
from collections.abc import Callable
from typing import Self

BUSY_LOAD = 0.1  # a busy share of all cores above this, with nothing of ours running, disturbs numbers
DISTURBED = "  << OTHER LOAD ON THIS MACHINE: numbers disturbed"


def busy(t) -> float:
    """Busy CPU seconds in a ``psutil.cpu_times()`` answer."""
    return t.user + t.nice + t.system + getattr(t, "irq", 0) + getattr(t, "softirq", 0)


class ProcessSampler:
    """CPU seconds and peak RSS of process groups, sampled in a background thread.

    A group is a callable returning the current pids (children included), asked
    again every ``resolve_every`` seconds (finding processes scans every process
    on the machine, which is the sampler's main cost: it would otherwise be
    counted against the system it measures). A process that starts during the
    measurement counts from zero when first seen; one that exits between samples
    loses at most one interval of CPU.
    """

    def __init__(self, groups: dict[str, Callable[[], list[int]]], interval: float = 0.25,
                 resolve_every: float = 1.0) -> None:
        import psutil

        self.psutil = psutil
        self.groups = groups
        self.interval = interval
        self.resolve_every = resolve_every
        self._pids: dict[str, list[int]] = {}
        self._resolved_at = 0.0
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self.group_of: dict[int, str] = {}
        self.peak_rss: dict[int, int] = {}
        self.peak_count: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.machine_busy = 0.0
        self.wall = 0.0

    def _resolve(self) -> None:
        now = time.monotonic()
        stale = now - self._resolved_at >= self.resolve_every
        for group, pids in list(self.groups.items()):
            if stale or group not in self._pids:
                self._pids[group] = pids()
                self.peak_count[group] = max(self.peak_count.get(group, 0), len(self._pids[group]))
        if stale:
            self._resolved_at = now

    def _sample(self, initial: bool) -> None:
        self._resolve()
        for group, current in list(self._pids.items()):
            for pid in current:
                self._sample_one(pid, group, initial)

    def _sample_one(self, pid: int, group: str, initial: bool) -> None:
        try:
            p = self.psutil.Process(pid)
            with p.oneshot():
                cpu = sum(p.cpu_times()[:2])
                rss = p.memory_info().rss
        except self.psutil.Error:
            return
        if pid not in self.first:
            self.first[pid] = cpu if initial else 0.0
            self.group_of[pid] = group
        self.last[pid] = cpu
        self.peak_rss[pid] = max(self.peak_rss.get(pid, 0), rss)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample(False)

    def __enter__(self) -> Self:
        self._t0 = time.monotonic()
        self._cpu0 = busy(self.psutil.cpu_times())
        self._sample(True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._resolved_at = 0.0  # a last full look
        self._sample(False)
        self.wall = time.monotonic() - self._t0
        self.machine_busy = busy(self.psutil.cpu_times()) - self._cpu0

    def cpu(self, group: str) -> float:
        return sum(self.last[p] - self.first[p] for p, g in self.group_of.items() if g == group)

    def rss(self, group: str) -> dict[int, int]:
        return {p: r for p, r in self.peak_rss.items() if self.group_of.get(p) == group}

    def workers(self) -> list[str]:
        return [g for g in sorted(set(self.group_of.values())) if g.startswith("worker")]


def tree(pid: int) -> Callable[[], list[int]]:
    import psutil

    def pids() -> list[int]:
        try:
            p = psutil.Process(pid)
            return [pid] + [c.pid for c in p.children(recursive=True)]
        except psutil.Error:
            return []
    return pids


def named(*names: str, cmdline_has: str | None = None) -> Callable[[], list[int]]:
    """Processes by name (and, for PostgreSQL backends, the database in their title)."""
    import psutil

    def pids() -> list[int]:
        found = []
        for p in psutil.process_iter(["name", "cmdline"]):
            if p.info["name"] not in names:
                continue
            if cmdline_has and cmdline_has not in " ".join(p.info["cmdline"] or ()):
                continue
            found.append(p.pid)
        return found
    return pids


def run_groups(workers: list, sandbox_pid: int, dbname: str, harness: list[int]) -> dict:
    """The process groups of one run: each worker, the sandbox, Redis, the database's PostgreSQL
    backends and this benchmark (``harness``: pids, appended to as helpers start)."""
    groups = {f"worker{i}": tree(p.pid) for i, (p, _) in enumerate(workers)}
    return groups | {"sandbox": tree(sandbox_pid), "redis": named("redis-server"),
                     "postgres": named("postgres", cmdline_has=dbname), "harness": lambda: harness}


def cpu_check(seconds: float = 1.0) -> tuple[float, float]:
    """Milliseconds of one fixed pure-Python workload (JSON, hashing, dicts), timed again and
    again for ``seconds``: (best, median). Compare runs with it: a slower figure means a busier
    or slower machine, not slower voxqueue code; a median well above the best, a machine whose
    speed swings (seen here: 25 ms, then 50-60 ms for a few tenths of a second)."""
    import hashlib

    doc = {"SessionId": "x" * 36, "Words": [{"Word": "w", "PronAccuracy": 1.5, "i": i} for i in range(50)]}
    times: list[float] = []
    deadline = time.perf_counter() + seconds
    while len(times) < 7 or time.perf_counter() < deadline:
        t0 = time.perf_counter()
        for i in range(300):
            text = json.dumps(doc | {"n": i})
            hashlib.sha256(text.encode()).hexdigest()
            json.loads(text)
        times.append(time.perf_counter() - t0)
    return min(times) * 1000, statistics.median(times) * 1000


def background_load(seconds: float = 1.0) -> float:
    """Busy share of all cores over ``seconds`` while this benchmark does nothing."""
    import psutil

    t0, busy0 = time.monotonic(), busy(psutil.cpu_times())
    time.sleep(seconds)
    return (busy(psutil.cpu_times()) - busy0) / ((time.monotonic() - t0) * (os.cpu_count() or 1))


def load_note(load: float) -> str:
    return DISTURBED if load > BUSY_LOAD else ""


def machine_line(s: ProcessSampler, attributed: float, idle_load: float) -> str:
    """How busy the machine was during a sampled run, and before it."""
    cores = os.cpu_count() or 1
    return (f"  machine busy {s.machine_busy:.1f} CPU-s of {cores * s.wall:.1f} available"
            f" ({100 * s.machine_busy / (cores * s.wall):.0f}% of {cores} cores); not attributed above (kernel,"
            f" other processes) {s.machine_busy - attributed:.1f} CPU-s; load before the run (nothing of ours"
            f" busy) {100 * idle_load:.0f}%" + load_note(idle_load))


class Timer:
    """Seconds and calls spent in wrapped functions, context managers or iterators."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.calls = 0

    def wrap(self, fn):
        def timed(*a, **kw):
            t0 = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                self.seconds += time.perf_counter() - t0
                self.calls += 1
        return timed

    def wrap_cm(self, cm_factory):
        @contextlib.contextmanager
        def timed(*a, **kw):
            t0 = time.perf_counter()
            try:
                with cm_factory(*a, **kw) as value:
                    yield value
            finally:
                self.seconds += time.perf_counter() - t0
                self.calls += 1
        return timed

    def wrap_iter(self, fn):
        def timed(*a, **kw):
            it = iter(fn(*a, **kw))
            while True:
                t0 = time.perf_counter()
                try:
                    item = next(it)
                except StopIteration:
                    self.seconds += time.perf_counter() - t0
                    return
                self.seconds += time.perf_counter() - t0
                yield item
        return timed
