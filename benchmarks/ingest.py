"""The ingestion scenario: a large manifest into SQLite and PostgreSQL, by the command and in-process."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from benchmarks.common import (
    cli,
    migrated,
    migrated_pg_database,
    pg_check,
    queue_length,
    redis_check,
    redis_flush,
    run_child,
    say,
)
from benchmarks.inputs import make_files, write_manifest
from benchmarks.sampling import Timer

MakeDb = Callable[[str], contextlib.AbstractContextManager[str]]


def ingest_scenario(args) -> None:
    say("== Ingestion scenario ==")
    work = Path(tempfile.mkdtemp(prefix="voxqueue-bench-ingest-"))
    try:
        audio = make_files(work / "audio", args.ingest_files, args.file_bytes)
        manifest = write_manifest(work / "audio" / "manifest.csv", audio, args.ingest_rows)
        say(f"manifest: {args.ingest_rows} rows over {len(audio)} WAVs, service soe")
        redis_problem, pg_problem = redis_check(args.redis_url), pg_check(args.pg_url)
        for problem in (redis_problem, pg_problem):
            if problem:
                say(f"note: {problem}")
        base = {**os.environ, "VOXQUEUE_VAR_DIR": str(work / "var"), "VOXQUEUE_BROKER_URL": args.redis_url,
                "VOXQUEUE_LOG_LEVEL": "WARNING"}
        for name, make_db in _backends(work, args.pg_url, pg_problem is None):
            for enqueue in ([False, True] if redis_problem is None else [False]):
                _in_process(args, name, make_db, base, manifest, enqueue)
            if redis_problem is None:
                _command(args, name, make_db, base, manifest)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _backends(work: Path, pg_url: str, with_pg: bool) -> list[tuple[str, MakeDb]]:
    @contextlib.contextmanager
    def sqlite_db(label: str) -> Iterator[str]:
        path = work / f"{label}.db"
        with migrated(f"sqlite:///{path}") as url:
            yield url
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)

    backends: list[tuple[str, MakeDb]] = [("SQLite", sqlite_db)]
    if with_pg:
        backends.append(("PostgreSQL", lambda label: migrated_pg_database(pg_url, label)))
    return backends


def _in_process(args, name: str, make_db: MakeDb, base: dict, manifest: Path, enqueue: bool) -> None:
    """tasks.ingest.ingest() in a child process, with timers around its stages."""
    with make_db(f"ingest_{'q' if enqueue else 'n'}") as url:
        if enqueue:
            redis_flush(args.redis_url)
        try:
            r = run_child("ingest", {"manifest": str(manifest), "enqueue": enqueue},
                          base | {"VOXQUEUE_DATABASE_URL": url}, args.timeout)
        except RuntimeError as exc:
            say(f"{name}: {exc}")
            return
        finally:
            if enqueue:
                redis_flush(args.redis_url)
    rows = r["rows"]
    say(f"{name}, tasks.ingest.ingest() {'with' if enqueue else 'without'} enqueueing"
        f" (in-process timers): {rows} rows in {r['wall']:.2f}s -> {rows / r['wall']:.0f} rows/s;"
        f" per row: parse+validate {1e6 * r['parse_s'] / rows:.0f} us, database"
        f" {1e6 * r['db_s'] / rows:.0f} us, enqueue {1e6 * r['enqueue_s'] / rows:.0f} us;"
        f" {r['accepted']} accepted, {r['tasks']} tasks sent")


def _command(args, name: str, make_db: MakeDb, base: dict, manifest: Path) -> None:
    """The real ``voxqueue ingest`` command, wall time, enqueueing to Redis."""
    with make_db("ingest_cli") as url:
        redis_flush(args.redis_url)
        t0 = time.perf_counter()
        proc = cli(base | {"VOXQUEUE_DATABASE_URL": url}, "ingest", str(manifest), "--batch", "cli")
        wall = time.perf_counter() - t0
        queued = queue_length(args.redis_url, "soe")
        redis_flush(args.redis_url)
    say(f"{name}, `voxqueue ingest` command (wall time, interpreter start and imports"
        f" included, enqueueing to Redis): {wall:.2f}s -> {args.ingest_rows / wall:.0f} rows/s;"
        f" {proc.stdout.strip()}; {queued} messages on the soe queue")


def child_ingest(spec: dict) -> dict:
    """tasks.ingest.ingest() with timers around parsing, database transactions and enqueueing."""
    import tasks.ingest as ingest_mod
    from tasks.dispatch import enqueue

    parse, db, enq = Timer(), Timer(), Timer()
    ingest_mod.read_source = parse.wrap_iter(ingest_mod.read_source)
    ingest_mod.validate = parse.wrap(ingest_mod.validate)
    ingest_mod.session_scope = db.wrap_cm(ingest_mod.session_scope)
    sent = 0

    def counting_enqueue(pairs, **options):  # more_follow: which write ends the batch
        nonlocal sent
        sent += enqueue(pairs, **options)

    t0 = time.perf_counter()
    result = ingest_mod.ingest(Path(spec["manifest"]), batch="bench",
                               enqueue=enq.wrap(counting_enqueue) if spec["enqueue"] else None)
    wall = time.perf_counter() - t0
    rows = result.accepted + result.rejected + result.existing
    return {"rows": rows, "accepted": result.accepted, "wall": wall, "parse_s": parse.seconds,
            "db_s": db.seconds, "enqueue_s": enq.seconds, "tasks": sent}
