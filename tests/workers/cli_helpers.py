"""Running the real ``voxqueue`` command, and rows in a real database to run it on."""

from __future__ import annotations

import os
import subprocess
from typing import Any

from models import Batch, Check, Job
from models.db import session_scope
from workers.processes import voxqueue_command

# What a terminal would act on rather than show: escapes, bell, carriage return, bidi overrides.
RAW_CONTROLS = ("\x1b", "\x07", "\r", "\x08", "\u202e", "\u2066")


def run(*args: str, env_extra: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    """The command's output as UTF-8 text exactly as written (no newline translation: a raw
    carriage return must show)."""
    env = dict(os.environ) | (env_extra or {})
    proc = subprocess.run(voxqueue_command(*args), capture_output=True, env=env, timeout=timeout,
                          stdin=subprocess.DEVNULL, check=False)
    return subprocess.CompletedProcess(proc.args, proc.returncode, proc.stdout.decode(), proc.stderr.decode())


def one_line_error(proc: subprocess.CompletedProcess) -> str:
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


def terminal() -> dict[str, str]:
    """What makes rich draw as on a terminal (bars, tables with styles), wide enough for one line."""
    return {"TTY_COMPATIBLE": "1", "COLUMNS": "200"}


def seed(url: str, batch: str, jobs: list[dict[str, Any]]) -> None:
    """A batch of jobs as the pipeline leaves them: each spec has ``key`` and optionally
    ``status``, ``error``, ``verdict``, ``audio`` and ``checks`` ({service: column values})."""
    with session_scope(url) as session:
        row = Batch(name=batch, source="seeded by the test")
        session.add(row)
        session.flush()
        for seq, spec in enumerate(jobs, start=1):
            checks = spec.get("checks", {})
            job = Job(batch_id=row.id, key=spec["key"], external_id=spec["key"], seq=seq,
                      audio=spec.get("audio", f"{seq}.wav"), services=list(checks),
                      status=spec.get("status", "done"), error=spec.get("error"), verdict=spec.get("verdict"))
            session.add(job)
            session.flush()
            for service, values in checks.items():
                session.add(Check(job_id=job.id, service=service, **values))
