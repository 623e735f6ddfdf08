"""Running ``voxqueue`` on a pseudo-terminal of a given size, as a person at a terminal would."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import select
import struct
import subprocess
import termios
import time
from dataclasses import dataclass

from workers.processes import voxqueue_command

# CSI sequences (colours, cursor moves) and OSC sequences (titles, links).
ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)")


@dataclass
class Screen:
    returncode: int
    raw: str  # what the terminal received, escapes included

    @property
    def text(self) -> str:
        return ANSI.sub("", self.raw).replace("\r\n", "\n")

    @property
    def lines(self) -> list[str]:
        return self.text.rstrip("\n").split("\n")


def run_on_terminal(
    *args: str, env: dict[str, str], columns: int = 100, lines: int = 24, timeout: float = 60
) -> Screen:
    """Run the command with stdin, stdout and stderr on a new pseudo-terminal of that size."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", lines, columns, 0, 0))
    env = {k: v for k, v in env.items() if k not in ("COLUMNS", "LINES", "TTY_COMPATIBLE")}
    env.setdefault("TERM", "xterm-256color")
    proc = subprocess.Popen(
        voxqueue_command(*args),
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        start_new_session=True,
    )
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                data = os.read(master, 65536)
            except OSError as exc:  # EIO: every copy of the terminal's other end is closed
                if exc.errno != errno.EIO:
                    raise
                break
            if not data:
                break
            chunks.append(data)
        else:
            raise TimeoutError(f"{' '.join(args)} still running after {timeout} s")
    finally:
        os.close(master)
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, 9)
        proc.wait(timeout=10)
    return Screen(proc.returncode, b"".join(chunks).decode("utf-8", "replace"))
