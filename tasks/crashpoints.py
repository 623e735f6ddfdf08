"""Worker-side fault injection for the reliability tests (the sandbox injects vendor faults).

``VOXQUEUE_CRASH_JOBS`` lists job ids (comma-separated) whose processing kills the
worker process outright, as a segfaulting codec would: a poison message.
Unset in production, it costs one environment lookup per task.
"""

from __future__ import annotations

import os
import signal


def hit(job_key: str) -> None:
    jobs = os.environ.get("VOXQUEUE_CRASH_JOBS")
    if jobs and job_key in jobs.split(","):
        os.kill(os.getpid(), signal.SIGKILL)
