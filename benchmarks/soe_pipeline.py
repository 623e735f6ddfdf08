"""One voxqueue SOE run through real processes: a fresh PostgreSQL database, Redis, workers, ingest."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.baseline import Env
from benchmarks.common import (
    ROOT,
    Worker,
    cli,
    log_errors,
    migrated_pg_database,
    pg_xact_stats,
    query,
    redis_flush,
    workers_running,
)
from benchmarks.sampling import ProcessSampler, background_load, run_groups, tree
from workers.processes import voxqueue_command

BATCH_CHECKS = " FROM checks c JOIN jobs j ON j.id = c.job_id JOIN batches b ON b.id = j.batch_id WHERE b.name = :b"


def db_progress(url: str, batch: str) -> tuple[int, int]:
    """(terminal checks, all checks) of the batch."""
    ((terminal, total),) = query(url, "SELECT count(*) FILTER (WHERE c.status IN ('done','failed')), count(*)"
                                  + BATCH_CHECKS, b=batch)
    return int(terminal), int(total)


def db_unfinished(url: str, batch: str, limit: int = 10) -> list[tuple]:
    """(check id, status, chunks_sent, deliveries, attempts, lease_until, error_reason) of unfinished checks."""
    return query(url, "SELECT c.id, c.status, c.chunks_sent, c.deliveries, c.attempts, c.lease_until,"
                  " c.error_reason" + BATCH_CHECKS + " AND c.status NOT IN ('done', 'failed') ORDER BY c.id LIMIT :n",
                  b=batch, n=limit)


def db_outcome(url: str, batch: str) -> dict:
    rows = query(url, "SELECT c.status, c.chunks_sent, j.created_at, c.finished_at" + BATCH_CHECKS, b=batch)
    done = [r for r in rows if r[0] == "done"]
    finished = [r[3] for r in done if r[3]]
    return {
        "checks": len(rows), "done": len(done), "failed": sum(r[0] == "failed" for r in rows),
        "chunks": sum(r[1] or 0 for r in done),
        "latencies": [(r[3] - r[2]).total_seconds() for r in done if r[3] and r[2]],
        "results_span": (max(finished) - min(finished)).total_seconds() if len(finished) > 1 else None,
        "created": [r[2] for r in rows if r[2]], "finished": finished,
    }


def wait_terminal(db_url: str, batch: str, args, workers: list[Worker], deadline: float) -> None:
    """Until every check of the batch is terminal; RuntimeError on a timeout or a stall."""
    last_change, last_terminal = time.monotonic(), -1
    while True:
        terminal, total = db_progress(db_url, batch)
        if total and terminal >= total:
            return
        now = time.monotonic()
        if terminal != last_terminal:
            last_change, last_terminal = now, terminal
        stalled = now - last_change > args.stall_seconds
        if now > deadline or stalled:
            why = f"no progress for {args.stall_seconds:g}s" if stalled else f"timed out after {args.timeout:g}s"
            raise RuntimeError(
                f"{why}: {terminal}/{total} checks terminal; first unfinished (id, status, chunks_sent,"
                f" deliveries, attempts, lease_until, error_reason): {db_unfinished(db_url, batch, 3)};"
                f" worker errors: {log_errors([log for _, log in workers])}; logs in {workers[0][1].parent}")
        time.sleep(0.1)


def _start_py_spy(args, pid: int, out: Path, logs: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(pid),
         "--duration", str(max(1, round(args.py_spy))), "--rate", "250", "--gil", "--format", "raw",
         "--output", str(out)],
        stdout=subprocess.DEVNULL, stderr=(logs / "py-spy.log").open("ab"))


def _timed_ingest(run_env: dict[str, str], ingest_args: tuple[str, ...]) -> float:
    t = time.monotonic()
    cli(run_env, *ingest_args)
    return time.monotonic() - t


def _measure(env: Env, args, run: dict, workers: list[Worker], sandbox_pid: int,
             profile_out: Path | None) -> tuple[ProcessSampler, float, float | None]:
    """From the workers being ready until every check is terminal, sampling every process:
    (sampler, wall seconds, seconds the live ingest command took)."""
    harness, spy, ingest_wall = [os.getpid()], None, None  # this process, and py-spy once started
    with ProcessSampler(run_groups(workers, sandbox_pid, run["dbname"], harness)) as sampler:
        t0, run["t0_utc"] = time.monotonic(), dt.datetime.now(dt.UTC)
        if run["live"]:
            ingest = _start_ingest(voxqueue_command(*run["ingest_args"]), run["env"])
            sampler.groups["ingest"] = tree(ingest.pid)
        if profile_out is not None:
            pids = tree(workers[0][0].pid)()  # the command, then its worker processes
            spy = _start_py_spy(args, pids[1] if len(pids) > 1 else pids[0], profile_out, env.logs)
            harness.append(spy.pid)
        if run["live"]:
            _finish_ingest(ingest, args.timeout)
            ingest_wall = time.monotonic() - t0
        wait_terminal(run["db_url"], run["batch"], args, workers, t0 + args.timeout)
        wall = time.monotonic() - t0
    if spy is not None:
        spy.wait(timeout=args.py_spy + 30)
    return sampler, wall, ingest_wall


def _start_ingest(cmd: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL)


def _finish_ingest(ingest: subprocess.Popen, timeout: float) -> None:
    _, err = ingest.communicate(timeout=timeout)
    if ingest.returncode != 0:
        raise RuntimeError(f"ingest failed: {err[-2000:]}")


def run_pipeline(env: Env, args, manifest: Path, files: int, concurrency: int, batch: str,
                 sandbox_pid: int, profile_out: Path | None, mode: str = "live") -> dict:
    """One voxqueue run on a fresh database and a flushed Redis.

    ``live``: workers up first, then ``voxqueue ingest`` (as in production: the
    producer competes with the workers for the CPU). ``drain``: everything is
    ingested and enqueued first, then the workers start on a full queue (the
    workers' own ceiling). Measured until the last check is terminal.
    """
    with contextlib.ExitStack() as stack:
        db_url = stack.enter_context(migrated_pg_database(args.pg_url, f"soe_{mode}_c{concurrency}"))
        redis_flush(args.redis_url)
        stack.callback(redis_flush, args.redis_url)
        run = {"db_url": db_url, "dbname": db_url.rsplit("/", 1)[1], "batch": batch, "live": mode == "live",
               "env": env.base | {"VOXQUEUE_DATABASE_URL": db_url, "VOXQUEUE_BROKER_URL": args.redis_url},
               "ingest_args": ("ingest", str(manifest), "--batch", batch)}
        idle_load = background_load()
        drain_wall = None if run["live"] else _timed_ingest(run["env"], run["ingest_args"])
        workers, _ = stack.enter_context(workers_running(
            args.workers, concurrency, run["env"], env.logs, f"{mode}-c{concurrency}",
            args.worker_loglevel, args.processes))
        xact0 = pg_xact_stats(args.pg_url, run["dbname"])
        sampler, wall, live_wall = _measure(env, args, run, workers, sandbox_pid, profile_out)
        xact1 = pg_xact_stats(args.pg_url, run["dbname"])
        outcome = db_outcome(db_url, batch)
    return {"concurrency": concurrency, "mode": mode, "wall": wall, "ingest_wall": live_wall or drain_wall,
            "t0_utc": run["t0_utc"],
            "outcome": outcome, "xact": {k: xact1[k] - xact0[k] for k in xact0},
            "sampler": sampler, "workers": len(workers), "files": files, "idle_load": idle_load}
