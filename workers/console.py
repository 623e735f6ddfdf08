"""Terminal output: progress bars on a terminal, plain lines when piped; logging set-up."""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from collections.abc import Callable, Iterator
from typing import ClassVar

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from config.settings import Settings
from models.stats import BatchCounts
from workers.logctx import ContextFilter, TextFormatter

err = Console(stderr=True)
out = Console()


def one_line(exc: BaseException) -> str:
    text = _database_error(exc) or " ".join(str(exc).split()) or type(exc).__name__
    return text[:500]


# What the drivers say when the schema is missing or older than the code (SQLite, psycopg).
_SCHEMA_BEHIND = ("no such table", "no such column", "UndefinedTable", "UndefinedColumn")


def _database_error(exc: BaseException) -> str | None:
    """The driver's own message, without SQLAlchemy's statement and parameters, and the fix
    when the database was never migrated (or is behind this version)."""
    from sqlalchemy.exc import DBAPIError

    if not isinstance(exc, DBAPIError) or exc.orig is None:
        return None
    lines = [line for line in str(exc.orig).splitlines() if line.strip()]  # psycopg adds LINE n: …
    text = " ".join(lines[0].split()) if lines else type(exc.orig).__name__
    if any(mark in text or mark == type(exc.orig).__name__ for mark in _SCHEMA_BEHIND):
        return f"the database is not migrated ({text}): run `voxqueue db upgrade`"
    return f"database: {text}"


class JsonFormatter(logging.Formatter):
    BASE: ClassVar[frozenset[str]] = frozenset(vars(logging.makeLogRecord({})))

    def format(self, record: logging.LogRecord) -> str:
        data = {"time": self.formatTime(record), "level": record.levelname, "logger": record.name,
                "message": record.getMessage()}
        data.update({k: v for k, v in vars(record).items() if k not in self.BASE and not k.startswith("_")})
        return json.dumps(data, default=str)


def setup_logging(settings: Settings) -> None:
    root = logging.getLogger()
    if root.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if settings.log_json else TextFormatter())
    handler.addFilter(ContextFilter())
    root.addHandler(handler)
    root.setLevel(settings.log_level.upper())
    for noisy in ("urllib3", "alembic.runtime.migration", "alembic.runtime.plugins", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@contextlib.contextmanager
def row_progress(label: str) -> Iterator[Callable[[int], None]]:
    """A counter of rows written: a live line on a terminal, nothing when piped."""
    if not err.is_terminal:
        yield lambda n: None
        return
    with Progress(TextColumn(label), TextColumn("{task.completed} rows"), TimeElapsedColumn(),
                  console=err, transient=True) as bar:
        task = bar.add_task(label, total=None)
        yield lambda n: bar.advance(task, n)


@contextlib.contextmanager
def batch_progress(batch: str) -> Iterator[Callable[[BatchCounts], None]]:
    """A bar of terminal jobs on a terminal; a line per change when piped."""
    if not err.is_terminal:
        last = [None]

        def show_plain(c: BatchCounts) -> None:
            line = summary_line(c)
            if line != last[0]:
                print(line, file=sys.stderr, flush=True)
                last[0] = line

        yield show_plain
        return
    columns = (TextColumn(f"batch {batch}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[detail]}"), TimeElapsedColumn())
    with Progress(*columns, console=err) as bar:
        task = bar.add_task(batch, total=None, detail="")

        def show_bar(c: BatchCounts) -> None:
            bar.update(task, total=c.total, completed=c.terminal, detail=_detail(c))

        yield show_bar


def _detail(c: BatchCounts) -> str:
    return ", ".join(f"{n} {status}" for status, n in sorted(c.jobs.items()))


def summary_line(c: BatchCounts) -> str:
    return f"batch {c.batch}: {c.terminal}/{c.total} terminal ({_detail(c)})"


STATES = ("pending", "running", "done", "failed", "rejected")


def print_status(batches: list[BatchCounts]) -> None:
    if not batches:
        out.print("no batches yet")
        return
    for c in batches:
        table = Table(title=f"batch {c.batch}", title_justify="left")
        table.add_column("")
        for state in STATES:
            table.add_column(state, justify="right")
        table.add_column("oldest pending", justify="right")
        table.add_row("jobs", *[str(c.jobs.get(s, 0)) for s in STATES], "")
        for service, states in sorted(c.checks.items()):
            age = c.oldest_pending.get(service)
            table.add_row(service, *[str(states.get(s, 0)) if s != "rejected" else "-" for s in STATES],
                          f"{age.total_seconds():.0f}s" if age else "")
        out.print(table)


def parse_faults(text: str) -> list:
    from sandbox.core import FaultRule

    try:
        return [FaultRule(**rule) for rule in json.loads(text)]
    except (ValueError, TypeError) as exc:
        raise ValueError(f"--faults must be a JSON list of fault rules: {exc}") from exc
