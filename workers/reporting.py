"""Writing the report as JSON (one array) or CSV (one flattened row per job)."""

from __future__ import annotations

import csv
import json
from typing import IO

from models.db import session_scope
from models.report import MODERATION, flatten, iter_jobs, job_report

TEMPLATE = {
    "id": None, "batch": None, "audio": None, "status": None, "error": None, "verdict": None,
    "soe": dict.fromkeys(["status", "session_id", "suggested_score", "pron_accuracy",
                          "pron_fluency", "pron_completion", "chunks", "error"]),
    "moderation": {s: dict.fromkeys(["status", "vendor_task_id", "verdict", "labels", "text", "error"])
                   for s in MODERATION},
}
CSV_COLUMNS = list(flatten(TEMPLATE))


def write_report(out: IO[str], fmt: str, *, batch=None, status=None, verdict=None) -> int:
    """Stream the report to ``out``; return the number of jobs written."""
    with session_scope() as session:
        rows = (job_report(job) for job in iter_jobs(session, batch)
                if (status is None or job.status == status) and (verdict is None or job.verdict == verdict))
        return _csv(out, rows) if fmt == "csv" else _json(out, rows)


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
        writer.writerow(flatten(row))
        count += 1
    return count
