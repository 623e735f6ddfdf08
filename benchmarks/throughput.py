#!/usr/bin/env python
"""Throughput of voxqueue against the local vendor sandbox (``make bench``).

Scenarios (``--scenarios soe,ingest,moderation``; all by default):

soe
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

ingest
    A ``--ingest-rows`` manifest (rows pointing at a few small WAVs, service soe)
    ingested into SQLite and into PostgreSQL: the real ``voxqueue ingest`` command
    (wall time, with enqueueing to Redis) and ``tasks.ingest.ingest()`` called
    in a child process with timers around its own stages (manifest parsing and
    validation, database transactions, enqueueing), without and with enqueueing.

moderation
    Not measured yet: :func:`moderation_scenario` is a placeholder.

Plain numbers are printed; nothing is asserted. Everything runs on this machine:
the sandbox on 127.0.0.1, Redis at ``--redis-url`` (flushed before and after;
use a database number of its own) and PostgreSQL at ``--pg-url`` (a fresh
database is created for every run and dropped afterwards).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import csv
import json
import math
import os
import random
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import wave
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Self

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from workers.processes import free_port, running, voxqueue_command, wait_http

DEFAULT_REDIS = os.environ.get("VOXQUEUE_TEST_REDIS_URL", "redis://127.0.0.1:6379/14")
DEFAULT_PG = os.environ.get("VOXQUEUE_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
WORDS = ["red", "green", "the quick brown fox", "good morning", "she sells sea shells", "hello world"]


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


# --------------------------------------------------------------------------- audio and manifests
def write_wav(path: Path, size_bytes: int, seed: int) -> Path:
    """A 16 kHz mono 16-bit WAV of about ``size_bytes`` bytes, content differing per seed."""
    rng = random.Random(seed)
    samples = max(1, (size_bytes - 44) // 2)
    freq = rng.uniform(120, 400)
    period = [int(8000 * math.sin(2 * math.pi * freq * n / 16000)) for n in range(1600)]
    noise = rng.randbytes(samples)  # one byte of noise per sample, cheap and seed-dependent
    frames = bytearray(samples * 2)
    for n in range(samples):
        value = period[n % 1600] + noise[n] - 128
        frames[2 * n:2 * n + 2] = value.to_bytes(2, "little", signed=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(bytes(frames))
    return path


def make_files(folder: Path, count: int, size_bytes: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return [write_wav(folder / f"f{i:05}.wav", size_bytes, seed=i) for i in range(count)]


def ref_text(i: int) -> str:
    return WORDS[i % len(WORDS)]


def write_manifest(path: Path, audio: list[Path], rows: int) -> Path:
    """``rows`` rows (id, audio, ref_text, services=soe) cycling over ``audio``."""
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "audio", "ref_text", "eval_mode", "services"])
        for i in range(rows):
            writer.writerow([f"r{i:06}", os.path.relpath(audio[i % len(audio)], path.parent),
                             ref_text(i), "sentence", "soe"])
    return path


# --------------------------------------------------------------------------- services
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


def pg_xact_stats(admin_url: str, dbname: str) -> dict[str, int]:
    with _pg_admin(admin_url) as conn:
        row = conn.execute(
            "SELECT xact_commit, xact_rollback, tup_inserted, tup_updated, tup_fetched, sessions"
            " FROM pg_stat_database WHERE datname = %s", (dbname,)).fetchone()
    keys = ("xact_commit", "xact_rollback", "tup_inserted", "tup_updated", "tup_fetched", "sessions")
    return dict(zip(keys, row or (0,) * len(keys)))


def cli(env: dict[str, str], *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    proc = subprocess.run(voxqueue_command(*args), env=env, capture_output=True, text=True, check=False,
                          timeout=timeout, stdin=subprocess.DEVNULL, cwd=ROOT)
    if proc.returncode != 0:
        raise RuntimeError(f"voxqueue {' '.join(args)} exited {proc.returncode}: {proc.stderr[-2000:]}")
    return proc


# --------------------------------------------------------------------------- process sampling
class ProcessSampler:
    """CPU seconds and peak RSS of process groups, sampled in a background thread.

    A group is a callable returning the current pids (children included). A
    process that starts during the measurement counts from zero; one that exits
    between samples loses at most one interval of CPU.
    """

    def __init__(self, groups: dict[str, Callable[[], list[int]]], interval: float = 0.2) -> None:
        import psutil

        self.psutil = psutil
        self.groups = groups
        self.interval = interval
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self.group_of: dict[int, str] = {}
        self.peak_rss: dict[int, int] = {}
        self.peak_count: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.machine_busy = 0.0
        self.wall = 0.0

    @staticmethod
    def _busy(t) -> float:
        return t.user + t.nice + t.system + getattr(t, "irq", 0) + getattr(t, "softirq", 0)

    def _sample(self, initial: bool) -> None:
        for group, pids in self.groups.items():
            current = pids()
            self.peak_count[group] = max(self.peak_count.get(group, 0), len(current))
            for pid in current:
                try:
                    p = self.psutil.Process(pid)
                    with p.oneshot():
                        cpu = sum(p.cpu_times()[:2])
                        rss = p.memory_info().rss
                except self.psutil.Error:
                    continue
                if pid not in self.first:
                    self.first[pid] = cpu if initial else 0.0
                    self.group_of[pid] = group
                self.last[pid] = cpu
                self.peak_rss[pid] = max(self.peak_rss.get(pid, 0), rss)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample(False)

    def __enter__(self) -> Self:
        self._t0 = time.monotonic()
        self._cpu0 = self._busy(self.psutil.cpu_times())
        self._sample(True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._sample(False)
        self.wall = time.monotonic() - self._t0
        self.machine_busy = self._busy(self.psutil.cpu_times()) - self._cpu0

    def cpu(self, group: str) -> float:
        return sum(self.last[p] - self.first[p] for p, g in self.group_of.items() if g == group)

    def rss(self, group: str) -> dict[int, int]:
        return {p: r for p, r in self.peak_rss.items() if self.group_of.get(p) == group}


def tree(pid: int) -> Callable[[], list[int]]:
    import psutil

    def pids() -> list[int]:
        try:
            p = psutil.Process(pid)
            return [pid] + [c.pid for c in p.children(recursive=True)]
        except psutil.Error:
            return []
    return pids


def named(*names: str, cmdline_has: str | None = None) -> Callable[[], list[int]]:
    """Processes by name (and, for PostgreSQL backends, the database in their title)."""
    import psutil

    def pids() -> list[int]:
        found = []
        for p in psutil.process_iter(["name", "cmdline"]):
            if p.info["name"] not in names:
                continue
            if cmdline_has and cmdline_has not in " ".join(p.info["cmdline"] or ()):
                continue
            found.append(p.pid)
        return found
    return pids


def cpu_check() -> float:
    """Milliseconds of one fixed pure-Python workload (JSON, hashing, dicts): compare runs
    with it; a slower figure means a busier or slower machine, not slower voxqueue code."""
    import hashlib

    doc = {"SessionId": "x" * 36, "Words": [{"Word": "w", "PronAccuracy": 1.5, "i": i} for i in range(50)]}
    best = float("inf")
    for _ in range(7):
        t0 = time.perf_counter()
        for i in range(300):
            text = json.dumps(doc | {"n": i})
            hashlib.sha256(text.encode()).hexdigest()
            json.loads(text)
        best = min(best, time.perf_counter() - t0)
    return best * 1000


def background_load(seconds: float = 1.0) -> float:
    """Busy share of all cores over ``seconds`` while this benchmark does nothing."""
    import psutil

    t0, busy0 = time.monotonic(), ProcessSampler._busy(psutil.cpu_times())
    time.sleep(seconds)
    busy = ProcessSampler._busy(psutil.cpu_times()) - busy0
    return busy / ((time.monotonic() - t0) * (os.cpu_count() or 1))


# --------------------------------------------------------------------------- the SOE scenario
@dataclass
class Env:
    base: dict[str, str]
    port: int
    secret_id: str
    secret_key: str
    logs: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def baseline_seed_loop(env: Env, files: list[Path], refs: list[str], chunk_bytes: int) -> dict:
    """The seed document's TransmitOralProcessWithInit example, once per file, as written.

    Deviations, all needed to run it here: the endpoint is the sandbox over plain
    HTTP, the credentials are the sandbox's, ``file``/``RefText`` come from the
    file list, and ``print(json_resp)`` writes to a null sink (the JSON string is
    still built).
    """
    from tencentcloud.common import credential
    from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
    from tencentcloud.common.profile.client_profile import ClientProfile
    from tencentcloud.common.profile.http_profile import HttpProfile
    from tencentcloud.soe.v20180724 import models, soe_client

    sink = open(os.devnull, "w")  # noqa: SIM115 - closed below
    errors = calls = 0

    def one_file(file: Path, text: str) -> None:
        nonlocal errors, calls
        try:
            slice_num = chunk_bytes  # the seed: 10 * 1024
            SessionId = str(uuid.uuid1())
            cred = credential.Credential(env.secret_id, env.secret_key)
            httpProfile = HttpProfile(protocol="http")
            httpProfile.reqMethod = "POST"
            httpProfile.reqTimeout = 30
            httpProfile.endpoint = f"127.0.0.1:{env.port}"
            clientProfile = ClientProfile()
            clientProfile.signMethod = "TC3-HMAC-SHA256"
            clientProfile.unsignedPayload = True
            clientProfile.httpProfile = httpProfile
            client = soe_client.SoeClient(cred, "", clientProfile)
            with open(file, "rb") as f:
                content = f.read()
                content_len = len(content)
            pkg_num = content_len / slice_num + (content_len % slice_num != 0)
            cur_pos = 0
            for j in range(int(pkg_num)):
                if j == int(pkg_num) - 1:
                    send_content = content[cur_pos: content_len]
                    cur_pos = content_len
                    IsEnd = 1
                else:
                    send_content = content[cur_pos: cur_pos + slice_num]
                    cur_pos += slice_num
                    IsEnd = 0
                base64_data = base64.b64encode(send_content).decode()
                req = models.TransmitOralProcessWithInitRequest()
                req.SeqId = j + 1
                req.IsEnd = IsEnd
                req.VoiceFileType = 3
                req.VoiceEncodeType = 1
                req.UserVoiceData = base64_data
                req.RefText = text
                req.WorkMode = 0
                req.EvalMode = 1
                req.ScoreCoeff = 1
                req.SessionId = SessionId
                req.StorageMode = 0
                req.SentenceInfoEnabled = 0
                req.ServerType = 0
                req.IsAsync = 0
                req.IsQuery = 0
                req.TextMode = 0
                resp = client.TransmitOralProcessWithInit(req)
                calls += 1
                json_resp = resp.to_json_string()
                print(json_resp, file=sink)
            client.request.conn._session.close()
        except TencentCloudSDKException as err:
            errors += 1
            print(err, file=sink)

    cpu0, t0 = time.process_time(), time.perf_counter()
    for file, text in zip(files, refs):
        one_file(file, text)
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    sink.close()
    return {"files": len(files), "calls": calls, "errors": errors, "wall": wall, "cpu": cpu}


def sandbox_capacity(env: Env, files: list[Path], chunk_bytes: int, sessions: int, concurrency: int,
                     sandbox_pid: int) -> dict:
    """Sessions of the benchmark's files sent straight at the sandbox by an asyncio client.

    Every request is built and signed (the project's TC3 signer) before timing, so
    the client spends its CPU only on HTTP. Reports requests/s and the sandbox's
    own CPU per request (its ceiling on one core is the inverse).
    """
    import asyncio

    import aiohttp
    import psutil

    from tasks.audio import iter_chunks
    from vendors.soe import SoeClient, SoeParams
    from vendors.tc3 import Credentials

    client = SoeClient(env.url, Credentials(env.secret_id, env.secret_key), region="ap-guangzhou")
    plans: list[list[tuple[bytes, dict[str, str]]]] = []
    for i in range(sessions):
        path = files[i % len(files)]
        sid = str(uuid.uuid4())
        params = SoeParams(ref_text(i))
        requests_ = []
        with path.open("rb") as fh:
            for chunk in iter_chunks(fh, chunk_bytes):
                body = client.encode(client.build_transmit_with_init_params(
                    sid, chunk.seq, chunk.is_end, chunk.data, params))
                headers = client.signed_headers("TransmitOralProcessWithInit", body)
                requests_.append((body, headers))
        plans.append(requests_)
    total = sum(len(p) for p in plans)
    failures = 0

    async def main() -> float:
        nonlocal failures
        queue: asyncio.Queue = asyncio.Queue()
        for plan in plans:
            queue.put_nowait(plan)
        connector = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(connector=connector) as http:
            async def run() -> None:
                nonlocal failures
                while not queue.empty():
                    plan = queue.get_nowait()
                    for body, headers in plan:
                        async with http.post(env.url + "/", data=body, headers=headers) as r:
                            answer = await r.json(content_type=None)
                            if "Error" in answer.get("Response", {}):
                                failures += 1
            t0 = time.perf_counter()
            await asyncio.gather(*(run() for _ in range(concurrency)))
            return time.perf_counter() - t0

    sbx = psutil.Process(sandbox_pid)
    cpu0 = sum(sbx.cpu_times()[:2])
    client_cpu0 = time.process_time()
    wall = asyncio.run(main())
    sandbox_cpu = sum(sbx.cpu_times()[:2]) - cpu0
    return {"requests": total, "sessions": sessions, "concurrency": concurrency, "wall": wall,
            "failures": failures, "sandbox_cpu": sandbox_cpu, "client_cpu": time.process_time() - client_cpu0}


def wait_for_log(path: Path, needle: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited {proc.returncode}; see {path}")
        if path.exists() and needle in path.read_text(errors="replace"):
            return
        time.sleep(0.1)
    raise RuntimeError(f"{needle!r} not seen in {path} within {timeout}s")


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


def pg_connections(admin_url: str) -> tuple[int, int]:
    """(max_connections, connections open now) of the PostgreSQL server."""
    with _pg_admin(admin_url) as conn:
        limit = int(conn.execute("SHOW max_connections").fetchone()[0])
        used = int(conn.execute("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'")
                   .fetchone()[0])
    return limit, used


def db_progress(url: str, batch: str) -> tuple[int, int]:
    """(terminal checks, all checks) of the batch."""
    from sqlalchemy import text

    from models.db import engine_for

    with engine_for(url).connect() as conn:
        row = conn.execute(text(
            "SELECT count(*) FILTER (WHERE c.status IN ('done','failed')), count(*)"
            " FROM checks c JOIN jobs j ON j.id = c.job_id JOIN batches b ON b.id = j.batch_id"
            " WHERE b.name = :b"), {"b": batch}).one()
    return int(row[0]), int(row[1])


def db_unfinished(url: str, batch: str, limit: int = 10) -> list[tuple]:
    """(check id, status, chunks_sent, deliveries, attempts, lease_until, error_reason) of unfinished checks."""
    from sqlalchemy import text

    from models.db import engine_for

    with engine_for(url).connect() as conn:
        return [tuple(r) for r in conn.execute(text(
            "SELECT c.id, c.status, c.chunks_sent, c.deliveries, c.attempts, c.lease_until, c.error_reason"
            " FROM checks c JOIN jobs j ON j.id = c.job_id JOIN batches b ON b.id = j.batch_id"
            " WHERE b.name = :b AND c.status NOT IN ('done', 'failed') ORDER BY c.id LIMIT :n"),
            {"b": batch, "n": limit})]


def db_outcome(url: str, batch: str) -> dict:
    from sqlalchemy import text

    from models.db import engine_for

    with engine_for(url).connect() as conn:
        rows = conn.execute(text(
            "SELECT c.status, c.chunks_sent, j.created_at, c.finished_at"
            " FROM checks c JOIN jobs j ON j.id = c.job_id JOIN batches b ON b.id = j.batch_id"
            " WHERE b.name = :b"), {"b": batch}).all()
    done = [r for r in rows if r[0] == "done"]
    latencies = [(r[3] - r[2]).total_seconds() for r in done if r[3] and r[2]]
    first = min((r[2] for r in rows), default=None)
    finished = [r[3] for r in done if r[3]]
    last = max(finished, default=None)
    return {
        "checks": len(rows), "done": len(done), "failed": sum(r[0] == "failed" for r in rows),
        "chunks": sum(r[1] or 0 for r in done), "latencies": latencies,
        "span": (last - first).total_seconds() if first and last else None,
        "results_span": (last - min(finished)).total_seconds() if len(finished) > 1 else None,
    }


def run_pipeline(env: Env, args, manifest: Path, files: int, concurrency: int, batch: str,
                 sandbox_pid: int, profile_out: Path | None, mode: str = "live") -> dict:
    """One voxqueue run on a fresh database and a flushed Redis.

    ``live``: workers up first, then ``voxqueue ingest`` (as in production: the
    producer competes with the workers for the CPU). ``drain``: everything is
    ingested and enqueued first, then the workers start on a full queue (the
    workers' own ceiling). Measured until the last check is terminal.
    """
    with contextlib.ExitStack() as stack:
        db_url = stack.enter_context(fresh_pg_database(args.pg_url, f"soe_{mode}_c{concurrency}"))
        dbname = db_url.rsplit("/", 1)[1]
        redis_flush(args.redis_url)
        stack.callback(redis_flush, args.redis_url)
        run_env = env.base | {"VOXQUEUE_DATABASE_URL": db_url, "VOXQUEUE_BROKER_URL": args.redis_url}
        cli(run_env, "db", "upgrade")
        idle_load = background_load()
        ingest_cmd = voxqueue_command("ingest", str(manifest), "--batch", batch)
        out, ingest_wall = "", None
        if mode == "drain":
            t = time.monotonic()
            out = cli(run_env, *ingest_cmd[3:]).stdout
            ingest_wall = time.monotonic() - t
        workers = []
        for w in range(args.workers):
            log = env.logs / f"worker-{mode}-c{concurrency}-{w}.log"
            proc = stack.enter_context(running(
                voxqueue_command("worker", "-c", str(concurrency), "--pool", "threads",
                                 "--loglevel", args.worker_loglevel), run_env, log))
            workers.append((proc, log))
        for proc, log in workers:
            wait_for_log(log, "ready.", proc)
        xact0 = pg_xact_stats(args.pg_url, dbname)
        groups = {f"worker{i}": tree(p.pid) for i, (p, _) in enumerate(workers)}
        groups |= {"sandbox": tree(sandbox_pid), "redis": named("redis-server"),
                   "postgres": named("postgres", cmdline_has=dbname), "harness": lambda: harness}
        spy = None
        harness = [os.getpid()]  # and py-spy, once started
        with ProcessSampler(groups) as sampler:
            t0 = time.monotonic()
            if mode == "live":
                ingest = subprocess.Popen(ingest_cmd, env=run_env, cwd=ROOT, stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
                sampler.groups["ingest"] = tree(ingest.pid)
            if profile_out is not None:
                spy = subprocess.Popen(
                    [str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(workers[0][0].pid),
                     "--duration", str(max(1, round(args.py_spy))), "--rate", "100", "--gil", "--format", "raw",
                     "--output", str(profile_out)],
                    stdout=subprocess.DEVNULL, stderr=(env.logs / "py-spy.log").open("ab"))
                harness.append(spy.pid)
            if mode == "live":
                out, err = ingest.communicate(timeout=args.timeout)
                ingest_wall = time.monotonic() - t0
                if ingest.returncode != 0:
                    raise RuntimeError(f"ingest failed: {err[-2000:]}")
            deadline = t0 + args.timeout
            last_change, last_terminal = time.monotonic(), -1
            while True:
                terminal, total = db_progress(db_url, batch)
                if total and terminal >= total:
                    break
                now = time.monotonic()
                if terminal != last_terminal:
                    last_change, last_terminal = now, terminal
                stalled = now - last_change > args.stall_seconds
                if now > deadline or stalled:
                    why = f"no progress for {args.stall_seconds:g}s" if stalled else f"timed out after {args.timeout:g}s"
                    raise RuntimeError(
                        f"{why}: {terminal}/{total} checks terminal; first unfinished (id, status, chunks_sent,"
                        f" deliveries, attempts, lease_until, error_reason): {db_unfinished(db_url, batch, 3)};"
                        f" worker errors: {log_errors([log for _, log in workers])}; logs in {env.logs}")
                time.sleep(0.1)
            wall = time.monotonic() - t0
        if spy is not None:
            spy.wait(timeout=args.py_spy + 30)
        xact1 = pg_xact_stats(args.pg_url, dbname)
        outcome = db_outcome(db_url, batch)
        from models.db import engine_for

        engine_for(db_url).dispose()
    xact = {k: xact1[k] - xact0[k] for k in xact0}
    return {"concurrency": concurrency, "mode": mode, "wall": wall, "ingest_wall": ingest_wall,
            "ingest_out": out.strip(), "outcome": outcome, "xact": xact, "sampler": sampler,
            "workers": len(workers), "files": files, "idle_load": idle_load}


def cost_breakdown(env: Env, args, manifest: Path, files: int) -> dict:
    """The SOE task in one process, one file after another, with counters (child process)."""
    with fresh_pg_database(args.pg_url, "soe_profile") as db_url:
        run_env = env.base | {"VOXQUEUE_DATABASE_URL": db_url, "VOXQUEUE_BROKER_URL": args.redis_url}
        cli(run_env, "db", "upgrade")
        spec = {"manifest": str(manifest), "files": files}
        proc = subprocess.run([sys.executable, __file__, "--child", "soe-task", json.dumps(spec)],
                              env=run_env, cwd=ROOT, capture_output=True, text=True, check=False,
                              timeout=args.timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"cost breakdown child failed: {proc.stderr[-3000:]}")
        from models.db import engine_for

        engine_for(db_url).dispose()
    return json.loads(proc.stdout.strip().splitlines()[-1])


def soe_scenario(args) -> None:
    say("== SOE scenario ==")
    for problem in (redis_check(args.redis_url), pg_check(args.pg_url)):
        if problem:
            say(f"skipped: {problem}")
            return
    limit, used = pg_connections(args.pg_url)
    want = args.workers * 30  # models.db: pool_size=10 + max_overflow=20 per process
    say(f"PostgreSQL: max_connections {limit}, {used} client connections open before the run; the workers may"
        f" open up to {want} ({args.workers} x (pool 10 + overflow 20))"
        + ("  << may run out of connections" if used + want + 5 > limit else ""))
    work = Path(tempfile.mkdtemp(prefix="voxqueue-bench-"))
    try:
        _soe(args, work)
    finally:
        if args.keep:
            say(f"kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def _soe(args, work: Path) -> None:
    t0 = time.perf_counter()
    files = make_files(work / "audio", args.files, args.file_bytes)
    refs = [ref_text(i) for i in range(len(files))]
    manifest = work / "audio" / "readings.csv"
    write_manifest(manifest, files, len(files))
    size = files[0].stat().st_size
    chunks_per_file = math.ceil(size / args.chunk_bytes)
    say(f"files: {len(files)} WAVs of {size} bytes (16 kHz mono 16-bit), chunk {args.chunk_bytes} B"
        f" -> {chunks_per_file} chunks per file; made in {time.perf_counter() - t0:.1f}s")
    secret_id, secret_key = "AKIDbench" + secrets.token_hex(6), secrets.token_hex(16)
    port = free_port()
    logs = work / "logs"
    env = Env({
        **os.environ,
        "VOXQUEUE_TENCENT_SECRET_ID": secret_id, "VOXQUEUE_TENCENT_SECRET_KEY": secret_key,
        "VOXQUEUE_SOE_ENDPOINT": f"http://127.0.0.1:{port}",
        "VOXQUEUE_SOE_CHUNK_BYTES": str(args.chunk_bytes), "VOXQUEUE_SOE_QPS": str(args.soe_qps),
        "VOXQUEUE_VAR_DIR": str(work / "var"), "VOXQUEUE_LOG_LEVEL": args.worker_loglevel,
        "PYTHONUNBUFFERED": "1",
    }, port, secret_id, secret_key, logs)
    with running(voxqueue_command("sandbox", "--port", str(port), "--latency-ms", str(args.latency_ms)),
                 env.base, logs / "sandbox.log") as sandbox:
        wait_http(env.url + "/_sandbox/health", sandbox)
        say(f"sandbox: {env.url}, latency {args.latency_ms:g} ms per vendor call")
        import requests

        # (a) the seed's loop
        n_base = len(files) if args.baseline_files <= 0 else min(args.baseline_files, len(files))
        base = baseline_seed_loop(env, files[:n_base], refs[:n_base], args.chunk_bytes)
        base_fps = base["files"] / base["wall"]
        extrapolated = n_base < len(files)
        say(f"baseline (seed loop, official SDK, sequential): {base['files']} files, {base['calls']} calls,"
            f" {base['errors']} errors in {base['wall']:.2f}s -> {base_fps:.2f} files/s,"
            f" {base['calls'] / base['wall']:.1f} chunks/s, {1000 * base['wall'] / base['calls']:.1f} ms per call"
            f" ({args.latency_ms:g} ms of it sandbox latency), client CPU {1000 * base['cpu'] / base['files']:.1f} ms/file")
        full = len(files) / base_fps
        say(f"baseline for all {len(files)} files: {full:.1f}s"
            + (f" (EXTRAPOLATED from {n_base} files)" if extrapolated else " (measured)"))

        # the sandbox on its own
        if args.sandbox_sessions > 0:
            requests.post(env.url + "/_sandbox/reset", timeout=10)
            cap = sandbox_capacity(env, files, args.chunk_bytes, args.sandbox_sessions,
                                   args.sandbox_concurrency, sandbox.pid)
            rps = cap["requests"] / cap["wall"]
            per_req = cap["sandbox_cpu"] / cap["requests"]
            say(f"sandbox alone: {cap['requests']} requests ({cap['sessions']} sessions) from"
                f" {cap['concurrency']} concurrent asyncio clients in {cap['wall']:.2f}s -> {rps:.0f} requests/s"
                f" ({rps / chunks_per_file:.0f} files/s), {cap['failures']} errors; sandbox CPU"
                f" {1000 * per_req:.2f} ms/request (one core: ~{1 / per_req:.0f} requests/s ceiling),"
                f" client CPU {1000 * cap['client_cpu'] / cap['requests']:.2f} ms/request")
            stats = requests.get(env.url + "/_sandbox/stats", timeout=10).json()
            say(f"  sandbox's own count: {stats['vendor_requests'].get('soe')} SOE requests,"
                f" peak {stats['peak_rps'].get('soe')} in one second")

        # per-file cost of the task itself
        if args.breakdown_files > 0:
            requests.post(env.url + "/_sandbox/reset", timeout=10)
            b = cost_breakdown(env, args, manifest, min(args.breakdown_files, len(files)))
            n = b["files"]
            say(f"SOE task in one process, one file at a time ({n} files, PostgreSQL, {b['chunks']} chunks):"
                f" {1000 * b['wall'] / n:.1f} ms/file wall = HTTP {1000 * b['http_s'] / n:.1f}"
                f" ({b['http_calls'] / n:.1f} calls) + database {1000 * b['db_s'] / n:.1f}"
                f" + other {1000 * (b['wall'] - b['http_s'] - b['db_s']) / n:.1f}; CPU {1000 * b['cpu'] / n:.1f} ms/file")
            say(f"  per file: {b['statements'] / n:.1f} SQL statements, {b['transactions'] / n:.1f} transactions"
                f" (commits), {b['checkouts'] / n:.1f} pool checkouts (each a pre-ping round trip),"
                f" {b['sessions'] / n:.1f} ORM sessions; per chunk: {b['statements'] / b['chunks']:.2f} statements,"
                f" {b['transactions'] / b['chunks']:.2f} transactions")
            say("  statements per file by kind: " + ", ".join(
                f"{k} {v / n:.1f}" for k, v in sorted(b["by_kind"].items(), key=lambda kv: -kv[1])))

        # (b) voxqueue
        results = []
        runs = [(mode, c) for mode in args.modes for c in args.concurrency]
        for i, (mode, c) in enumerate(runs):
            requests.post(env.url + "/_sandbox/reset", timeout=10)
            profile_out = work / f"py-spy-{mode}-c{c}.txt" if args.py_spy and i == 0 else None
            try:
                r = run_pipeline(env, args, manifest, len(files), c, f"bench-{mode}-c{c}", sandbox.pid,
                                 profile_out, mode)
            except RuntimeError as exc:
                say(f"voxqueue {mode}, {args.workers} workers x {c} threads: FAILED: {exc}")
                args.keep = True  # keep the logs
                continue
            stats = requests.get(env.url + "/_sandbox/stats", timeout=10).json()
            r["sandbox_stats"] = stats
            results.append(r)
            report_pipeline(r, base_fps, chunks_per_file)
            if profile_out is not None and profile_out.exists():
                summarize_profile(profile_out)


def report_pipeline(r: dict, base_fps: float, chunks_per_file: int) -> None:
    o, s, n = r["outcome"], r["sampler"], r["files"]
    fps = o["done"] / r["wall"]
    workers = [g for g in sorted(set(s.group_of.values())) if g.startswith("worker")]
    worker_cpu = sum(s.cpu(g) for g in workers)
    rss = [max(s.rss(g).values(), default=0) / 2**20 for g in workers]
    lat = o["latencies"]
    if r["mode"] == "live":
        how = (f"workers up, then `voxqueue ingest`: {r['ingest_wall']:.2f}s of the run was the ingest"
               " command (it competes with the workers for the CPU)")
    else:
        how = (f"`voxqueue ingest` first ({r['ingest_wall']:.2f}s, not counted), then the workers drain"
               " the full queue; timed from the workers being ready")
    say(f"voxqueue {r['mode']}, {r['workers']} workers x {r['concurrency']} threads: {o['done']}/{o['checks']}"
        f" done, {o['failed']} failed in {r['wall']:.2f}s ({how})")
    steady = (f"; between the first and the last result {(o['done'] - 1) / o['results_span']:.2f} files/s"
              if o["results_span"] else "")
    say(f"  {fps:.2f} files/s = {fps / base_fps:.1f}x baseline; {o['chunks'] / r['wall']:.1f} chunks/s"
        f" ({o['chunks']} chunks){steady}")
    groups = ("sandbox", "postgres", "redis", "ingest", "harness")
    attributed = worker_cpu + sum(s.cpu(g) for g in groups)
    cores = os.cpu_count() or 1
    say(f"  CPU per file: workers {1000 * worker_cpu / n:.1f} ms, sandbox {1000 * s.cpu('sandbox') / n:.1f} ms,"
        f" postgres backends {1000 * s.cpu('postgres') / n:.1f} ms, redis-server {1000 * s.cpu('redis') / n:.1f} ms,"
        f" ingest command {1000 * s.cpu('ingest') / n:.1f} ms, this benchmark (sampling, polling, py-spy)"
        f" {1000 * s.cpu('harness') / n:.1f} ms; sum {1000 * attributed / n:.1f} ms")
    say(f"  machine busy {s.machine_busy:.1f} CPU-s of {cores * s.wall:.1f} available"
        f" ({100 * s.machine_busy / (cores * s.wall):.0f}% of {cores} cores); not attributed above (kernel,"
        f" other processes) {s.machine_busy - attributed:.1f} CPU-s; load before the run (nothing of ours"
        f" busy) {100 * r['idle_load']:.0f}%" + ("  << OTHER LOAD ON THIS MACHINE: numbers disturbed"
                                                 if r["idle_load"] > 0.1 else ""))
    say(f"  worker CPU {worker_cpu:.1f}s ({', '.join(f'{s.cpu(g):.1f}' for g in workers)}),"
        f" peak RSS per worker {', '.join(f'{m:.0f}' for m in rss)} MiB; peak PostgreSQL connections to the"
        f" run's database {s.peak_count.get('postgres', 0)} (sampled)")
    note = ("every file is enqueued at once: mostly queueing" if r["mode"] == "live"
            else "includes the time before the workers started")
    say(f"  ingest -> result latency (jobs.created_at -> checks.finished_at): p50 {num(percentile(lat, 0.5), 2)}s,"
        f" p95 {num(percentile(lat, 0.95), 2)}s, max {num(max(lat, default=None), 2)}s ({note})")
    x = r["xact"]
    say(f"  PostgreSQL per file: {x['xact_commit'] / n:.1f} commits, {x['xact_rollback'] / n:.1f} rollbacks,"
        f" {x['sessions'] / n:.2f} new connections ({x['sessions']} in all),"
        f" {x['tup_updated'] / n:.1f} rows updated, {x['tup_fetched'] / n:.1f} rows fetched")
    st = r["sandbox_stats"]
    say(f"  sandbox: {st['vendor_requests'].get('soe')} SOE requests, peak {st['peak_rps'].get('soe')}"
        f" in one second, faults {st['faults'] or 'none'}")


PROFILE_MARKERS = (  # (label, a frame that marks it); a sample counts for every label it has
    ("SOE task (evaluate), inclusive", "evaluate (tasks/soe.py"),
    ("  claim: lease UPDATE + load check/job", "claim (tasks/common.py"),
    ("  renew: checkpoint after each chunk", "renew (tasks/common.py"),
    ("  _store: scores + job status", "_store (tasks/soe.py"),
    ("  shared rate limit (Redis EVALSHA per chunk)", "take (tasks/ratelimit.py"),
    ("  vendor call (sign + requests + parse)", "TencentApiClient.call (vendors/tencent.py"),
    ("    TC3 signing", "signed_headers (vendors/tencent.py"),
    ("SQLAlchemy, anywhere", "sqlalchemy/"),
    ("psycopg, anywhere", "psycopg/"),
    ("pool pre-ping", "_do_ping_w_event"),
    ("requests/urllib3, anywhere", "requests/"),
    ("redis-py, anywhere", "redis/"),
    ("logging, anywhere", "logging/__init__"),
    ("Celery/kombu outside the task body", None),
)


def summarize_profile(path: Path, top: int = 12) -> None:
    """Where worker 0 held the GIL (py-spy --gil raw output: Python CPU time)."""
    inclusive: dict[str, int] = {}
    leaves: dict[str, int] = {}
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        total += n
        leaf = stack.rsplit(";", 1)[-1]
        leaves[leaf] = leaves.get(leaf, 0) + n
        for label, marker in PROFILE_MARKERS:
            if marker is None:
                hit = "evaluate (tasks/soe.py" not in stack and ("celery/" in stack or "kombu/" in stack)
            else:
                hit = marker in stack
            if hit:
                inclusive[label] = inclusive.get(label, 0) + n
    if not total:
        say("  py-spy: no samples")
        return
    say(f"  py-spy --gil on worker 0 ({total} samples holding the GIL), inclusive share:")
    for label, _ in PROFILE_MARKERS:
        say(f"    {100 * inclusive.get(label, 0) / total:5.1f}%  {label}")
    say("  hottest leaf frames:")
    for leaf, n in sorted(leaves.items(), key=lambda kv: -kv[1])[:top]:
        say(f"    {100 * n / total:5.1f}%  {leaf}")


# --------------------------------------------------------------------------- the ingestion scenario
def ingest_scenario(args) -> None:
    say("== Ingestion scenario ==")
    problems = [p for p in (redis_check(args.redis_url), pg_check(args.pg_url)) if p]
    work = Path(tempfile.mkdtemp(prefix="voxqueue-bench-ingest-"))
    try:
        audio = make_files(work / "audio", args.ingest_files, args.file_bytes)
        manifest = write_manifest(work / "audio" / "manifest.csv", audio, args.ingest_rows)
        say(f"manifest: {args.ingest_rows} rows over {len(audio)} WAVs, service soe")
        base = {**os.environ, "VOXQUEUE_VAR_DIR": str(work / "var"), "VOXQUEUE_BROKER_URL": args.redis_url,
                "VOXQUEUE_LOG_LEVEL": "WARNING"}
        backends: list[tuple[str, Callable[[str], contextlib.AbstractContextManager[str]]]] = []

        @contextlib.contextmanager
        def sqlite_db(label: str) -> Iterator[str]:
            path = work / f"{label}.db"
            yield f"sqlite:///{path}"
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)

        backends.append(("SQLite", sqlite_db))
        if pg_check(args.pg_url) is None:
            backends.append(("PostgreSQL", lambda label: fresh_pg_database(args.pg_url, label)))
        for p in problems:
            say(f"note: {p}")
        enqueue_ok = redis_check(args.redis_url) is None
        for name, make_db in backends:
            modes = [False, True] if enqueue_ok else [False]
            for enqueue in modes:
                with make_db(f"ingest_{'q' if enqueue else 'n'}") as url:
                    env = base | {"VOXQUEUE_DATABASE_URL": url}
                    cli(env, "db", "upgrade")
                    if enqueue:
                        redis_flush(args.redis_url)
                    spec = {"manifest": str(manifest), "enqueue": enqueue}
                    proc = subprocess.run([sys.executable, __file__, "--child", "ingest", json.dumps(spec)],
                                          env=env, cwd=ROOT, capture_output=True, text=True, check=False,
                              timeout=args.timeout)
                    if enqueue:
                        redis_flush(args.redis_url)
                    if proc.returncode != 0:
                        say(f"{name}: ingest child failed: {proc.stderr[-2000:]}")
                        continue
                    r = json.loads(proc.stdout.strip().splitlines()[-1])
                    rows = r["rows"]
                    say(f"{name}, tasks.ingest.ingest() {'with' if enqueue else 'without'} enqueueing"
                        f" (in-process timers): {rows} rows in {r['wall']:.2f}s -> {rows / r['wall']:.0f} rows/s;"
                        f" per row: parse+validate {1e6 * r['parse_s'] / rows:.0f} us, database"
                        f" {1e6 * r['db_s'] / rows:.0f} us, enqueue {1e6 * r['enqueue_s'] / rows:.0f} us;"
                        f" {r['accepted']} accepted, {r['tasks']} tasks sent")
            if enqueue_ok:
                with make_db("ingest_cli") as url:
                    env = base | {"VOXQUEUE_DATABASE_URL": url}
                    cli(env, "db", "upgrade")
                    redis_flush(args.redis_url)
                    t0 = time.perf_counter()
                    proc = cli(env, "ingest", str(manifest), "--batch", "cli")
                    wall = time.perf_counter() - t0
                    queued = _queue_length(args.redis_url, "soe")
                    redis_flush(args.redis_url)
                    say(f"{name}, `voxqueue ingest` command (wall time, interpreter start and imports"
                        f" included, enqueueing to Redis): {wall:.2f}s -> {args.ingest_rows / wall:.0f} rows/s;"
                        f" {proc.stdout.strip()}; {queued} messages on the soe queue")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _queue_length(url: str, queue: str) -> int:
    import redis

    return int(redis.Redis.from_url(url).llen(queue))


# --------------------------------------------------------------------------- moderation
def moderation_scenario() -> None:
    """Placeholder: the lead fills this in once moderation lands."""
    say("== Moderation scenario ==")
    say("moderation: not yet measured")


# --------------------------------------------------------------------------- child processes
class Timer:
    def __init__(self) -> None:
        self.seconds = 0.0
        self.calls = 0

    def wrap(self, fn):
        def timed(*a, **kw):
            t0 = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                self.seconds += time.perf_counter() - t0
                self.calls += 1
        return timed

    def wrap_cm(self, cm_factory):
        @contextlib.contextmanager
        def timed(*a, **kw):
            t0 = time.perf_counter()
            try:
                with cm_factory(*a, **kw) as value:
                    yield value
            finally:
                self.seconds += time.perf_counter() - t0
                self.calls += 1
        return timed

    def wrap_iter(self, fn):
        def timed(*a, **kw):
            it = iter(fn(*a, **kw))
            while True:
                t0 = time.perf_counter()
                try:
                    item = next(it)
                except StopIteration:
                    self.seconds += time.perf_counter() - t0
                    return
                self.seconds += time.perf_counter() - t0
                yield item
        return timed


def child_ingest(spec: dict) -> dict:
    """tasks.ingest.ingest() with timers around parsing, database transactions and enqueueing."""
    import tasks.ingest as ingest_mod
    from tasks.dispatch import enqueue

    parse, db, enq = Timer(), Timer(), Timer()
    ingest_mod.read_source = parse.wrap_iter(ingest_mod.read_source)
    ingest_mod.validate = parse.wrap(ingest_mod.validate)
    ingest_mod.session_scope = db.wrap_cm(ingest_mod.session_scope)
    sent = 0

    def counting_enqueue(pairs):
        nonlocal sent
        sent += enqueue(pairs)

    t0 = time.perf_counter()
    result = ingest_mod.ingest(Path(spec["manifest"]), batch="bench",
                               enqueue=enq.wrap(counting_enqueue) if spec["enqueue"] else None)
    wall = time.perf_counter() - t0
    rows = result.accepted + result.rejected + result.existing
    return {"rows": rows, "accepted": result.accepted, "wall": wall, "parse_s": parse.seconds,
            "db_s": db.seconds, "db_transactions": db.calls, "enqueue_s": enq.seconds, "tasks": sent}


def child_soe_task(spec: dict) -> dict:
    """Ingest ``files`` rows, then run the real SOE task on each check in this process
    (``evaluate.apply``, no broker), counting SQL statements, commits, pool checkouts,
    ORM sessions, HTTP calls and the time spent in each."""
    from sqlalchemy import event

    import models.db as db_mod
    import tasks.common as common_mod
    import tasks.soe as soe_mod
    import vendors.http as http_mod
    from config.settings import get_settings
    from models.db import engine_for
    from tasks.ingest import ingest

    manifest = Path(spec["manifest"])
    lines = manifest.read_text().splitlines()[: spec["files"] + 1]
    small = manifest.with_name("breakdown.csv")
    small.write_text("\n".join(lines) + "\n")
    result = ingest(small, batch="breakdown", enqueue=None)
    checks = [cid for cid, _ in result.to_enqueue]

    engine = engine_for(get_settings().database_url)
    counts = {"statements": 0, "transactions": 0, "checkouts": 0}
    by_kind: dict[str, int] = {}

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

    http, dbt = Timer(), Timer()
    http_mod.post = http.wrap(http_mod.post)
    scope = dbt.wrap_cm(db_mod.session_scope)
    soe_mod.session_scope = scope
    common_mod.session_scope = scope

    cpu0, t0 = time.process_time(), time.perf_counter()
    for cid in checks:
        soe_mod.evaluate.apply(args=[cid], throw=True)
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    from sqlalchemy import text

    with engine.connect() as conn:
        chunks, done = conn.execute(text(
            "SELECT coalesce(sum(chunks_sent), 0), count(*) FILTER (WHERE status = 'done') FROM checks")).one()
    # the counting query above is not part of the work
    return {"files": len(checks), "done": int(done), "chunks": int(chunks), "wall": wall, "cpu": cpu,
            "http_s": http.seconds, "http_calls": http.calls, "db_s": dbt.seconds, "sessions": dbt.calls,
            "statements": counts["statements"] - 1, "transactions": counts["transactions"],
            "checkouts": counts["checkouts"] - 1, "by_kind": by_kind}


# --------------------------------------------------------------------------- command line
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--scenarios", default="soe,ingest,moderation",
                   help="comma-separated: soe, ingest, moderation")
    g = p.add_argument_group("SOE scenario")
    g.add_argument("--files", type=int, default=500, help="WAV files to score")
    g.add_argument("--file-bytes", type=int, default=28000, help="size of each WAV (44-byte header included)")
    g.add_argument("--chunk-bytes", type=int, default=10240, help="VOXQUEUE_SOE_CHUNK_BYTES")
    g.add_argument("--latency-ms", type=float, default=50.0, help="sandbox latency per vendor call")
    g.add_argument("--baseline-files", type=int, default=50,
                   help="files sent by the seed loop (extrapolated to --files); 0: all")
    g.add_argument("--workers", type=int, default=2, help="worker processes")
    g.add_argument("--concurrency", default="16,32", help="threads per worker, one run each")
    g.add_argument("--modes", default="live,drain",
                   help="live: workers up, then ingest; drain: ingest, then workers (one run each)")
    g.add_argument("--soe-qps", type=float, default=100000.0, help="VOXQUEUE_SOE_QPS")
    g.add_argument("--worker-loglevel", default="INFO", help="worker --loglevel and VOXQUEUE_LOG_LEVEL")
    g.add_argument("--sandbox-sessions", type=int, default=1000,
                   help="sessions sent straight at the sandbox to measure it alone; 0: skip")
    g.add_argument("--sandbox-concurrency", type=int, default=200, help="concurrent clients for that")
    g.add_argument("--breakdown-files", type=int, default=30,
                   help="files for the in-process per-file cost breakdown; 0: skip")
    g.add_argument("--py-spy", type=int, default=0, metavar="SECONDS",
                   help="record worker 0 of the first run with py-spy for SECONDS (pip install py-spy)")
    g = p.add_argument_group("ingestion scenario")
    g.add_argument("--ingest-rows", type=int, default=10000, help="manifest rows")
    g.add_argument("--ingest-files", type=int, default=5, help="distinct WAVs the rows point at")
    g = p.add_argument_group("services")
    g.add_argument("--redis-url", default=DEFAULT_REDIS, help="broker (FLUSHED before and after each run)")
    g.add_argument("--pg-url", default=DEFAULT_PG,
                   help="PostgreSQL to create (and drop) a fresh database per run in")
    g.add_argument("--timeout", type=float, default=300.0, help="give up on one run after this many seconds")
    g.add_argument("--stall-seconds", type=float, default=45.0,
                   help="give up on a run when no check finished for this long (the workers' logs are kept)")
    g.add_argument("--keep", action="store_true", help="keep the temporary folder (files, logs, profiles)")
    p.add_argument("--child", nargs=2, metavar=("KIND", "SPEC"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.concurrency = [int(c) for c in str(args.concurrency).split(",") if c.strip()]
    args.scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip() in ("live", "drain")]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        kind, spec = args.child
        result = {"ingest": child_ingest, "soe-task": child_soe_task}[kind](json.loads(spec))
        print(json.dumps(result))
        return 0
    os.chdir(ROOT)
    unknown = set(args.scenarios) - {"soe", "ingest", "moderation"}
    if unknown:
        print(f"unknown scenario(s): {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    load = background_load()
    say(f"voxqueue benchmark: {os.cpu_count()} CPUs, Python {sys.version.split()[0]},"
        f" redis {args.redis_url}, postgres {args.pg_url}; load before starting {100 * load:.0f}%;"
        f" CPU check {cpu_check():.1f} ms (lower is faster; compare runs)"
        + ("  << OTHER LOAD ON THIS MACHINE: numbers disturbed" if load > 0.1 else ""))
    t0 = time.perf_counter()
    def interrupted(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)  # stop cleanly: workers stopped, databases dropped
    with contextlib.suppress(KeyboardInterrupt):
        if "soe" in args.scenarios:
            soe_scenario(args)
        if "ingest" in args.scenarios:
            ingest_scenario(args)
        if "moderation" in args.scenarios:
            moderation_scenario()
    say(f"total benchmark time {time.perf_counter() - t0:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
