"""``voxqueue worker --processes N``'s supervision, with stand-in children (real processes)."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

from tests.pipeline import wait_until
from workers import supervisor
from workers.supervisor import Supervisor

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]


def test_a_child_that_dies_is_started_again_and_sigterm_stops_them_all(monkeypatch):
    monkeypatch.setattr(supervisor, "BOOT_SECONDS", 0.0)
    sup = Supervisor(lambda index: SLEEPER, 2)
    seen: list = []

    def drive() -> None:
        wait_until(lambda: len(sup.children) == 2, 10, interval=0.05)
        killed = sup.children[0].proc
        killed.kill()
        wait_until(lambda: 0 in sup.children and sup.children[0].proc is not killed, 10,
                   interval=0.05)
        seen.extend(c.proc for c in sup.children.values())
        os.kill(os.getpid(), signal.SIGTERM)  # to the command: it stops every child

    thread = threading.Thread(target=drive)
    thread.start()
    assert sup.run() == 0
    thread.join()
    assert len(seen) == 2 and [p.returncode for p in seen] == [-signal.SIGTERM] * 2


def test_a_child_that_cannot_start_stops_the_others_and_fails_the_command():
    failing = [sys.executable, "-c", "raise SystemExit(3)"]
    sup = Supervisor(lambda index: failing if index == 0 else SLEEPER, 2)
    assert sup.run() == 1
    assert sup.failed.startswith("worker process 0 exited with status 3 while starting")


def test_a_child_that_ignores_the_stop_signal_is_killed_after_the_grace_period(monkeypatch):
    monkeypatch.setattr(supervisor, "BOOT_SECONDS", 0.0)
    monkeypatch.setattr(supervisor, "STOP_GRACE_SECONDS", 1.0)
    stubborn = [sys.executable, "-c",
                "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"]
    sup = Supervisor(lambda index: stubborn if index == 0 else SLEEPER, 2)
    seen: list = []

    def drive() -> None:
        wait_until(lambda: len(sup.children) == 2, 10, interval=0.05)
        seen.extend(c.proc for c in sup.children.values())
        time.sleep(0.5)  # the stubborn child has set its handler
        os.kill(os.getpid(), signal.SIGTERM)

    thread = threading.Thread(target=drive)
    thread.start()
    assert sup.run() == 0
    thread.join()
    assert [p.returncode for p in seen] == [-signal.SIGKILL, -signal.SIGTERM]
