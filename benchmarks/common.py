"""Plumbing the scenarios share: output, Redis, PostgreSQL, databases, commands and workers."""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from workers.processes import running, stop, voxqueue_command

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "throughput.py"
DEFAULT_REDIS = os.environ.get("VOXQUEUE_TEST_REDIS_URL", "redis://127.0.0.1:6379/14")
DEFAULT_PG = os.environ.get("VOXQUEUE_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


# --------------------------------------------------------------------------- output
def say(text: str = "") -> None:
    print(text, flush=True)


def num(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = math.floor(k), math.ceil(k)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


# --------------------------------------------------------------------------- Redis
def redis_flush(url: str) -> None:
    import redis

    redis.Redis.from_url(url).flushdb()


def redis_check(url: str) -> str | None:
    import redis

    try:
        redis.Redis.from_url(url, socket_timeout=2).ping()
    except Exception as exc:  # noqa: BLE001 - reported, the scenario is skipped
        return f"Redis at {url} unreachable: {type(exc).__name__}: {exc}"
    return None


def queue_length(url: str, queue: str) -> int:
    import redis

    return int(redis.Redis.from_url(url).llen(queue))


# --------------------------------------------------------------------------- PostgreSQL and databases
def _pg_admin(url: str):
    import psycopg
    from sqlalchemy.engine import make_url

    u = make_url(url)
    return psycopg.connect(host=u.host or "127.0.0.1", port=u.port or 5432, user=u.username or "postgres",
                           password=u.password, dbname=u.database or "postgres", autocommit=True)


def pg_check(url: str) -> str | None:
    try:
        _pg_admin(url).close()
    except Exception as exc:  # noqa: BLE001
        return f"PostgreSQL at {url} unreachable: {type(exc).__name__}: {exc}"
    return None


def services_problem(args) -> str | None:
    """Why Redis or PostgreSQL cannot be used, or None."""
    return redis_check(args.redis_url) or pg_check(args.pg_url)


@contextlib.contextmanager
def fresh_pg_database(admin_url: str, label: str) -> Iterator[str]:
    """A new, empty PostgreSQL database; yields its SQLAlchemy URL; dropped afterwards."""
    from sqlalchemy.engine import make_url

    name = f"voxqueue_bench_{label}_{os.getpid()}_{secrets.token_hex(3)}"
    with _pg_admin(admin_url) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with _pg_admin(admin_url) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def migrated(url: str) -> Iterator[str]:
    """``url`` migrated to head (what ``voxqueue db upgrade`` runs, in this process, before any
    measurement); this process's engine for it is disposed afterwards."""
    from models.db import engine_for
    from models.migrate import upgrade

    upgrade(url)
    try:
        yield url
    finally:
        engine_for(url).dispose()


@contextlib.contextmanager
def migrated_pg_database(admin_url: str, label: str) -> Iterator[str]:
    with fresh_pg_database(admin_url, label) as url, migrated(url):
        yield url


def query(url: str, sql: str, **params) -> list[tuple]:
    """Rows of one SQL query on ``url`` (this process's engine for it)."""
    from sqlalchemy import text

    from models.db import engine_for

    with engine_for(url).connect() as conn:
        return [tuple(r) for r in conn.execute(text(sql), params)]


def pg_xact_stats(admin_url: str, dbname: str) -> dict[str, int]:
    keys = ("xact_commit", "xact_rollback", "tup_updated", "tup_fetched", "sessions")
    with _pg_admin(admin_url) as conn:
        row = conn.execute(f"SELECT {', '.join(keys)} FROM pg_stat_database WHERE datname = %s",
                           (dbname,)).fetchone()
    return dict(zip(keys, row or (0,) * len(keys)))


def pg_connections(admin_url: str) -> tuple[int, int]:
    """(max_connections, connections open now) of the PostgreSQL server."""
    with _pg_admin(admin_url) as conn:
        limit = int(conn.execute("SHOW max_connections").fetchone()[0])
        used = int(conn.execute("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'")
                   .fetchone()[0])
    return limit, used


# --------------------------------------------------------------------------- commands
def cli(env: dict[str, str], *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    proc = subprocess.run(voxqueue_command(*args), env=env, capture_output=True, text=True, check=False,
                          timeout=timeout, stdin=subprocess.DEVNULL, cwd=ROOT)
    if proc.returncode != 0:
        raise RuntimeError(f"voxqueue {' '.join(args)} exited {proc.returncode}: {proc.stderr[-2000:]}")
    return proc


def run_child(kind: str, spec: dict, env: dict[str, str], timeout: float) -> dict:
    """``throughput.py --child KIND SPEC`` in a fresh interpreter; its JSON answer (last line)."""
    proc = subprocess.run([sys.executable, str(SCRIPT), "--child", kind, json.dumps(spec)], env=env, cwd=ROOT,
                          capture_output=True, text=True, check=False, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{kind} child failed: {proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- workers
Worker = tuple[subprocess.Popen, Path]


@contextlib.contextmanager
def workers_running(count: int, concurrency: int | None, env: dict[str, str], logs: Path,
                    label: str, loglevel: str,
                    processes: int | None = None) -> Iterator[tuple[list[Worker], float]]:
    """``count`` ``voxqueue worker`` commands (threads pool; ``concurrency`` and ``processes``
    None: the command's defaults, as the README starts it), yielded once every process of each is
    ready, with the time (monotonic) the first one was seen ready; stopped together."""
    from workers.supervisor import default_processes

    with contextlib.ExitStack() as stack:
        workers = []
        for w in range(count):
            log = fresh_log(logs, f"worker-{label}-{w}")
            options = [*(["-c", str(concurrency)] if concurrency else []),
                       *(["--processes", str(processes)] if processes else [])]
            cmd = voxqueue_command("worker", *options, "--loglevel", loglevel)
            workers.append((stack.enter_context(running(cmd, env, log)), log))
        stack.callback(stop_together, [proc for proc, _ in workers])
        expect = processes or default_processes()
        if logging.getLevelName(loglevel.upper()) > logging.INFO:  # Celery's "ready." is an INFO line
            yield workers, wait_pinged(workers, env["VOXQUEUE_BROKER_URL"], expect=expect * count)
        else:
            yield workers, wait_ready(workers, expect=expect)


def fresh_log(logs: Path, stem: str) -> Path:
    """``stem.log`` in ``logs``, or ``stem.2.log``, ``stem.3.log``… when taken: every start gets
    a log of its own, so "ready." (and an error) is never read from an earlier run's output."""
    path, n = logs / f"{stem}.log", 1
    while path.exists():
        n += 1
        path = logs / f"{stem}.{n}.log"
    return path


def wait_ready(workers: list[Worker], timeout: float = 60, expect: int = 1) -> float:
    """Wait until every worker command logged "ready." for each of its ``expect`` processes; the
    time (monotonic) the first command was seen wholly ready."""
    deadline, first, pending = time.monotonic() + timeout, None, list(workers)
    while pending:
        for proc, log in list(pending):
            if proc.poll() is not None:
                raise RuntimeError(f"process exited {proc.returncode}; see {log}")
            if log.exists() and log.read_text(errors="replace").count(" ready.") >= expect:
                pending.remove((proc, log))
                first = first or time.monotonic()
        if pending and time.monotonic() > deadline:
            raise RuntimeError(f"'ready.' not seen in {pending[0][1]} within {timeout}s")
        time.sleep(0.05)
    return first


def wait_pinged(workers: list[Worker], broker: str, timeout: float = 60, expect: int = 1) -> float:
    """Wait until ``expect`` worker processes answer Celery's ping (a worker logging above INFO
    never writes "ready."); the time (monotonic) they all answered."""
    from celery import Celery

    app = Celery("voxqueue-bench", broker=broker)
    deadline = time.monotonic() + timeout
    try:
        while True:
            for proc, log in workers:
                if proc.poll() is not None:
                    raise RuntimeError(f"process exited {proc.returncode}; see {log}")
            nodes = {name for reply in app.control.ping(timeout=0.5) for name in reply}
            if len(nodes) >= expect:
                return time.monotonic()
            if time.monotonic() > deadline:
                raise RuntimeError(f"{len(nodes)} of {expect} worker processes answered a ping within {timeout}s")
    finally:
        app.close()


def stop_together(procs: list[subprocess.Popen], grace: float = 15.0) -> None:
    """SIGTERM every process group at once, then wait (SIGKILL after ``grace``)."""
    for proc in procs:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for proc in procs:
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            stop(proc, signal.SIGKILL, 5)


def log_errors(logs: list[Path], top: int = 3) -> str:
    """The commonest ERROR lines of the worker logs (timestamps and task ids dropped)."""
    counts: dict[str, int] = {}
    for log in logs:
        for line in log.read_text(errors="replace").splitlines():
            if " ERROR " not in line:
                continue
            text = re.sub(r"\[[0-9a-f-]{36}\]", "[..]", line.split(" ERROR ", 1)[1])[:300]
            counts[text] = counts.get(text, 0) + 1
    if not counts:
        return "none"
    return "; ".join(f"{n} x {text}" for text, n in sorted(counts.items(), key=lambda kv: -kv[1])[:top])
