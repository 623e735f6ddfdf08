"""Per-file cost of the SOE task run in one process: statements, commits, checkouts, HTTP and DB time."""

from __future__ import annotations

import re
import time
from pathlib import Path

from benchmarks.baseline import Env
from benchmarks.common import migrated_pg_database, run_child, say
from benchmarks.sampling import Timer


def cost_breakdown(env: Env, args, manifest: Path, files: int) -> dict:
    """The SOE task in one process, one file after another, with counters (child process)."""
    with migrated_pg_database(args.pg_url, "soe_profile") as db_url:
        run_env = env.base | {"VOXQUEUE_DATABASE_URL": db_url, "VOXQUEUE_BROKER_URL": args.redis_url}
        return run_child("soe-task", {"manifest": str(manifest), "files": files}, run_env, args.timeout)


def run_breakdown(env: Env, args, manifest: Path, files: int) -> None:
    import requests

    requests.post(env.url + "/_sandbox/reset", timeout=10)
    try:
        b = cost_breakdown(env, args, manifest, files)
    except RuntimeError as exc:
        say(f"SOE task in one process: FAILED: {exc}")
        return
    n = b["files"]
    say(f"SOE task in one process, one file at a time ({n} files, PostgreSQL, {b['chunks']} chunks):"
        f" {1000 * b['wall'] / n:.1f} ms/file wall = HTTP {1000 * b['http_s'] / n:.1f}"
        f" ({b['http_calls'] / n:.1f} calls) + database {1000 * b['db_s'] / n:.1f}"
        f" + other {1000 * (b['wall'] - b['http_s'] - b['db_s']) / n:.1f}; CPU {1000 * b['cpu'] / n:.1f} ms/file")
    say(f"  per file: {b['statements'] / n:.1f} SQL statements, {b['transactions'] / n:.1f} transactions"
        f" (commits), {b['checkouts'] / n:.1f} pool checkouts, {b['sessions'] / n:.1f} database sessions;"
        f" per chunk: {b['statements'] / b['chunks']:.2f} statements, {b['transactions'] / b['chunks']:.2f}"
        " transactions")
    say("  statements per file by kind: " + ", ".join(
        f"{k} {v / n:.1f}" for k, v in sorted(b["by_kind"].items(), key=lambda kv: -kv[1])))


def _ingest_first_rows(manifest: Path, files: int) -> list[int]:
    """Ingest the manifest's first ``files`` rows (nothing enqueued); their check ids."""
    from tasks.ingest import ingest

    small = manifest.with_name("breakdown.csv")
    small.write_text("\n".join(manifest.read_text().splitlines()[: files + 1]) + "\n")
    return [cid for cid, _ in ingest(small, batch="breakdown", enqueue=None).to_enqueue]


def _count_statements(engine, counts: dict[str, int], by_kind: dict[str, int]) -> None:
    from sqlalchemy import event

    @event.listens_for(engine, "before_cursor_execute")
    def _stmt(conn, cursor, statement, parameters, context, executemany):
        counts["statements"] += 1
        kind = statement.lstrip().split(None, 1)[0].upper()
        table = re.search(r"\b(?:FROM|INTO|UPDATE)\s+\"?(\w+)", statement, re.IGNORECASE)
        key = f"{kind} {table.group(1) if table else statement.strip()[:40]!r}"
        by_kind[key] = by_kind.get(key, 0) + 1

    @event.listens_for(engine, "commit")
    def _commit(conn):
        counts["transactions"] += 1

    @event.listens_for(engine.pool, "checkout")
    def _checkout(dbapi_conn, record, proxy):
        counts["checkouts"] += 1


def _time_http_and_sessions() -> tuple[Timer, Timer]:
    """Timers around every vendor HTTP call and every database session of the task."""
    import models.db as db_mod
    import tasks.common as common_mod
    import tasks.lifecycle as leases_mod
    import tasks.soe as soe_mod
    import vendors.http as http_mod

    http, dbt = Timer(), Timer()
    http_mod.post = http.wrap(http_mod.post)
    for name in ("session_scope", "transaction", "autocommit"):
        scope = dbt.wrap_cm(getattr(db_mod, name))
        for module in (soe_mod, common_mod, leases_mod):
            if hasattr(module, name):
                setattr(module, name, scope)
    return http, dbt


def child_soe_task(spec: dict) -> dict:
    """Ingest ``files`` rows, then run the real SOE task on each check in this process
    (``evaluate.apply``, no broker), counting SQL statements, commits, pool checkouts,
    database sessions, HTTP calls and the time spent in each."""
    from sqlalchemy import text

    import tasks.soe as soe_mod
    from config.settings import get_settings
    from models.db import engine_for

    checks = _ingest_first_rows(Path(spec["manifest"]), spec["files"])
    engine = engine_for(get_settings().database_url)
    counts, by_kind = {"statements": 0, "transactions": 0, "checkouts": 0}, {}
    _count_statements(engine, counts, by_kind)
    http, dbt = _time_http_and_sessions()

    cpu0, t0 = time.process_time(), time.perf_counter()
    for cid in checks:
        soe_mod.evaluate.apply(args=[[cid]], throw=True)
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    totals, kinds = dict(counts), dict(by_kind)  # the counting query below is not part of the work
    with engine.connect() as conn:
        chunks, done = conn.execute(text(
            "SELECT coalesce(sum(chunks_sent), 0), count(*) FILTER (WHERE status = 'done') FROM checks")).one()
    return {"files": len(checks), "done": int(done), "chunks": int(chunks), "wall": wall, "cpu": cpu,
            "http_s": http.seconds, "http_calls": http.calls, "db_s": dbt.seconds, "sessions": dbt.calls,
            "statements": totals["statements"], "transactions": totals["transactions"],
            "checkouts": totals["checkouts"], "by_kind": kinds}
