"""The SOE scenario: the seed's sequential loop vs voxqueue through real processes, same files."""

from __future__ import annotations

import math
import os
import secrets
import shutil
import tempfile
import time
from pathlib import Path

import requests

from benchmarks.baseline import Env, run_baseline, run_sdk_pool
from benchmarks.breakdown import run_breakdown
from benchmarks.common import pg_connections, say, services_problem
from benchmarks.inputs import make_files, ref_text, write_manifest
from benchmarks.sandbox_load import run_sandbox_alone
from benchmarks.soe_pipeline import run_pipeline
from benchmarks.soe_report import report_pipeline, report_rounds, summarize_profile
from sandbox.server import favour
from workers.processes import free_port, running, voxqueue_command, wait_http


def soe_scenario(args) -> None:
    say("== SOE scenario ==")
    problem = services_problem(args)
    if problem:
        say(f"skipped: {problem}")
        return
    limit, used = pg_connections(args.pg_url)
    say(f"PostgreSQL: max_connections {limit}, {used} client connections open before the run")
    work = Path(tempfile.mkdtemp(prefix="voxqueue-bench-"))
    try:
        _soe(args, work)
    finally:
        if args.keep:
            say(f"kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def _inputs(args, work: Path) -> tuple[list[Path], Path, int]:
    """The WAV files, their manifest, and chunks per file."""
    t0 = time.perf_counter()
    files = make_files(work / "audio", args.files, args.file_bytes)
    manifest = write_manifest(work / "audio" / "readings.csv", files, len(files))
    size = files[0].stat().st_size
    chunks_per_file = math.ceil(size / args.chunk_bytes)
    say(f"files: {len(files)} WAVs of {size} bytes (16 kHz mono 16-bit), chunk {args.chunk_bytes} B"
        f" -> {chunks_per_file} chunks per file; made in {time.perf_counter() - t0:.1f}s")
    return files, manifest, chunks_per_file


def _env(args, work: Path) -> Env:
    secret_id, secret_key = "AKIDbench" + secrets.token_hex(6), secrets.token_hex(16)
    port = free_port()
    return Env({
        **os.environ,
        "VOXQUEUE_TENCENT_SECRET_ID": secret_id, "VOXQUEUE_TENCENT_SECRET_KEY": secret_key,
        "VOXQUEUE_SOE_ENDPOINT": f"http://127.0.0.1:{port}",
        "VOXQUEUE_SOE_CHUNK_BYTES": str(args.chunk_bytes), "VOXQUEUE_SOE_QPS": str(args.soe_qps),
        "VOXQUEUE_VAR_DIR": str(work / "var"), "VOXQUEUE_LOG_LEVEL": args.worker_loglevel,
        "PYTHONUNBUFFERED": "1",
    }, port, secret_id, secret_key, work / "logs")


def _soe(args, work: Path) -> None:
    files, manifest, chunks_per_file = _inputs(args, work)
    env = _env(args, work)
    cmd = voxqueue_command("sandbox", "--port", str(env.port), "--latency-ms", str(args.latency_ms))
    with running(cmd, env.base, env.logs / "sandbox.log") as sandbox:
        wait_http(env.url + "/_sandbox/health", sandbox)
        favoured = favour(sandbox.pid)  # a vendor has its own machines
        say(f"sandbox: {env.url}, latency {args.latency_ms:g} ms per vendor call, {favoured}")
        refs = [ref_text(i) for i in range(len(files))]
        base_fps = run_baseline(env, args, files, refs)
        requests.post(env.url + "/_sandbox/reset", timeout=10)
        pool_fps = run_sdk_pool(env, args, files, refs)
        if args.sandbox_sessions > 0:
            run_sandbox_alone(env, args, files, chunks_per_file, sandbox.pid)
        if args.breakdown_files > 0:
            run_breakdown(env, args, manifest, min(args.breakdown_files, len(files)))
        _voxqueue_runs(env, args, work, manifest, len(files), sandbox.pid, base_fps, pool_fps)


def _voxqueue_runs(env: Env, args, work: Path, manifest: Path, files: int, sandbox_pid: int,
                   base_fps: float, pool_fps: float | None) -> None:
    """One voxqueue run per mode and concurrency (``--repeat`` rounds of them), each printed as it
    ends; with rounds, then each configuration's median and range."""
    runs = [(mode, c) for _ in range(max(1, args.repeat)) for mode in args.modes for c in args.concurrency]
    rounds: dict[tuple[str, int], list[dict]] = {}
    for i, (mode, c) in enumerate(runs):
        requests.post(env.url + "/_sandbox/reset", timeout=10)
        profile_out = work / f"py-spy-{mode}-c{c}.txt" if args.py_spy and i == 0 else None
        try:
            r = run_pipeline(env, args, manifest, files, c, f"bench-{mode}-c{c}", sandbox_pid, profile_out, mode)
        except RuntimeError as exc:
            say(f"voxqueue {mode}, {args.workers} worker command(s), -c {c or 'default'}:"
                f" FAILED: {exc}")
            args.keep = True  # keep the logs
            continue
        r["sandbox_stats"] = requests.get(env.url + "/_sandbox/stats", timeout=10).json()
        r["pool_fps"] = pool_fps
        report_pipeline(r, base_fps)
        rounds.setdefault((mode, c), []).append(r)
        if profile_out is not None and profile_out.exists():
            summarize_profile(profile_out)
    if args.repeat > 1:
        report_rounds(rounds, base_fps)
