"""benchmarks/throughput.py: its helpers, and one tiny run of every scenario (no numbers checked)."""

from __future__ import annotations

import importlib.util
import math
import subprocess
import sys
import wave
from pathlib import Path

import pytest

from tasks.manifest import Defaults, read_source, validate

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "throughput.py"


def _load():
    spec = importlib.util.spec_from_file_location("voxqueue_bench_throughput", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


bench = _load()


def test_defaults_match_the_brief():
    args = bench.parse_args([])
    assert args.files == 500 and args.chunk_bytes == 10240 and args.latency_ms == 50
    assert args.concurrency == [16, 32] and args.workers == 2 and args.ingest_rows == 10000
    assert args.scenarios == ["soe", "ingest", "moderation"]


def test_files_are_16k_mono_16bit_of_three_chunks(tmp_path):
    (path,) = bench.make_files(tmp_path, 1, 28000)
    assert path.stat().st_size == 28000
    assert math.ceil(path.stat().st_size / 10240) == 3
    with wave.open(str(path)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (16000, 1, 2)


def test_manifest_rows_are_all_accepted(tmp_path):
    audio = bench.make_files(tmp_path, 2, 4000)
    manifest = bench.write_manifest(tmp_path / "m.csv", audio, 5)
    specs = [validate(n, row, tmp_path, Defaults()) for n, row in read_source(manifest)]
    assert [s.error for s in specs] == [None] * 5
    assert {tuple(s.services) for s in specs} == {("soe",)}


def test_percentile():
    assert bench.percentile([], 0.5) is None
    assert bench.percentile([3.0, 1.0, 2.0], 0.5) == 2.0
    assert bench.percentile([0.0, 10.0], 0.95) == pytest.approx(9.5)


def test_profile_summary_counts_inclusive_shares(tmp_path, capsys):
    raw = tmp_path / "raw.txt"
    raw.write_text(
        "run (celery/app/trace.py:1);evaluate (tasks/soe.py:90);renew (tasks/common.py:60);"
        "execute (sqlalchemy/orm/session.py:1) 3\n"
        "run (celery/app/trace.py:1);on_message (kombu/messaging.py:1) 1\n"
    )
    bench.summarize_profile(raw)
    out = capsys.readouterr().out
    assert "75.0%  SOE task (evaluate), inclusive" in out
    assert "75.0%    renew: checkpoint after each chunk" in out
    assert "25.0%  Celery/kombu outside the task body" in out


def test_moderation_is_a_placeholder(capsys):
    bench.moderation_scenario()
    assert "not yet measured" in capsys.readouterr().out


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.redis
@pytest.mark.postgres
def test_tiny_run_of_every_scenario(redis_url, pg_database):
    from tests.conftest import PG_URL

    args = [
        "--files", "6", "--baseline-files", "2", "--sandbox-sessions", "10", "--sandbox-concurrency", "5",
        "--breakdown-files", "2", "--concurrency", "2", "--ingest-rows", "30", "--ingest-files", "2",
        "--redis-url", redis_url, "--pg-url", PG_URL, "--timeout", "120",
    ]
    proc = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=280,
                          stdin=subprocess.DEVNULL, cwd=ROOT, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "skipped" not in out, out
    assert "baseline (seed loop, official SDK, sequential): 2 files, 6 calls, 0 errors" in out, out
    assert "voxqueue live, 2 workers x 2 threads: 6/6 done, 0 failed" in out, out
    assert "voxqueue drain, 2 workers x 2 threads: 6/6 done, 0 failed" in out, out
    assert out.count("rows/s") == 6, out
    assert "moderation: not yet measured" in out
