"""``voxqueue report`` on a terminal: the first jobs as a table that fits the window, the counts,
and the commands that give all of it.

Ids and errors come from manifests and vendors: they reach rich as ``Text`` with their control
characters escaped (:func:`workers.console.visible`). Colour follows rich, which honours
``NO_COLOR``.
"""

from __future__ import annotations

import itertools
import shlex
import shutil
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from models.db import session_scope
from models.report import MODERATION, iter_jobs, job_counts, job_report
from workers.console import visible

STYLES = {
    "done": "green",
    "PASS": "green",
    "failed": "red",
    "REJECT": "red",
    "REVIEW": "yellow",
    "rejected": "magenta",
    "pending": "dim",
    "running": "cyan",
}
STATES = ("pending", "running", "done", "failed", "rejected")
VERDICTS = ("PASS", "REVIEW", "REJECT")
HEAD = 3  # lines besides the rows and the footer: the header, its rule, the shell's next prompt


def terminal_console() -> Console:
    size = shutil.get_terminal_size()
    return Console(width=size.columns, height=size.lines, highlight=False, soft_wrap=False)


def print_report_table(
    console: Console, *, batch=None, status=None, verdict=None, rows: int | None = None
) -> int:
    """Print the table of the first jobs that fit; return how many jobs there are in all."""
    with session_scope() as session:
        counts = job_counts(session, batch, status=status, verdict=verdict)
        total = sum(counts.values())
        hint_lines = [Text(line, style="dim") for line in hints(batch, status, verdict)]
        if rows is None:  # what fits the window, with the footer (the longer form of its counts)
            longest = max(_height(console, Text(counts_line(counts, total, n))) for n in (0, total))
            footer = longest + sum(_height(console, line) for line in hint_lines)
            rows = max(3, console.height - HEAD - footer)
        jobs = iter_jobs(session, batch, page=rows + 1, status=status, verdict=verdict)
        shown = [job_report(job) for job in itertools.islice(jobs, rows)]
    footer_lines = [Text(counts_line(counts, total, len(shown))), *hint_lines]
    if shown:
        console.print(table(shown))
    for line in footer_lines:
        console.print(line)
    return total


def _height(console: Console, text: Text) -> int:
    return len(text.wrap(console, console.width))


def table(rows: list[dict[str, Any]]) -> Table:
    services = [s for s in MODERATION if any(s in row["moderation"] for row in rows)]
    # expand: the error (ratio 1) takes the room the others leave, and never theirs
    grid = Table(
        box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False, padding=(0, 1, 0, 0), expand=True
    )
    grid.add_column("id", no_wrap=True, overflow="ellipsis", min_width=8, max_width=32)
    grid.add_column("status", no_wrap=True, min_width=8)
    grid.add_column("SOE", justify="right", no_wrap=True, min_width=5)
    for service in services:
        grid.add_column(service, no_wrap=True, min_width=6)
    grid.add_column("error", no_wrap=True, overflow="ellipsis", min_width=5, ratio=1)
    for row in rows:
        soe = row["soe"] or {}
        score = soe.get("suggested_score")
        cells = [
            Text(visible(str(row["id"])), no_wrap=True, overflow="ellipsis"),
            _styled(row["status"]),
            Text("" if score is None else f"{score:.1f}"),
        ]
        for service in services:
            check = row["moderation"].get(service)
            cells.append(_styled(None if check is None else check["verdict"] or check["status"]))
        cells.append(
            Text(
                visible(" ".join(_error(row).split())),
                style="red",
                no_wrap=True,
                overflow="ellipsis",
            )
        )
        grid.add_row(*cells)
    return grid


def _styled(value: str | None) -> Text:
    return Text(visible(value or "-"), style=STYLES.get(value or "", ""))


def _error(row: dict[str, Any]) -> str:
    if row["error"]:
        return row["error"]
    checks = [row["soe"] or {}, *row["moderation"].values()]
    return "; ".join(c["error"] for c in checks if c.get("error"))


def counts_line(counts: dict[tuple[str, str | None], int], total: int, shown: int) -> str:
    states = {s: sum(n for (st, _), n in counts.items() if st == s) for s in STATES}
    verdicts = {v: sum(n for (_, vd), n in counts.items() if vd == v) for v in VERDICTS}
    head = f"{total:,} jobs" if shown >= total else f"first {shown:,} of {total:,} jobs"
    parts = ", ".join(f"{n:,} {s}" for s, n in states.items() if n) or "none"
    judged = ", ".join(f"{n:,} {v}" for v, n in verdicts.items() if n)
    return f"{head}: {parts}" + (f"; verdicts {judged}" if judged else "")


def hints(batch: str | None, status: str | None, verdict: str | None) -> list[str]:
    """The commands that give every job: JSON or CSV, and the page with charts."""
    args = "voxqueue report"
    for option, value in (("--batch", batch), ("--status", status), ("--verdict", verdict)):
        if value is not None:
            args += f" {option} {shlex.quote(visible(value))}"
    return [
        f"all of it: {args} --format json (or csv)",
        f"with charts: {args} --format html --output report.html",
    ]
