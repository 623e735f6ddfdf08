"""Recovery at the settings a user has: a killed worker's or a lost broker's work resumes in seconds.

Nothing here shortens the lease, the stale rule or the housekeeping interval: the
point is what a user sees with the defaults. Each case runs 80 jobs of SOE, GME
and Shumei through real processes (sandbox, workers, beat) on Redis and
PostgreSQL, injects the fault mid-batch, and asserts that every job is done
within 60 s of it, with every score right and one accepted vendor submission
per GME and Shumei key. The times are printed; ``benchmarks/recovery.py``
measures them on their own.
"""

from __future__ import annotations

import signal
import time

import pytest

from tests.e2e.test_moderation import accepted_once, expected
from tests.e2e.test_soe_pipeline import check_scores
from tests.moderation_env import moderation_env, point_at_sandbox
from tests.pipeline import wait_until, write_recovery_manifest
from tests.recovery import done_jobs, in_flight

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.parametrize("database_url", ["postgresql"],
                                                                        indirect=True)]
JOBS = 80
WITHIN_S = 60


@pytest.fixture
def pipeline_env(tmp_path, private_redis) -> dict[str, str]:
    port, _, _ = private_redis
    return moderation_env(tmp_path, callbacks=False) | {"VOXQUEUE_BROKER_URL": f"redis://127.0.0.1:{port}/0"}


def start(pipeline, tmp_path, workers: int = 1):
    media = tmp_path / "media"
    manifest = write_recovery_manifest(media, JOBS)
    point_at_sandbox(pipeline)
    pipeline.sandbox("config", {"latency_ms": 50})
    beat = pipeline.start_beat()
    procs = [pipeline.start_worker("-c", "8") for _ in range(workers)]
    pipeline.cli("ingest", str(manifest))
    wait_until(lambda: in_flight() >= 4 and done_jobs() >= 5, 60, interval=0.05)
    return media, beat, procs


def finish(pipeline, media, fault_at: float, what: str) -> float:
    pipeline.wait("recovery", WITHIN_S - (time.monotonic() - fault_at))
    took = time.monotonic() - fault_at
    print(f"\n{what}: every job done {took:.1f}s after the fault")
    report = pipeline.report("recovery")
    assert len(report) == JOBS
    check_scores(report, media)
    for row in report:
        audio = media / f"pupil{row['id'][6:]}.wav"
        assert row["moderation"]["gme"]["verdict"] == expected(audio, "gme"), row["id"]
        assert row["moderation"]["shumei"]["verdict"] == expected(audio, "shumei"), row["id"]
    stats = pipeline.sandbox("stats")
    accepted_once(stats, "gme", JOBS)
    accepted_once(stats, "shumei", JOBS)
    return took


def test_a_killed_worker_started_again_finishes_within_a_minute(pipeline, tmp_path):
    media, _, (worker,) = start(pipeline, tmp_path)
    held, done = in_flight(), done_jobs()
    pipeline.kill_worker(worker)
    fault_at = time.monotonic()
    pipeline.start_worker("-c", "8")
    finish(pipeline, media, fault_at, f"worker SIGKILLed holding {held} checks ({done}/{JOBS} jobs done), started again")


def test_the_surviving_worker_finishes_what_the_killed_one_held(pipeline, tmp_path):
    media, _, (victim, survivor) = start(pipeline, tmp_path, workers=2)
    held, done = in_flight(), done_jobs()
    pipeline.kill_worker(victim)
    fault_at = time.monotonic()
    finish(pipeline, media, fault_at, f"one of two workers SIGKILLed ({held} checks in flight, {done}/{JOBS} done)")
    assert survivor.poll() is None


def test_a_broker_restarted_without_its_data_loses_nothing(pipeline, tmp_path, private_redis):
    _, state, restart = private_redis
    media, beat, (worker,) = start(pipeline, tmp_path)
    done = done_jobs()
    state["proc"].send_signal(signal.SIGKILL)  # a crash: no persistence, so every message is gone
    state["proc"].wait(5)
    fault_at = time.monotonic()
    state["proc"] = restart()
    finish(pipeline, media, fault_at, f"broker killed and restarted empty ({done}/{JOBS} jobs done)")
    assert worker.poll() is None, "the worker lived through the broker crash"
    assert beat.poll() is None, "the beat lived through the broker crash"


def test_a_worker_stopped_with_sigterm_hands_back_at_once(pipeline, tmp_path):
    """Each vendor call takes a second here, so a message of four SOE files or ten Shumei clips
    runs for many seconds: a warm shutdown that ran them to the end would take that long."""
    media = tmp_path / "media"
    manifest = write_recovery_manifest(media, JOBS)
    point_at_sandbox(pipeline)
    pipeline.sandbox("config", {"latency_ms": 1000})
    pipeline.start_beat()
    leaving = pipeline.start_worker("-c", "8")
    pipeline.cli("ingest", str(manifest))
    wait_until(lambda: in_flight() >= 8, 60, interval=0.05)
    pipeline.start_worker("-c", "8")

    held = in_flight()
    leaving.send_signal(signal.SIGTERM)
    stopping = time.monotonic()
    leaving.wait(30)
    stopped_in = time.monotonic() - stopping
    log = (pipeline.logs / "worker-0.log").read_text(errors="replace")
    print(f"\nSIGTERM with {held} checks in flight: the worker stopped in {stopped_in:.1f}s")
    assert stopped_in < 10
    assert "handing back" in log
    pipeline.sandbox("config", {"latency_ms": 50})
    finish(pipeline, media, stopping, "worker stopped with SIGTERM, the other finished its work")


def test_two_beats_still_poll_as_one_after_the_broker_restarts(pipeline, private_redis):
    _, state, restart = private_redis
    worker = pipeline.start_worker("-c", "4")
    beats = [pipeline.start_beat(), pipeline.start_beat()]
    time.sleep(3)
    state["proc"].send_signal(signal.SIGKILL)
    state["proc"].wait(5)
    state["proc"] = restart()
    log = pipeline.logs / "worker-0.log"
    since = len(log.read_text(errors="replace"))
    wait_until(lambda: "Task voxqueue.poll.gme[" in log.read_text(errors="replace")[since:], 30)
    window, since = 10.0, len(log.read_text(errors="replace"))
    time.sleep(window)

    rounds = log.read_text(errors="replace")[since:].count("Task voxqueue.poll.gme[") // 2  # received, succeeded
    print(f"\n{rounds} GME polling rounds in {window:.0f}s with two beats, after the broker restarted empty")
    assert 0 < rounds <= window / 1.0 + 2  # VOXQUEUE_POLL_INTERVAL=1: what one beat schedules
    assert all(beat.poll() is None for beat in beats) and worker.poll() is None
