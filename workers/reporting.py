"""Writing the report as JSON (one array), CSV (one flattened row per job) or an HTML page.

Nothing is written before the first job is read, so a database that is down leaves stdout
empty; a file is replaced only by a complete report.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import itertools
import json
import os
import stat
import tempfile
from pathlib import Path
from typing import IO

from models.db import session_scope
from models.report import (
    MODERATION,
    failure_reasons,
    flatten,
    iter_jobs,
    job_report,
    result_seconds,
)
from workers.report_html import Summary, write_html

TEMPLATE = {
    "id": None, "batch": None, "audio": None, "status": None, "error": None, "verdict": None,
    "soe": dict.fromkeys(["status", "session_id", "suggested_score", "pron_accuracy",
                          "pron_fluency", "pron_completion", "chunks", "error"]),
    "moderation": {s: dict.fromkeys(["status", "vendor_task_id", "verdict", "labels", "text", "error"])
                   for s in MODERATION},
}
CSV_COLUMNS = list(flatten(TEMPLATE))
# What makes a spreadsheet take a cell as a formula (OWASP, "CSV Injection").
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def write_report(out: IO[str], fmt: str, *, batch=None, status=None, verdict=None) -> int:
    """Stream the report to ``out``; return the number of jobs written."""
    with session_scope() as session:
        jobs = _started(iter_jobs(session, batch, status=status, verdict=verdict))
        if fmt == "html":
            return _html(out, jobs, batch)
        rows = (job_report(job) for job in jobs)
        return _csv(out, rows) if fmt == "csv" else _json(out, rows)


def write_report_file(path: Path, fmt: str, **filters) -> int:
    """Write the report to a temporary file beside ``path`` and rename it over ``path`` once
    complete: a failure part-way (the database, a full disk, Ctrl-C) leaves ``path`` as it was.
    A symlink's target is replaced; a device or FIFO (``/dev/stdout``) is written directly."""
    target = Path(os.path.realpath(path))
    if target.exists() and not target.is_file():
        if target.is_dir():
            raise IsADirectoryError(errno.EISDIR, "is a directory", str(path))
        with target.open("w", encoding="utf-8", newline="") as out:
            return write_report(out, fmt, **filters)
    fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as out:
            count = write_report(out, fmt, **filters)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, _mode(target))
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    return count


def _mode(target: Path) -> int:
    """The file's own mode, or what a new file gets under the umask (mkstemp's is 0600)."""
    with contextlib.suppress(FileNotFoundError):
        return stat.S_IMODE(target.stat().st_mode)
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _started(rows):
    """``rows`` with the first already read: a query that fails does so before any output."""
    rows = iter(rows)
    return itertools.chain(list(itertools.islice(rows, 1)), rows)


def _html(out: IO[str], jobs, batch: str | None) -> int:
    summary = Summary()
    for job in jobs:
        summary.add(job_report(job), result_seconds(job), failure_reasons(job))
    write_html(out, summary, batch=batch)
    return summary.total


def _json(out: IO[str], rows) -> int:
    count = 0
    out.write("[")
    for row in rows:
        out.write((",\n" if count else "\n") + json.dumps(row, ensure_ascii=False))
        count += 1
    out.write("\n]\n" if count else "]\n")
    return count


def _csv(out: IO[str], rows) -> int:
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    count = 0
    for row in rows:
        writer.writerow({name: _cell(value) for name, value in flatten(row).items()})
        count += 1
    return count


def _cell(value):
    """A text cell that a spreadsheet would run as a formula gets a leading ``'``, as OWASP
    advises; numbers stay numbers (a score of -1.0 is not a formula)."""
    return "'" + value if isinstance(value, str) and value.startswith(FORMULA_START) else value
