"""A broker that is away, or that accepts and never answers: producers say so, nothing hangs.

Real processes on Redis and PostgreSQL, default settings. A broker down while
``voxqueue ingest`` runs: the ingest completes, or exits with one line and runs
again to completion; nothing is half-recorded and nothing submitted twice. A
broker that never answers: ``ingest`` gives one clear line within 30 s, and
every process stops within 10 s of SIGTERM.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time
from urllib.request import urlopen

import pytest
from sqlalchemy import func, select

from models import Check, Job
from models.db import session_scope
from tests.e2e.test_moderation import accepted_once, expected
from tests.e2e.test_soe_pipeline import check_scores
from tests.moderation_env import moderation_env, point_at_sandbox
from tests.pipeline import wait_until, write_recovery_manifest
from workers.processes import free_port, running, voxqueue_command, wait_http

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.parametrize("database_url", ["postgresql"],
                                                                        indirect=True)]


@pytest.fixture
def pipeline_env(tmp_path, request) -> dict[str, str]:
    broker = request.getfixturevalue(request.node.get_closest_marker("broker").args[0])
    return moderation_env(tmp_path, callbacks=False) | {"VOXQUEUE_BROKER_URL": f"redis://127.0.0.1:{_port(broker)}/0"}


def _port(broker) -> int:
    return broker[0] if isinstance(broker, tuple) else broker


def one_line(stderr: str) -> str:
    """The one error line (a log line before it may say that the command is waiting)."""
    errors = [line for line in stderr.splitlines() if line.startswith("voxqueue: error:")]
    assert len(errors) == 1 and "Traceback" not in stderr, stderr
    return errors[0]


def recorded() -> tuple[int, int]:
    """(jobs, checks): every job recorded with its three checks, or not at all."""
    with session_scope() as session:
        return (session.scalar(select(func.count()).select_from(Job)),
                session.scalar(select(func.count()).select_from(Check)))


@pytest.mark.broker("private_redis")
def test_ingest_outlives_twenty_seconds_without_the_broker(pipeline, private_redis, tmp_path):
    _, state, restart = private_redis
    media = tmp_path / "media"
    manifest = write_recovery_manifest(media, 80)
    point_at_sandbox(pipeline)
    pipeline.start_beat()
    worker = pipeline.start_worker("-c", "8")
    state["proc"].send_signal(signal.SIGKILL)
    state["proc"].wait(5)
    down_at = time.monotonic()

    ingest = subprocess.Popen(voxqueue_command("ingest", str(manifest)), env=pipeline.env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    time.sleep(max(0.0, 20 - (time.monotonic() - down_at)))
    state["proc"] = restart()
    out, err = ingest.communicate(timeout=60)
    print(f"\ningest with the broker down for 20 s: exit {ingest.returncode} after "
          f"{time.monotonic() - down_at:.1f}s\n{err.strip()}")
    assert "batch recovery: 80 accepted, 0 rejected" in out
    assert recorded() == (80, 240)
    if ingest.returncode != 0:  # it gave up waiting: one line, and running it again finishes the job
        assert "recorded but not queued" in one_line(err)
        again = pipeline.cli("ingest", str(manifest))
        assert "80 already recorded" in again.stdout
    pipeline.wait("recovery", 90)

    report = pipeline.report("recovery")
    check_scores(report, media)
    for row in report:
        audio = media / f"pupil{row['id'][6:]}.wav"
        assert row["moderation"]["shumei"]["verdict"] == expected(audio, "shumei"), row["id"]
    stats = pipeline.sandbox("stats")
    accepted_once(stats, "gme", 80)
    accepted_once(stats, "shumei", 80)
    assert worker.poll() is None


@pytest.mark.broker("silent_server")
def test_a_broker_that_never_answers_is_one_line_and_stops_nobody_from_stopping(pipeline, tmp_path):
    manifest = write_recovery_manifest(tmp_path / "media", 10)
    point_at_sandbox(pipeline)
    logs = pipeline.logs
    worker_cmd = voxqueue_command("worker", "--processes", "1", "-c", "4")
    ports = {name: free_port() for name in ("api", "exporter")}
    servers = {name: voxqueue_command(name, "--port", str(port)) for name, port in ports.items()}
    with running(worker_cmd, pipeline.env, logs / "worker.log") as worker, \
            running(voxqueue_command("beat"), pipeline.env, logs / "beat.log") as beat, \
            contextlib.ExitStack() as stack:
        others = {name: stack.enter_context(running(cmd, pipeline.env, logs / f"{name}.log"))
                  for name, cmd in servers.items()}
        # Each serves while its broker never answers; a scrape waits once for the broker (5 s).
        wait_http(f"http://127.0.0.1:{ports['api']}/v1/openapi.json", others["api"], timeout=30)
        wait_until(lambda: "exporter listening" in (logs / "exporter.log").read_text(errors="replace"), 30)
        with urlopen(f"http://127.0.0.1:{ports['exporter']}/metrics", timeout=10) as answer:
            assert 'voxqueue_exporter_source_up{source="broker"} 0.0' in answer.read().decode()
        started = time.monotonic()
        proc = pipeline.cli("ingest", str(manifest), check=False, timeout=60)
        took = time.monotonic() - started
        assert proc.returncode == 1
        line = one_line(proc.stderr)
        assert "the broker did not answer" in line and "recorded but not queued" in line
        assert took < 30, f"ingest took {took:.1f}s to give up"
        assert recorded() == (10, 30)  # recorded whole: the workers' housekeeping sends it later

        stopped = {}
        processes = {"worker": worker, "beat": beat, **others}
        for name, process in processes.items():
            assert process.poll() is None, f"{name} exited on its own"
            process.send_signal(signal.SIGTERM)
        for name, process in processes.items():
            begun = time.monotonic()
            process.wait(15)
            stopped[name] = time.monotonic() - begun
    print(f"\nhung broker: ingest gave up after {took:.1f}s; SIGTERM stopped "
          + ", ".join(f"{name} in {seconds:.1f}s" for name, seconds in stopped.items()))
    assert all(seconds < 10 for seconds in stopped.values()), stopped
    for name in processes:
        assert "Traceback" not in (logs / f"{name}.log").read_text(errors="replace"), name
