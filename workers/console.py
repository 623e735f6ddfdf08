"""Terminal output: progress bars on a terminal, plain lines when piped; logging set-up.

Names and reasons come from users and manifests. They reach rich as ``Text`` (never markup,
emoji codes or format strings), and their control characters are shown escaped
(:func:`visible`), here and in every error line.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import unicodedata
from collections.abc import Callable, Iterator
from typing import ClassVar

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from config.settings import Settings
from models.stats import BatchCounts
from tasks.logctx import ContextFilter, TextFormatter

err = Console(stderr=True)
out = Console()


# Characters a terminal acts on rather than shows: C0/C1 controls (escape sequences, bell,
# carriage return), line separators, lone surrogates, and the bidirectional overrides that make
# text read in another order than it is.
_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_HIDDEN = frozenset({"Cc", "Cs", "Zl", "Zp"})


def visible(text: str) -> str:
    """``text`` with every such character written as its escape (``\\x1b``, ``\\u202e``), as
    ``repr`` would; everything else (any script, emoji) as it is."""
    if text.isprintable():
        return text
    return "".join(repr(ch)[1:-1] if ch in _BIDI or unicodedata.category(ch) in _HIDDEN else ch
                   for ch in text)


def one_line(exc: BaseException) -> str:
    text = _database_error(exc) or " ".join(str(exc).split()) or type(exc).__name__
    return visible(text[:500])


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
    with Progress(TextColumn("{task.description}", markup=False), TextColumn("{task.completed} rows"),
                  TimeElapsedColumn(), console=err, transient=True) as bar:
        task = bar.add_task(visible(label), total=None)
        yield lambda n: bar.advance(task, n)


@contextlib.contextmanager
def batch_progress(batch: str) -> Iterator[Callable[..., None]]:
    """A bar of terminal jobs on a terminal; a line per change when piped. ``show(counts, held)``:
    ``held`` the lines of the shared limits holding work back (:func:`tasks.ratelimit.held_lines`),
    beside the bar, or printed when piped as each limit starts holding work back."""
    if not err.is_terminal:
        last, held_before = [None], set()

        def show_plain(c: BatchCounts, held: list[str] | tuple = ()) -> None:
            line = summary_line(c)
            if line != last[0]:
                print(line, file=sys.stderr, flush=True)
                last[0] = line
            services = {h.split(":", 1)[0] for h in held}
            for h in held:
                if h.split(":", 1)[0] not in held_before:
                    print(visible(h), file=sys.stderr, flush=True)
            held_before.clear()
            held_before.update(services)

        yield show_plain
        return
    columns = (TextColumn("batch {task.description}", markup=False), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[detail]}", markup=False), TimeElapsedColumn())
    with Progress(*columns, console=err) as bar:
        task = bar.add_task(visible(batch), total=None, detail="")

        def show_bar(c: BatchCounts, held: list[str] | tuple = ()) -> None:
            detail = "; ".join([_detail(c), *held])
            bar.update(task, total=c.total, completed=c.terminal, detail=visible(detail))

        yield show_bar


def _detail(c: BatchCounts) -> str:
    return ", ".join(f"{n} {status}" for status, n in sorted(c.jobs.items()))


def summary_line(c: BatchCounts) -> str:
    return visible(f"batch {c.batch}: {c.terminal}/{c.total} terminal ({_detail(c)})")


STATES = ("pending", "running", "done", "failed", "rejected")


def print_status(batches: list[BatchCounts]) -> None:
    if not batches:
        out.print("no batches yet")
        return
    for c in batches:
        table = Table(title=Text(visible(f"batch {c.batch}")), title_justify="left")
        table.add_column("")
        for state in STATES:
            table.add_column(state, justify="right")
        table.add_column("oldest pending", justify="right")
        table.add_row("jobs", *[str(c.jobs.get(s, 0)) for s in STATES], "")
        for service, states in sorted(c.checks.items()):
            age = c.oldest_pending.get(service)
            table.add_row(Text(visible(service)), *[str(states.get(s, 0)) if s != "rejected" else "-" for s in STATES],
                          f"{age.total_seconds():.0f}s" if age else "")
        out.print(table)


def parse_faults(text: str) -> list:
    """Fault rules from JSON (``--faults``, ``VOXQUEUE_SANDBOX_FAULTS``), or ValueError."""
    from sandbox.core import FaultRule

    try:
        rules = json.loads(text)
        if not isinstance(rules, list) or not all(isinstance(rule, dict) for rule in rules):
            raise ValueError("not a list of objects")
        return [FaultRule.from_dict(rule) for rule in rules]
    except (ValueError, TypeError, RecursionError) as exc:
        raise ValueError(f"must be a JSON list of fault rules ({one_line(exc)})") from None
