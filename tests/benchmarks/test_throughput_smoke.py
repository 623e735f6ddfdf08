"""benchmarks/: its helpers, and one tiny run of every scenario (no numbers checked)."""

from __future__ import annotations

import math
import subprocess
import sys
import wave
from pathlib import Path

import pytest

from benchmarks import throughput
from benchmarks.common import fresh_log, percentile
from benchmarks.inputs import make_files, write_manifest
from benchmarks.moderation_report import steady_state
from benchmarks.soe_report import summarize_profile
from tasks.manifest import Defaults, read_source, validate

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "throughput.py"


def test_defaults_match_the_brief():
    args = throughput.parse_args([])
    assert args.files == 500 and args.chunk_bytes == 10240 and args.latency_ms == 50
    # one `voxqueue worker` as the README starts it
    assert args.concurrency == [None] and args.workers == 1 and args.processes is None
    assert args.modes == ["live"] and args.pool_threads == 64 and args.ingest_rows == 10000
    assert args.moderation_submissions == 1000 and args.moderation_qps == 200
    assert args.scenarios == ["soe", "ingest", "moderation"]


def test_files_are_16k_mono_16bit_of_three_chunks(tmp_path):
    (path,) = make_files(tmp_path, 1, 28000)
    assert path.stat().st_size == 28000
    assert math.ceil(path.stat().st_size / 10240) == 3
    with wave.open(str(path)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (16000, 1, 2)


@pytest.mark.parametrize("service", ["soe", "shumei"])
def test_manifest_rows_are_all_accepted(tmp_path, service):
    audio = make_files(tmp_path, 2, 4000)
    manifest = write_manifest(tmp_path / "m.csv", audio, 5, service)
    specs = [validate(n, row, tmp_path, Defaults()) for n, row in read_source(manifest)]
    assert [s.error for s in specs] == [None] * 5
    assert {tuple(s.services) for s in specs} == {(service,)}


def test_percentile():
    assert percentile([], 0.5) is None
    assert percentile([3.0, 1.0, 2.0], 0.5) == 2.0
    assert percentile([0.0, 10.0], 0.95) == pytest.approx(9.5)


def test_every_worker_start_gets_a_log_of_its_own(tmp_path):
    # A repeated run once reused its log and took the earlier run's "ready." for its own.
    first = fresh_log(tmp_path, "worker-drain-c32-0")
    assert first == tmp_path / "worker-drain-c32-0.log"
    first.write_text("celery@vm ready.\n")
    second = fresh_log(tmp_path, "worker-drain-c32-0")
    second.write_text("")
    third = fresh_log(tmp_path, "worker-drain-c32-0")
    assert len({first, second, third}) == 3 and not third.exists()


def test_steady_state_drops_the_partial_first_and_last_seconds_and_counts_silent_ones():
    assert steady_state({}) == []
    assert steady_state({"100": 40, "101": 190}) == []
    assert steady_state({"100": 40, "101": 190, "103": 188, "104": 7}) == [190, 0, 188]


def test_profile_summary_counts_inclusive_shares(tmp_path, capsys):
    raw = tmp_path / "raw.txt"
    raw.write_text(
        "run (celery/app/trace.py:1);evaluate (tasks/soe.py:90);renew (tasks/lifecycle.py:60);"
        "execute (sqlalchemy/orm/session.py:1) 3\n"
        "run (celery/app/trace.py:1);on_message (kombu/messaging.py:1) 1\n"
    )
    summarize_profile(raw)
    out = capsys.readouterr().out
    assert "75.0%  SOE task (evaluate), inclusive" in out
    assert "75.0%    renew: checkpoint after each chunk" in out
    assert "25.0%  Celery/kombu outside the task body" in out


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.redis
@pytest.mark.postgres
def test_tiny_run_of_every_scenario(redis_url):
    from benchmarks.common import pg_check
    from tests.conftest import PG_URL, unavailable

    if problem := pg_check(PG_URL):  # the benchmark makes (and drops) databases of its own there
        unavailable("PostgreSQL", RuntimeError(problem))
    args = [
        "--files", "6", "--baseline-files", "2", "--sandbox-sessions", "10", "--sandbox-concurrency", "5",
        "--breakdown-files", "2", "--concurrency", "2", "--processes", "2", "--modes", "live,drain",
        "--pool-threads", "4", "--repeat", "2", "--ingest-rows", "30", "--ingest-files", "2",
        "--moderation-submissions", "40", "--moderation-qps", "20", "--moderation-concurrency", "2",
        "--redis-url", redis_url, "--pg-url", PG_URL, "--timeout", "120",
    ]
    proc = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=280,
                          stdin=subprocess.DEVNULL, cwd=ROOT, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "skipped" not in out and "FAILED" not in out, out
    assert "baseline (seed loop, official SDK, sequential): 2 files, 6 calls, 0 errors" in out, out
    assert "SOE task in one process, one file at a time (2 files" in out, out
    ceiling = ("ceiling (bare pool of 4 official-SDK client threads, one process, keep-alive):"
               " 6 files")
    assert ceiling in out, out
    shape = "1 x `voxqueue worker -c 2` (2 processes x 2 threads)"
    assert f"voxqueue live, {shape}: 6/6 done, 0 failed" in out, out
    assert f"voxqueue drain, {shape}: 6/6 done, 0 failed" in out, out
    assert out.count("6/6 done, 0 failed") == 4, out  # two rounds of live and drain
    assert out.count("of the bare SDK client pool's") == 4, out
    for mode in ("live", "drain"):
        assert f"  {mode}, {shape}, 2 runs: " in out, out
    assert out.count("rows/s") == 6, out
    assert "moderation: 40 submissions to shumei" in out, out
    assert "sandbox: 40 shumei.submit requests, 0 repeated keys, faults none" in out, out
    assert "database: 40/40 checks with a vendor task id, 0 failed" in out, out
    assert "sandbox peak in any sliding 1-second window" in out and "achieved rate" in out, out


@pytest.mark.e2e
@pytest.mark.redis
@pytest.mark.postgres
def test_workers_logging_above_info_are_seen_ready_by_their_ping(redis_url):
    # Celery's "ready." is an INFO line: with --worker-loglevel WARNING the run once waited 60 s for it
    # and failed.
    from benchmarks.common import pg_check
    from tests.conftest import PG_URL, unavailable

    if problem := pg_check(PG_URL):
        unavailable("PostgreSQL", RuntimeError(problem))
    args = [
        "--scenarios", "soe", "--files", "6", "--baseline-files", "2", "--sandbox-sessions", "0",
        "--breakdown-files", "0", "--concurrency", "2", "--processes", "2", "--pool-threads", "0",
        "--worker-loglevel", "WARNING", "--redis-url", redis_url, "--pg-url", PG_URL, "--timeout", "120",
    ]
    proc = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=200,
                          stdin=subprocess.DEVNULL, cwd=ROOT, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "voxqueue live, 1 x `voxqueue worker -c 2` (2 processes x 2 threads): 6/6 done, 0 failed" in proc.stdout, \
        proc.stdout
