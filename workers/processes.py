"""Starting and stopping voxqueue processes (used by the demo and the end-to-end tests)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.error import URLError
from urllib.request import urlopen


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def voxqueue_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "workers.cli", *args]


@contextlib.contextmanager
def running(args: list[str], env: dict[str, str], log: Path, *, stop_signal=signal.SIGTERM,
            grace: float = 15.0) -> Iterator[subprocess.Popen]:
    """Run ``args`` with output to ``log``; stop it (then kill it) on exit."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            yield proc
        finally:
            stop(proc, stop_signal, grace)


def stop(proc: subprocess.Popen, sig=signal.SIGTERM, grace: float = 15.0) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


def wait_http(url: str, proc: subprocess.Popen | None = None, timeout: float = 20.0) -> None:
    """Wait until ``url`` answers 200 (or the process died, or time ran out)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{' '.join(proc.args[-3:])} exited with status {proc.returncode}")
        # urllib, not `requests` (only the test and bench extras install it); an HTTP error raises
        with contextlib.suppress(URLError, OSError, ValueError), urlopen(url, timeout=1) as answer:
            if answer.status == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout:g}s")
