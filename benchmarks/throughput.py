#!/usr/bin/env python
"""Throughput of voxqueue against the local vendor sandbox (``make bench``).

Scenarios (``--scenarios soe,ingest,moderation``; all by default):

soe (benchmarks/soe.py)
    The same synthetic WAV files scored two ways against ``voxqueue sandbox
    --latency-ms MS``:

    (a) baseline: the seed document's ``TransmitOralProcessWithInit`` loop as
        written (official ``tencentcloud`` SDK, chunk by chunk, file by file, one
        client per file, no keep-alive), on ``--baseline-files`` files and
        extrapolated to all of them when that is fewer;
    (b) voxqueue: ``voxqueue ingest`` into a fresh PostgreSQL database, Redis as
        broker, ``--workers`` worker processes (threads pool) at each
        ``--concurrency``; files/s, chunks/s, CPU per file (psutil, per process
        group), peak RSS per worker, p50/p95 ingest-to-result latency (from
        ``jobs.created_at`` and ``checks.finished_at``).

    Also: the sandbox on its own (many concurrent sessions straight at it) and a
    per-file cost breakdown of the SOE task run in one process (statements,
    commits, connection checkouts, HTTP and database time per file).

ingest (benchmarks/ingest.py)
    A ``--ingest-rows`` manifest (rows pointing at a few small WAVs, service soe)
    ingested into SQLite and into PostgreSQL: the real ``voxqueue ingest`` command
    (wall time, with enqueueing to Redis) and ``tasks.ingest.ingest()`` called
    in a child process with timers around its own stages (manifest parsing and
    validation, database transactions, enqueueing), without and with enqueueing.

moderation (benchmarks/moderation.py)
    ``--moderation-submissions`` Shumei checks (one request each) under a shared
    limit of ``--moderation-qps`` requests/s, through Redis, PostgreSQL and
    ``--workers`` workers: the achieved rate as a share of the limit (the
    sandbox's per-second counts, steady-state seconds only), the sandbox's peak
    in any sliding second, total time and submissions/s.

Plain numbers are printed; nothing is asserted. Everything runs on this machine:
the sandbox on 127.0.0.1, Redis at ``--redis-url`` (flushed before and after;
use a database number of its own) and PostgreSQL at ``--pg-url`` (a fresh
database is created for every run and dropped afterwards). Databases are
migrated in this process before anything is timed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if sys.path and Path(sys.path[0]).resolve() == ROOT / "benchmarks":
    sys.path[0] = str(ROOT)  # run as a script: its modules import as benchmarks.*, not as top-level names
elif str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.common import DEFAULT_PG, DEFAULT_REDIS, say
from benchmarks.sampling import background_load, cpu_check, load_note

SCENARIOS = ("soe", "ingest", "moderation")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--scenarios", default=",".join(SCENARIOS), help="comma-separated: " + ", ".join(SCENARIOS))
    _soe_options(p.add_argument_group("SOE scenario"))
    g = p.add_argument_group("ingestion scenario")
    g.add_argument("--ingest-rows", type=int, default=10000, help="manifest rows")
    g.add_argument("--ingest-files", type=int, default=5, help="distinct WAVs the rows point at")
    g = p.add_argument_group("moderation scenario (also --workers, --latency-ms)")
    g.add_argument("--moderation-submissions", type=int, default=1000, help="Shumei checks to submit")
    g.add_argument("--moderation-qps", type=float, default=200.0, help="VOXQUEUE_SHUMEI_QPS, the shared limit")
    g.add_argument("--moderation-concurrency", type=int, default=16, help="threads per worker")
    _service_options(p.add_argument_group("services"))
    p.add_argument("--child", nargs=2, metavar=("KIND", "SPEC"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.concurrency = [None if c.strip() == "default" else int(c)
                        for c in str(args.concurrency).split(",") if c.strip()]
    args.scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip() in ("live", "drain")]
    return args


def _soe_options(g) -> None:
    g.add_argument("--files", type=int, default=500, help="WAV files to score")
    g.add_argument("--file-bytes", type=int, default=28000, help="size of each WAV (44-byte header included)")
    g.add_argument("--chunk-bytes", type=int, default=10240, help="VOXQUEUE_SOE_CHUNK_BYTES")
    g.add_argument("--latency-ms", type=float, default=50.0, help="sandbox latency per vendor call")
    g.add_argument("--baseline-files", type=int, default=0,
                   help="files sent by the seed loop, extrapolated to --files when fewer; 0: all of them")
    g.add_argument("--workers", type=int, default=1, help="`voxqueue worker` commands")
    g.add_argument("--processes", type=int, default=None,
                   help="worker --processes of each command (default: the command's, one per core)")
    g.add_argument("--concurrency", default="default",
                   help="threads per worker process, one run each (default: the command's own)")
    g.add_argument("--modes", default="live",
                   help="live: workers up, then ingest; drain: ingest, then workers (one run each)")
    g.add_argument("--pool-threads", type=int, default=64,
                   help="threads of the bare official-SDK client pool (the ceiling); 0: skip")
    g.add_argument("--repeat", type=int, default=1,
                   help="runs of each mode and concurrency, interleaved, then their median and range"
                        " (a machine whose speed drifts needs several to compare two versions)")
    g.add_argument("--soe-qps", type=float, default=100000.0, help="VOXQUEUE_SOE_QPS")
    g.add_argument("--worker-loglevel", default="INFO", help="worker --loglevel and VOXQUEUE_LOG_LEVEL")
    g.add_argument("--sandbox-sessions", type=int, default=1000,
                   help="sessions sent straight at the sandbox to measure it alone; 0: skip")
    g.add_argument("--sandbox-concurrency", type=int, default=200, help="concurrent clients for that")
    g.add_argument("--breakdown-files", type=int, default=30,
                   help="files for the in-process per-file cost breakdown; 0: skip")
    g.add_argument("--py-spy", type=int, default=0, metavar="SECONDS",
                   help="record worker 0 of the first run with py-spy for SECONDS (pip install py-spy)")


def _service_options(g) -> None:
    g.add_argument("--redis-url", default=DEFAULT_REDIS, help="broker (FLUSHED before and after each run)")
    g.add_argument("--pg-url", default=DEFAULT_PG,
                   help="PostgreSQL to create (and drop) a fresh database per run in")
    g.add_argument("--timeout", type=float, default=300.0, help="give up on one run after this many seconds")
    g.add_argument("--stall-seconds", type=float, default=45.0,
                   help="give up on a run when no check finished for this long (the workers' logs are kept)")
    g.add_argument("--keep", action="store_true", help="keep the temporary folder (files, logs, profiles)")


def run_child(kind: str, spec: str) -> int:
    from benchmarks.breakdown import child_soe_task
    from benchmarks.ingest import child_ingest

    print(json.dumps({"ingest": child_ingest, "soe-task": child_soe_task}[kind](json.loads(spec))))
    return 0


def run_scenarios(args) -> None:
    from benchmarks.ingest import ingest_scenario
    from benchmarks.moderation import moderation_scenario
    from benchmarks.soe import soe_scenario

    chosen = {"soe": soe_scenario, "ingest": ingest_scenario, "moderation": moderation_scenario}
    for name in SCENARIOS:
        if name in args.scenarios:
            chosen[name](args)


def _cpu_note() -> str:
    best, median = cpu_check()
    return f"{best:.1f} ms, median {median:.1f} ms over a second (lower is faster; compare runs)"


def _interrupted(*_) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        return run_child(*args.child)
    os.chdir(ROOT)
    unknown = set(args.scenarios) - set(SCENARIOS)
    if unknown:
        print(f"unknown scenario(s): {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    load = background_load()
    say(f"voxqueue benchmark: {os.cpu_count()} CPUs, Python {sys.version.split()[0]},"
        f" redis {args.redis_url}, postgres {args.pg_url}; load before starting {100 * load:.0f}%;"
        f" CPU check {_cpu_note()}" + load_note(load))
    t0 = time.perf_counter()
    signal.signal(signal.SIGTERM, _interrupted)  # stop cleanly: workers stopped, databases dropped
    with contextlib.suppress(KeyboardInterrupt):
        run_scenarios(args)
    say(f"total benchmark time {time.perf_counter() - t0:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
