"""Recording a manifest's rows as jobs and checks, then enqueueing them.

Rows are written in batches of a few hundred; keys already in the batch are
skipped, so running the same manifest again adds nothing (a batch this run
created has none to look up: that lookup was a sixth of a first run's database
time on PostgreSQL). Tasks are sent only after the transaction that created
their checks has committed.

What cannot be recorded is refused before anything is written (a batch name too
long for its column, a default that is not valid text); a failure part-way (the
database gone) raises :class:`IngestStopped`, which says what was recorded and
queued: rows are written in manifest order, so running the same ingest again
continues after them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from config.settings import get_settings
from models import Batch, Check, CheckStatus, Job, JobStatus
from models.db import session_scope
from tasks.fields import MAX_BATCH, problem, shown
from tasks.manifest import Defaults, JobSpec, ManifestError, read_source, row_key, validate

WRITE_BATCH = 500
# The first rows go out at once, so workers start while the rest is read; each write after is
# twice the last (50, 100, 200, 400, then 500 each), so the queue is fed again before the first
# rows are done rather than after 500 more are read.
FIRST_WRITE = 50


@dataclass
class IngestResult:
    batch: str
    accepted: int = 0
    rejected: int = 0
    existing: int = 0
    rejections: list[tuple[str, str]] = field(default_factory=list)  # (key, reason)
    requeued: int = 0  # checks of rows recorded earlier that no worker had started, sent again
    keys: set[str] = field(default_factory=set)  # keys recorded by this run
    to_enqueue: list[tuple[int, str]] = field(default_factory=list)  # (check id, service)
    last_row: int = 0  # the last manifest row whose write committed

    @property
    def recorded(self) -> int:
        """Jobs this run recorded."""
        return self.accepted + self.rejected


class IngestStopped(Exception):
    """Ingestion failed part-way (``__cause__`` says why); ``result`` holds what was recorded."""

    def __init__(self, result: IngestResult) -> None:
        self.result = result
        super().__init__(self.message())

    def message(self, queued: int | None = None) -> str:
        """What was recorded (and ``queued`` checks, when the caller knows), and that running
        the same ingest again continues: rows are written in manifest order."""
        r = self.result
        sent = f"; {queued} checks queued" if queued is not None else ""
        if r.recorded or r.existing:
            there = f", {r.existing} already there" if r.existing else ""
            done = (f"the rows up to row {r.last_row} are recorded in batch {r.batch} "
                    f"({r.accepted} accepted, {r.rejected} rejected{there}{sent})")
        else:
            done = f"no row was recorded in batch {r.batch}{sent}"
        return f"ingest stopped: {done}; running the same ingest again continues from there"


def ingest(
    source: Path,
    *,
    batch: str | None = None,
    defaults: Defaults | None = None,
    enqueue: Callable[[list[tuple[int, str]]], None] | None = None,
    progress: Callable[[int], None] | None = None,
    on_batch: Callable[[Session, Batch], None] | None = None,
) -> IngestResult:
    """Record every row of ``source`` in batch ``batch`` and enqueue the new checks.

    ``on_batch(session, batch)`` runs in the transaction that finds or makes the batch, before
    any row is written (``--notify`` sets the batch's notification URL there)."""
    folder = _is_folder(source)
    name = batch or (source.name if folder else source.stem) or source.resolve().name  # "."
    base = source if folder else source.parent
    defaults = defaults or Defaults()
    check_names(name, defaults)
    settings = get_settings()
    defaults.callbacks = bool(settings.callback_base_url)
    defaults.media_urls = bool(settings.media_base_url)
    result = IngestResult(name)
    rows = read_source(source)  # raises ManifestError before anything is written
    first = next(rows, None)
    with session_scope() as session:
        batch_id, created = _batch(session, name, shown(str(source), 10_000))
        if on_batch is not None:
            on_batch(session, session.get(Batch, batch_id))
    write = _stops_cleanly(functools.partial(_write, batch_id, base=base, defaults=defaults, result=result,
                                             enqueue=enqueue, look_up=not created), result)
    pending: list[tuple[int, dict]] = [first] if first else []
    size = FIRST_WRITE
    for number, row in rows:
        if len(pending) >= size:  # written once the next row is read: only the last write ends the batch
            write(pending, more_follow=True)
            if progress:
                progress(len(pending))
            pending, size = [], min(size * 2, WRITE_BATCH)
        pending.append((number, row))
    if pending:
        write(pending, more_follow=False)
        if progress:
            progress(len(pending))
    return result


def _is_folder(source: Path) -> bool:
    try:
        return source.is_dir()
    except (OSError, ValueError):  # a name too long to look up: read_source says so
        return False


def check_names(name: str, defaults: Defaults) -> None:
    """What every row would carry must be storable: refused whole, before anything is written."""
    if len(name) > MAX_BATCH:
        raise ManifestError(f"the batch name is {len(name)} characters; at most {MAX_BATCH} "
                            f"(give a shorter --batch): {shown(name, 60)}")
    if not name.strip():
        raise ManifestError("the batch name is empty")
    error = problem("the batch name", name) or (defaults.ref_text and problem("--ref-text", defaults.ref_text))
    if error:
        raise ManifestError(error)


def _stops_cleanly(write, result: IngestResult):
    """``write``, raising :class:`IngestStopped` (what is recorded so far) when it fails."""

    def guarded(rows: list[tuple[int, dict]], more_follow: bool) -> None:
        try:
            write(rows, more_follow=more_follow)
        except (Exception, KeyboardInterrupt) as exc:
            raise IngestStopped(result) from exc

    return guarded


def _batch(session: Session, name: str, source: str) -> tuple[int, bool]:
    """The batch's id, and whether this call created it."""
    row = session.scalar(select(Batch).where(Batch.name == name))
    if row is not None:
        return row.id, False
    row = Batch(name=name, source=source)
    session.add(row)
    session.flush()
    return row.id, True


def _write(batch_id, rows, *, base, defaults, result: IngestResult, enqueue, look_up: bool,
           more_follow: bool) -> None:
    specs = [validate(number, row, base, defaults) for number, row in rows]
    with session_scope() as session:
        known = _existing_keys(session, batch_id, [s.key for s in specs]) if look_up else set()
        unstarted = _unstarted_checks(session, batch_id, known) if known else []
        specs = _new_specs(specs, known, result)
        created = record(session, batch_id, specs)[1]
    rejections = [(spec.key, spec.error) for spec in specs if spec.error]  # counted once committed
    result.rejected += len(rejections)
    result.accepted += len(specs) - len(rejections)
    result.rejections += rejections
    result.last_row = rows[-1][0]
    result.to_enqueue += created
    result.requeued += len(unstarted)
    if enqueue and (created or unstarted):
        enqueue(created + unstarted, more_follow=more_follow)  # after the commit: a worker always finds its rows


def record(session: Session, batch_id: int, specs: list[JobSpec]) -> tuple[list[int], list[tuple[int, str]]]:
    """Insert ``specs`` as jobs after the batch's last, and the checks of the valid ones: the job
    ids and the (check id, service) pairs to enqueue once the transaction commits."""
    seq = session.scalar(select(func.coalesce(func.max(Job.seq), 0)).where(Job.batch_id == batch_id))
    job_ids = _insert_jobs(session, batch_id, seq, specs)
    pairs = []
    for job_id, spec in zip(job_ids, specs):
        if not spec.error:
            pairs += [(job_id, service) for service in spec.services]
    return job_ids, _insert_checks(session, pairs)


def _existing_keys(session: Session, batch_id: int, keys: list[str]) -> set[str]:
    return set(session.scalars(select(Job.key).where(Job.batch_id == batch_id, Job.key.in_(keys))))


def _unstarted_checks(session: Session, batch_id: int, keys: set[str]) -> list[tuple[int, str]]:
    """Checks of rows recorded by an earlier run that no worker has started: their message may
    never have been sent (the broker was down), so running ingest again sends them (a duplicate
    of a message still queued is harmless: the claim takes one)."""
    query = (select(Check.id, Check.service).join(Job, Job.id == Check.job_id)
             .where(Job.batch_id == batch_id, Job.key.in_(sorted(keys)), Check.status == CheckStatus.PENDING.value,
                    Check.lease_until.is_(None), Check.deliveries == 0).order_by(Check.id))
    return [(check_id, service) for check_id, service in session.execute(query)]


def _new_specs(specs: list[JobSpec], known: set[str], result: IngestResult) -> list[JobSpec]:
    """Drop rows already recorded; reject a repeated id within this run of the manifest."""
    fresh = []
    for spec in specs:
        if spec.key in result.keys:
            spec.key = row_key(spec.row)
            spec.error = f"duplicate id {spec.external_id!r} in this manifest"
        if spec.key in known:
            result.existing += 1
            continue
        result.keys.add(spec.key)
        fresh.append(spec)
    return fresh


def _insert_jobs(session: Session, batch_id: int, seq: int, specs: list[JobSpec]) -> list[int]:
    if not specs:
        return []
    rows = [
        {
            "batch_id": batch_id, "key": spec.key, "seq": seq + i, "external_id": spec.external_id,
            "audio": spec.audio, "stream": spec.stream, "services": spec.services,
            "options": spec.options, "error": spec.error,
            "status": JobStatus.REJECTED.value if spec.error else JobStatus.PENDING.value,
        }
        for i, spec in enumerate(specs, start=1)
    ]
    return list(session.scalars(insert(Job).returning(Job.id, sort_by_parameter_order=True), rows))


def _insert_checks(session: Session, pairs: list[tuple[int, str]]) -> list[tuple[int, str]]:
    if not pairs:
        return []
    rows = [{"job_id": job_id, "service": service} for job_id, service in pairs]
    ids = session.scalars(insert(Check).returning(Check.id, sort_by_parameter_order=True), rows)
    return [(check_id, service) for check_id, (_, service) in zip(ids, pairs)]
