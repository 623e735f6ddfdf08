"""Tupu live streams end to end: sandbox, workers, webhook receiver and beat as real processes.

Tupu judges the audio it already pulled after it accepts a close, and a task has ended
only when a callback carries ``status`` (seed 001): the sandbox is told to send those
results after the close answer and before the end callback, as the vendor does.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from models import CallbackEvent, Check, Job
from models.db import session_scope
from sandbox.moderation import verdict_for
from tests.moderation_env import moderation_env, point_at_sandbox, start_webhooks
from tests.sandbox.moderation_helpers import stream_with

pytestmark = [pytest.mark.e2e]

LONG = 600.0  # nothing is judged before the close, and no stream ends by itself


@pytest.fixture
def pipeline_env(tmp_path) -> dict[str, str]:
    return moderation_env(tmp_path)


def write_streams(folder: Path, streams: dict[str, str]) -> Path:
    manifest = folder / "streams.jsonl"
    manifest.write_text("".join(json.dumps({"id": job_id, "stream": url, "services": "tupu"}) + "\n"
                                for job_id, url in streams.items()), encoding="utf-8")
    return manifest


def start(pipeline, streams: dict[str, str], tmp_path: Path, **sandbox_config) -> None:
    """The whole pipeline, the sandbox configured, the streams ingested and submitted to Tupu."""
    point_at_sandbox(pipeline)
    pipeline.sandbox("config", {"result_delay_s": LONG, "tupu_stream_duration_s": LONG, **sandbox_config})
    start_webhooks(pipeline)
    pipeline.start_beat()
    pipeline.start_worker("-c", "4")
    pipeline.cli("ingest", str(write_streams(tmp_path / "media", streams)))
    deadline = time.monotonic() + 60
    while not all(row["moderation"]["tupu"]["vendor_task_id"] for row in pipeline.report("streams")):
        assert time.monotonic() < deadline, "the streams were not submitted within 60 s"
        time.sleep(0.5)


def close(pipeline, job_id: str) -> str:
    return pipeline.cli("stream", "close", job_id).stdout.strip()


def assert_verdicts(pipeline, streams: dict[str, str]) -> None:
    for row in pipeline.report("streams"):
        expected = verdict_for(streams[row["id"]].encode(), "tupu")[0]
        tupu = row["moderation"]["tupu"]
        assert (row["status"], tupu["status"]) == ("done", "done"), row
        assert (tupu["verdict"], row["verdict"]) == (expected, expected), row


def test_a_violation_sent_after_stream_close_returns_counts(pipeline, tmp_path):
    streams = {f"live-{v.lower()}": stream_with(v) for v in ("REJECT", "REVIEW", "PASS")}
    start(pipeline, streams, tmp_path, tupu_result_after_close_s=2.0)
    for job_id in streams:
        assert close(pipeline, job_id) == (
            f"stream {job_id} closing: verdict so far PASS; the final verdict follows Tupu's end "
            "callback (or the 300 s grace period)")
    pipeline.wait("streams", 60)
    assert_verdicts(pipeline, streams)
    with session_scope() as session:
        for check in session.scalars(select(Check).join(Job)):
            events = session.scalars(select(CallbackEvent).where(CallbackEvent.check_id == check.id)
                                     .order_by(CallbackEvent.id)).all()
            result, end = events  # the result of the audio pulled before the close, then the end
            assert check.closed_at < result.received_at <= end.received_at
            assert (end.state, "status" in end.body) == ("merged", True)
            # The two merges may run in either order: a violation merged after the end still
            # raises the verdict (merged); a PASS result after the end changes nothing (ignored).
            assert result.state in (("merged",) if check.verdict != "PASS" else ("merged", "ignored")), result.note
    assert close(pipeline, "live-reject") == "stream live-reject closed: REJECT"  # again: harmless


def test_stream_close_succeeds_through_transient_failures_of_the_close_call(pipeline, tmp_path):
    streams = {f"live-{i}": stream_with(v) for i, v in enumerate(["REJECT", "REVIEW", "PASS"] * 2)}
    faults = [{"kind": "error5xx", "rate": 0.2, "service": "tupu", "action": "close"},
              {"kind": "drop", "rate": 0.1, "service": "tupu", "action": "close"}]
    start(pipeline, streams, tmp_path, tupu_result_after_close_s=0.5, seed=11, faults=faults)
    for job_id in streams:
        assert close(pipeline, job_id).startswith(f"stream {job_id} clos")
    pipeline.wait("streams", 60)
    assert_verdicts(pipeline, streams)
    stats = pipeline.sandbox("stats")
    faulted = stats["faults_by_action"].get("tupu.close", 0)
    print(f"\nclose calls: {stats['requests']['tupu.close']}, faulted: {faulted}")
    assert faulted > 0 and stats["requests"]["tupu.close"] == len(streams) + faulted


def test_a_close_that_keeps_failing_leaves_the_stream_running_to_close_later(pipeline, tmp_path):
    streams = {"live-1": stream_with("REJECT")}
    start(pipeline, streams, tmp_path, tupu_result_after_close_s=0.5,
          faults=[{"kind": "error5xx", "rate": 1.0, "service": "tupu", "action": "close"}])
    failed = pipeline.cli("stream", "close", "live-1", check=False)
    assert (failed.returncode, failed.stdout) == (1, "")
    (line,) = failed.stderr.strip().splitlines()
    assert line.startswith("voxqueue: error: stream 'live-1' not closed: tupu: gave up after 6 attempts")
    assert "still running" in line
    (row,) = pipeline.report("streams")
    assert (row["status"], row["moderation"]["tupu"]["status"]) == ("running", "running")

    pipeline.sandbox("config", {"faults": []})
    assert close(pipeline, "live-1").startswith("stream live-1 closing")
    pipeline.wait("streams", 60)
    assert_verdicts(pipeline, streams)
