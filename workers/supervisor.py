"""``voxqueue worker --processes N``: one command, N Celery worker processes, each with threads.

As gunicorn runs workers × threads: the threads wait on vendors, the processes use every core
(one process with threads runs Python on one core at a time). The command's process starts the
N workers as child processes (``voxqueue worker --processes 1``, each a whole Celery worker with
its own broker connection, heartbeat (:mod:`tasks.liveness`) and housekeeping thread, so recovery
works per process as it does for separate commands), and only supervises them:

- SIGTERM or SIGINT stops all of them: each gets SIGTERM, hands back its unfinished checks and
  exits (Celery's warm shutdown); a second signal asks them for a cold shutdown (SIGQUIT). A
  child still running :data:`STOP_GRACE_SECONDS` after the first signal is SIGKILLed, as
  gunicorn's graceful timeout does: what it held goes back by the usual recovery (its heartbeat
  lapses), so one stuck child never keeps the command from stopping.
- The children share the command's process group, so a signal to the group (Ctrl-C on a
  terminal, ``kill -- -PGID``, a container stopped) reaches them all at once; a child whose
  parent is gone (the command SIGKILLed alone) stops itself (:func:`watch_parent`).
- A child that dies while the command runs (killed, out of memory) is started again, as gunicorn
  restarts a worker; its work went back through the usual recovery (its heartbeat lapses).
  A child that exits within :data:`BOOT_SECONDS` of its start has not booted (a broker URL it
  cannot use, an import error): the command then stops the others and exits 1, rather than
  restart it in a loop. A child that exits 0 on its own (``celery control shutdown``) is not
  restarted; the command exits 0 once none is left.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger("voxqueue.worker")

BOOT_SECONDS = 10.0  # a child that exits sooner than this after its start did not boot
PARENT_ENV = "VOXQUEUE_SUPERVISOR_PID"  # set in each child: the pid of the supervising command
POLL_S = 0.2
STOP_GRACE_SECONDS = 20.0  # after a stop signal, a child still running then is SIGKILLed


def default_processes() -> int:
    """One process per core this command may run on (its CPU affinity, else every core)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def watch_parent() -> None:
    """In a child: SIGTERM itself (a warm shutdown) when the supervising command is gone."""
    parent = os.environ.get(PARENT_ENV)
    if not parent or not parent.isdigit():
        return

    def watch() -> None:
        while os.getppid() == int(parent):
            time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="voxqueue-parent-watch", daemon=True).start()


@dataclass
class Child:
    index: int
    proc: subprocess.Popen
    started: float


class Supervisor:
    """Starts ``count`` children from ``command(index)``; keeps them running until told to stop."""

    def __init__(self, command: Callable[[int], list[str]], count: int,
                 env: dict[str, str] | None = None) -> None:
        self.command = command
        self.count = count
        self.env = dict(os.environ if env is None else env) | {PARENT_ENV: str(os.getpid())}
        self.children: dict[int, Child] = {}
        self.signals = 0
        self.stop_asked: float | None = None  # when the first stop signal came (monotonic)
        self.failed: str | None = None

    def run(self) -> int:
        """Run until every child has exited; the command's exit status."""
        stops = (signal.SIGTERM, signal.SIGINT)
        previous = {sig: signal.signal(sig, self._on_signal) for sig in stops}
        try:
            for index in range(self.count):
                self._start(index)
            while self.children:
                time.sleep(POLL_S)
                self._reap()
                asked = self.stop_asked
                if asked is not None and time.monotonic() - asked > STOP_GRACE_SECONDS:
                    self._kill_the_rest()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return 0 if self.failed is None else 1

    def _start(self, index: int) -> None:
        proc = subprocess.Popen(self.command(index), env=self.env, stdin=subprocess.DEVNULL)
        self.children[index] = Child(index, proc, time.monotonic())
        log.info("worker process %d started (pid %d)", index, proc.pid)

    def _reap(self) -> None:
        for child in list(self.children.values()):
            code = child.proc.poll()
            if code is None:
                continue
            del self.children[child.index]
            if self.signals or self.failed is not None:
                continue  # stopping: it was asked to
            status = f"signal {-code}" if code < 0 else f"status {code}"
            if code == 0:
                log.info("worker process %d (pid %d) exited", child.index, child.proc.pid)
            elif time.monotonic() - child.started < BOOT_SECONDS:
                self.failed = (f"worker process {child.index} exited with {status} while starting: "
                               "stopping the others (see its output above)")
                self._send(signal.SIGTERM)
            else:
                log.warning("worker process %d (pid %d) died with %s: starting it again",
                            child.index, child.proc.pid, status)
                self._start(child.index)

    def _kill_the_rest(self) -> None:
        for child in self.children.values():
            if child.proc.poll() is None:
                log.warning("worker process %d (pid %d) still running %.0f s after the stop "
                            "signal: killed (its checks go back when its heartbeat lapses)",
                            child.index, child.proc.pid, STOP_GRACE_SECONDS)
        self._send(signal.SIGKILL)
        self.stop_asked = None

    def _on_signal(self, signum, _frame) -> None:
        self.signals += 1
        if self.signals == 1:
            self.stop_asked = time.monotonic()
        self._send(signal.SIGTERM if self.signals == 1 else signal.SIGQUIT)

    def _send(self, sig: int) -> None:
        for child in list(self.children.values()):
            if child.proc.poll() is None:
                try:
                    child.proc.send_signal(sig)
                except ProcessLookupError:
                    pass
