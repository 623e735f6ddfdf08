"""SOE end to end: manifest → ingest → Celery worker → sandbox → database → report."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest

from sandbox.soe import score
from tests.pipeline import CHUNK_BYTES, write_speech_like_wav

pytestmark = [pytest.mark.e2e]

WORDS = ["red", "green", "the quick brown fox", "good morning", "she sells sea shells", "hello world"]


def make_manifest(folder: Path, count: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    manifest = folder / "readings.csv"
    with manifest.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "audio", "ref_text", "eval_mode", "score_coeff"])
        for i in range(count):
            seconds = 0.05 + (i % 10) * 0.06  # 1.6 KB .. 19 KB: 1 to 5 chunks of 4 KB
            write_speech_like_wav(folder / f"pupil{i:03}.wav", seconds, seed=i)
            mode = "word" if i % 7 == 0 else "sentence"
            writer.writerow([f"pupil-{i:03}", f"pupil{i:03}.wav", WORDS[i % len(WORDS)], mode, 1 + (i % 4)])
    return manifest


def expected_score(audio: Path, ref_text: str, eval_mode: int, coeff: float) -> dict:
    return score(audio.read_bytes(), ref_text, eval_mode, coeff)


def check_scores(report: list[dict], folder: Path) -> None:
    for row in report:
        i = int(row["id"].split("-")[1])
        audio = folder / f"pupil{i:03}.wav"
        expected = expected_score(audio, WORDS[i % len(WORDS)], 0 if i % 7 == 0 else 1, float(1 + (i % 4)))
        soe = row["soe"]
        assert row["status"] == "done", row
        assert soe["suggested_score"] == expected["SuggestedScore"], row["id"]
        assert soe["pron_accuracy"] == expected["PronAccuracy"], row["id"]
        assert soe["pron_fluency"] == expected["PronFluency"], row["id"]
        assert soe["pron_completion"] == expected["PronCompletion"], row["id"]
        assert soe["chunks"] == math.ceil(audio.stat().st_size / CHUNK_BYTES), row["id"]


def test_fifty_files_scored_exactly_once(pipeline, tmp_path):
    folder = tmp_path / "readings"
    manifest = make_manifest(folder, 50)
    pipeline.start_worker("-c", "4", "--loglevel", "DEBUG")  # a line per vendor call, as well

    ingested = pipeline.cli("ingest", str(manifest))
    assert "batch readings: 50 accepted, 0 rejected" in ingested.stdout
    pipeline.cli("wait", "--batch", "readings", "--timeout", "120")

    report = pipeline.report("readings")
    assert [r["id"] for r in report] == [f"pupil-{i:03}" for i in range(50)]
    check_scores(report, folder)
    stats = pipeline.sandbox("stats")
    accepted = stats["accepted"]["soe"]
    assert sorted(accepted) == sorted(r["soe"]["session_id"] for r in report)
    assert set(accepted.values()) == {1}

    log = (pipeline.logs / "worker-0.log").read_text(errors="replace")
    calls = [line for line in log.splitlines() if "voxqueue.vendors: vendor call" in line]
    assert len(calls) >= 50 and all("service=soe" in line and "job=pupil-" in line for line in calls)
    evaluated = [line for line in log.splitlines() if "soe evaluated" in line]
    assert len(evaluated) == 50 and all("vendor_request_id=" in line for line in evaluated)

    before = stats["requests"]
    again = pipeline.cli("ingest", str(manifest))
    assert "0 accepted, 0 rejected, 50 already recorded" in again.stdout
    assert len(pipeline.report("readings")) == 50
    assert pipeline.sandbox("stats")["requests"] == before


def test_dropped_connections_and_throttling_still_score_every_file(pipeline, tmp_path):
    folder = tmp_path / "readings"
    manifest = make_manifest(folder, 24)
    pipeline.sandbox("config", {"seed": 7, "faults": [
        {"kind": "drop", "service": "soe", "rate": 0.1},
        {"kind": "drop_after", "service": "soe", "rate": 0.1},
        {"kind": "throttle", "service": "soe", "rate": 0.15},
    ]})
    pipeline.start_worker("-c", "4")

    pipeline.cli("ingest", str(manifest))
    pipeline.cli("wait", "--batch", "readings", "--timeout", "150")

    report = pipeline.report("readings")
    check_scores(report, folder)
    stats = pipeline.sandbox("stats")
    assert stats["faults"].get("drop", 0) > 0 and stats["faults"].get("throttle", 0) > 0
    assert stats["faults"].get("drop_after", 0) > 0
    assert set(stats["accepted"]["soe"].values()) == {1}


def test_a_large_batch_travels_four_files_to_a_task_and_retries_them_apart(pipeline, tmp_path):
    """250 files, ingested in writes of 50, 100 and 100 rows: the first 50 go one to a message, the
    next 100 four to a message, and the last write, the batch's end, one to a message again (up to
    ``dispatch.TAIL_ALONE``); chunks dropped often enough that some files fail all their in-place
    tries and go again."""
    import redis

    from tasks.dispatch import TAIL_ALONE

    folder = tmp_path / "readings"
    manifest = make_manifest(folder, 250)
    pipeline.sandbox("config", {"seed": 11, "faults": [{"kind": "drop", "service": "soe", "rate": 0.4}]})

    pipeline.cli("ingest", str(manifest))
    queued = redis.Redis.from_url(pipeline.env["VOXQUEUE_BROKER_URL"]).llen("soe")
    assert TAIL_ALONE >= 100
    assert queued == 50 + 100 // 4 + 100  # 175 messages
    # 40 % of requests dropped would open SOE's circuit every few seconds and hold the whole batch
    # in rounds of its cooldown (the circuit's own test is below): here it stays shut, and the
    # retries seen are the files' own.
    pipeline.env["VOXQUEUE_BREAKER_THRESHOLD"] = "100000"
    pipeline.env["VOXQUEUE_SOE_QPS"] = "2000"  # ~2,000 calls: not 40 s held by the default 50/s
    # 32 threads in one process, as many as the default fleet (2 processes x 16) has: the files
    # wait out their dropped chunks together, not 8 at a time
    pipeline.start_worker("-c", "32")
    pipeline.cli("wait", "--batch", "readings", "--timeout", "180")

    report = pipeline.report("readings")
    assert len(report) == 250
    check_scores(report, folder)
    stats = pipeline.sandbox("stats")
    assert sorted(stats["accepted"]["soe"]) == sorted(r["soe"]["session_id"] for r in report)
    assert set(stats["accepted"]["soe"].values()) == {1}
    log = (pipeline.logs / "worker-0.log").read_text(errors="replace")
    assert "Retry in" in log  # some files went again, in a retry message of their own group
    assert "circuit open" not in log


def _checks_by_status() -> dict[str, int]:
    from sqlalchemy import func, select

    from models import Check
    from models.db import session_scope

    with session_scope() as session:
        return dict(session.execute(select(Check.status, func.count()).group_by(Check.status)).all())


def test_a_group_steps_aside_together_while_the_circuit_is_open(pipeline, tmp_path):
    """With SOE's circuit open, a four-file message claims its first file, finds the circuit open
    and sends all four again: the other three are not claimed only to step aside in turn."""
    import redis

    from tasks.breaker import Breaker
    from tests.pipeline import wait_until

    folder = tmp_path / "readings"
    manifest = make_manifest(folder, 250)
    pipeline.cli("ingest", str(manifest))  # 50 messages of one file, 25 of four, 100 of one
    client = redis.Redis.from_url(pipeline.env["VOXQUEUE_BROKER_URL"])
    breaker = Breaker(client, threshold=1, cooldown=15.0)
    assert breaker.failure("soe")  # opened, as an outage would
    pipeline.env["VOXQUEUE_SOE_QPS"] = "2000"  # ~1,000 calls once it closes, not 20 s at the default 50/s
    pipeline.start_worker("-c", "8")

    def still_open(condition):
        """The outage goes on until the test has seen every message step aside: on a slow machine
        the worker's start alone may take most of one 15 s cooldown."""
        def check():
            client.pexpire(breaker.open_key("soe"), 15_000)
            return condition()
        return check

    wait_until(still_open(lambda: _checks_by_status().get("running", 0) >= 50 + 25 + 100), 90, interval=0.1)
    wait_until(still_open(lambda: client.llen("soe") == 0), 30, interval=0.1)  # every message taken once
    stepped_aside = _checks_by_status()
    assert stepped_aside == {"running": 175, "pending": 75}, stepped_aside  # one claim per message

    pipeline.cli("wait", "--batch", "readings", "--timeout", "120")
    check_scores(pipeline.report("readings"), folder)
    assert set(pipeline.sandbox("stats")["accepted"]["soe"].values()) == {1}
