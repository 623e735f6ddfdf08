"""The moderation scenario: submissions to one vendor (Shumei) under a shared rate limit.

Shumei takes one request per check, so submissions are requests. Every check is
ingested first (not timed); then ``--workers`` worker processes (threads pool)
drain the queue through Redis and PostgreSQL, each submission taking a slot of
the limit shared in Redis (``VOXQUEUE_SHUMEI_QPS``; every other vendor's limit
set far out of the way). Results play no part: the sandbox holds them back for an
hour, nothing polls (no beat) and nothing calls back (no callback URL). The
sandbox's own counters are the measurement: requests per epoch second and the
most requests in any sliding one-second window.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import tempfile
import time
from pathlib import Path

from benchmarks.common import (
    cli,
    log_errors,
    migrated_pg_database,
    query,
    redis_flush,
    say,
    services_problem,
    workers_running,
)
from benchmarks.inputs import make_files, write_manifest
from benchmarks.moderation_report import SERVICE, report_moderation
from benchmarks.sampling import ProcessSampler, background_load, run_groups
from sandbox.server import favour
from workers.processes import free_port, running, voxqueue_command, wait_http

OTHER_QPS = 100000.0  # every other vendor's shared limit: out of the way
DISTINCT_FILES = 10
FILE_BYTES = 6444  # 0.2 s of 16 kHz mono 16-bit audio: sent RAW (base64) in the request
BATCH = "moderation"


def moderation_scenario(args) -> None:
    say("== Moderation scenario ==")
    problem = services_problem(args)
    if problem:
        say(f"skipped: {problem}")
        return
    work = Path(tempfile.mkdtemp(prefix="voxqueue-bench-moderation-"))
    try:
        _moderation(args, work)
    finally:
        if args.keep:
            say(f"kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def moderation_env(args, work: Path, sandbox_url: str) -> dict[str, str]:
    """Generated credentials, endpoints at the sandbox, the shared limits, no callbacks."""
    env = {name: value for name, value in os.environ.items() if name != "VOXQUEUE_CALLBACK_BASE_URL"}
    env |= {f"VOXQUEUE_{s.upper()}_QPS": str(OTHER_QPS) for s in ("soe", "gme", "tupu", "asr")}
    return env | {
        "VOXQUEUE_SHUMEI_ACCESS_KEY": secrets.token_hex(12),
        "VOXQUEUE_SHUMEI_ENDPOINT": sandbox_url,
        "VOXQUEUE_SHUMEI_QPS": str(args.moderation_qps),
        "VOXQUEUE_MEDIA_BASE_URL": sandbox_url + "/media",
        "VOXQUEUE_SANDBOX_MEDIA_DIR": str(work / "media"),
        "VOXQUEUE_SANDBOX_RESULT_DELAY_S": "3600",
        "VOXQUEUE_VAR_DIR": str(work / "var"),
        "VOXQUEUE_LOG_LEVEL": args.worker_loglevel,
        "PYTHONUNBUFFERED": "1",
    }


def _moderation(args, work: Path) -> None:
    files = make_files(work / "media", DISTINCT_FILES, FILE_BYTES)
    manifest = write_manifest(work / "media" / "clips.csv", files, args.moderation_submissions, SERVICE)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = moderation_env(args, work, url)
    logs = work / "logs"
    cmd = voxqueue_command("sandbox", "--port", str(port), "--latency-ms", str(args.latency_ms))
    with running(cmd, env, logs / "sandbox.log") as sandbox:
        wait_http(url + "/_sandbox/health", sandbox)
        favoured = favour(sandbox.pid)
        try:
            r = run_submissions(args, env, url, manifest, sandbox.pid, logs)
        except RuntimeError as exc:
            say(f"moderation: FAILED: {exc}")
            args.keep = True  # keep the logs
            return
    report_moderation(r | {"favoured": favoured, "file_bytes": files[0].stat().st_size}, args)


def _stats(url: str) -> dict:
    import requests

    return requests.get(url + "/_sandbox/stats", timeout=10).json()


def submitted(stats: dict) -> int:
    return int(stats["requests"].get(f"{SERVICE}.submit", 0))


def run_submissions(args, env: dict[str, str], url: str, manifest: Path, sandbox_pid: int, logs: Path) -> dict:
    """Ingest every row, then start the workers and time them until the sandbox counted them all."""
    import requests

    n = args.moderation_submissions
    with contextlib.ExitStack() as stack:
        db_url = stack.enter_context(migrated_pg_database(args.pg_url, "moderation"))
        redis_flush(args.redis_url)
        stack.callback(redis_flush, args.redis_url)
        run_env = env | {"VOXQUEUE_DATABASE_URL": db_url, "VOXQUEUE_BROKER_URL": args.redis_url}
        t = time.monotonic()
        cli(run_env, "ingest", str(manifest), "--batch", BATCH)
        ingest_wall = time.monotonic() - t
        requests.post(url + "/_sandbox/reset", timeout=10)
        idle_load = background_load()
        workers, first_ready = stack.enter_context(workers_running(
            args.workers, args.moderation_concurrency, run_env, logs, "moderation",
            args.worker_loglevel, args.processes))
        harness = [os.getpid()]
        with ProcessSampler(run_groups(workers, sandbox_pid, db_url.rsplit("/", 1)[1], harness)) as sampler:
            before = submitted(_stats(url))  # sent before sampling began
            done_at = wait_submitted(url, n, args, workers, first_ready)
        stats = _stats(url)
        recorded = wait_recorded(db_url, n)
    return {"n": n, "wall": done_at - first_ready, "ingest_wall": ingest_wall, "stats": stats,
            "recorded": recorded, "sampler": sampler, "sampled": submitted(stats) - before,
            "idle_load": idle_load, "workers": len(workers)}


def wait_submitted(url: str, n: int, args, workers, t0: float) -> float:
    """Poll the sandbox (every 0.1 s) until it counted ``n`` submissions; when it had (monotonic)."""
    deadline, last_change, last = t0 + args.timeout, time.monotonic(), -1
    while True:
        count, now = submitted(_stats(url)), time.monotonic()
        if count >= n:
            return now
        if count != last:
            last_change, last = now, count
        stalled = now - last_change > args.stall_seconds
        if stalled or now > deadline:
            why = f"no progress for {args.stall_seconds:g}s" if stalled else f"timed out after {args.timeout:g}s"
            raise RuntimeError(f"{why}: the sandbox counted {count}/{n} submissions; worker errors:"
                               f" {log_errors([log for _, log in workers])}; logs in {workers[0][1].parent}")
        time.sleep(0.1)


def wait_recorded(db_url: str, n: int, timeout: float = 30) -> tuple[int, int]:
    """(checks with a vendor task id, failed checks), once they account for all ``n`` (or time ran out)."""
    deadline = time.monotonic() + timeout
    while True:
        ((with_id, failed),) = query(db_url, "SELECT count(*) FILTER (WHERE vendor_task_id IS NOT NULL),"
                                     " count(*) FILTER (WHERE status = 'failed') FROM checks")
        if with_id + failed >= n or time.monotonic() > deadline:
            return int(with_id), int(failed)
        time.sleep(0.1)
