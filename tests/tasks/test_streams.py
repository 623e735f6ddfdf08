"""Live streams: every violation counts, before and after ``stream close`` and after the end.

Callbacks are stored as the webhook receiver stores them and merged by the merge task,
on SQLite and PostgreSQL; the end comes from Tupu's end callback or the grace period.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time

import pytest
from sqlalchemy import update

from models import Batch, CallbackEvent, Check, Job
from models.base import utcnow
from models.db import session_scope
from models.report import job_report
from models.stats import counts
from tasks import housekeeping, results, streams
from tasks.results import merge
from vendors import tupu

VULGAR = "5c8213b9bc807806aab0a574"  # Tupu's task ids: labels read "<task>:<label number>"
SPEECH_REVIEW = "5caee6b2a76925c55a09a6d2"
TASK_ID = "5f0c0d4e3b1e2a0001a1b2c3"


def violation(label: int = 1, *, review: bool = False, task: str = VULGAR) -> dict:
    """A result callback: label 0 is normal, ``review`` marks an uncertain finding (REVIEW)."""
    return {"code": 0, "message": "success", "requestId": TASK_ID,
            task: {"speechs": [{"requestId": TASK_ID, "label": label, "review": review}]}}


def end(code: int = 0) -> dict:
    return {"code": code, "requestId": TASK_ID, "status": "end", "nonce": "0.5", "timestamp": 1629969759333}


@pytest.fixture
def check_id(database_url) -> int:
    """A running Tupu stream, submitted (its vendor task id recorded)."""
    with session_scope() as session:
        job = Job(batch=Batch(name="live"), key="live-1", external_id="live-1", seq=1,
                  stream="rtmp://live.example/room/1", services=["tupu"], options={}, status="running")
        check = Check(job=job, service="tupu", status="running", vendor_task_id=TASK_ID)
        session.add(check)
        session.flush()
        return check.id


def deliver(data: dict) -> CallbackEvent:
    """Store the callback as the receiver does, merge it, and return the event as merged."""
    with session_scope() as session:
        event = CallbackEvent(vendor="tupu", vendor_task_id=TASK_ID, body=data)
        session.add(event)
        session.flush()
        event_id = event.id
    merge(event_id)
    with session_scope() as session:
        return session.get(CallbackEvent, event_id)


def row(check_id: int) -> dict:
    """The job's report row, as ``voxqueue report`` prints it."""
    with session_scope() as session:
        return job_report(session.get(Check, check_id).job)


def state(check_id: int) -> tuple:
    r = row(check_id)
    check = r["moderation"]["tupu"]
    return check["status"], check["verdict"], r["status"], r["verdict"]


def test_a_violation_before_the_close_counts(check_id):
    assert deliver(violation(review=True)).state == "merged"
    assert state(check_id) == ("running", "REVIEW", "running", "REVIEW")
    assert streams.mark_closing(check_id) == streams.Closed("closing", "REVIEW")
    assert deliver(end()).state == "merged"
    assert state(check_id) == ("done", "REVIEW", "done", "REVIEW")


def test_after_the_close_the_stream_is_closing_and_its_violations_count(check_id):
    assert streams.mark_closing(check_id) == streams.Closed("closing", None)
    assert state(check_id) == ("closing", None, "running", None)  # the job keeps its contract's states
    with session_scope() as session:
        assert counts(session, "live").checks == {"tupu": {"running": 1}}
        assert counts(session, "live").closing == {"tupu": 1}
    assert deliver(violation(2)).state == "merged"
    assert state(check_id) == ("closing", "REJECT", "running", "REJECT")
    assert deliver(end()).state == "merged"
    assert state(check_id) == ("done", "REJECT", "done", "REJECT")
    assert row(check_id)["moderation"]["tupu"]["labels"] == ["vulgar:2"]


def test_every_violation_counts_reject_over_review_over_pass(check_id):
    deliver(violation(0))  # a clean result (callbackRules 3 sends them too)
    assert state(check_id)[1] == "PASS"
    deliver(violation(3, review=True, task=SPEECH_REVIEW))
    assert state(check_id)[1] == "REVIEW"
    deliver(violation(1))
    assert state(check_id)[1] == "REJECT"
    streams.mark_closing(check_id)
    deliver(violation(0))
    deliver(violation(2, review=True))
    deliver(end())
    assert state(check_id) == ("done", "REJECT", "done", "REJECT")
    assert row(check_id)["moderation"]["tupu"]["labels"] == ["speech_review:3", "vulgar:1", "vulgar:2"]


def test_a_violation_after_the_end_raises_pass_to_reject_and_is_recorded(check_id, caplog):
    streams.mark_closing(check_id)
    deliver(end())
    assert state(check_id) == ("done", "PASS", "done", "PASS")
    with caplog.at_level(logging.WARNING, logger="voxqueue.results"):
        late = deliver(violation(1))
    assert late.state == "merged"
    assert state(check_id) == ("done", "REJECT", "done", "REJECT")
    (line,) = [r for r in caplog.records if "after its end" in r.getMessage()]
    assert "PASS -> REJECT" in line.getMessage() and TASK_ID in line.getMessage()
    with session_scope() as session:
        recorded = session.get(Check, check_id).result
    assert recorded["ended_by"] == "end callback"
    assert [(c["was"], c["verdict"], c["labels"]) for c in recorded["after_end"]] == [("PASS", "REJECT", ["vulgar:1"])]
    again = deliver(violation(1))  # the same callback twice: one result
    assert (again.state, again.note) == ("ignored", "check already done")
    assert deliver(end()).state == "ignored"
    with session_scope() as session:
        assert len(session.get(Check, check_id).result["after_end"]) == 1


def test_an_error_callback_fails_a_running_stream_but_not_a_closing_one(check_id):
    error = {"code": 5001, "message": "stream pull failed", "requestId": TASK_ID}
    streams.mark_closing(check_id)
    assert deliver(error).state == "ignored"
    assert state(check_id)[0] == "closing"
    with session_scope() as session:
        session.execute(update(Check).where(Check.id == check_id).values(status="running"))
    assert deliver(error).state == "merged"
    assert state(check_id)[0] == "failed"


def set_closed_at(check_id: int, seconds_ago: float) -> None:
    with session_scope() as session:
        session.execute(update(Check).where(Check.id == check_id)
                        .values(closed_at=utcnow() - dt.timedelta(seconds=seconds_ago)))


def test_the_grace_period_ends_a_closing_stream_whose_end_callback_does_not_come(
        check_id, redis_url, monkeypatch):
    monkeypatch.setenv("VOXQUEUE_BROKER_URL", redis_url)
    monkeypatch.setenv("VOXQUEUE_TUPU_CLOSE_GRACE_SECONDS", "120")
    from config.settings import reset_settings
    reset_settings()
    streams.mark_closing(check_id)
    deliver(violation(1, review=True))
    set_closed_at(check_id, 100)
    housekeeping.recover()
    assert state(check_id) == ("closing", "REVIEW", "running", "REVIEW")
    set_closed_at(check_id, 121)
    housekeeping.recover()  # what the beat runs every housekeeping round
    assert state(check_id) == ("done", "REVIEW", "done", "REVIEW")
    with session_scope() as session:
        assert session.get(Check, check_id).result["ended_by"] == "no end callback 120 s after the close"
    assert deliver(end()).state == "ignored"  # the end, late: already ended
    deliver(violation(1))  # a violation, later still: it counts
    assert state(check_id) == ("done", "REJECT", "done", "REJECT")


def test_a_violation_merged_while_the_end_is_being_merged_is_not_lost(check_id):
    """The end's merge holds the row; the violation's merge waits, then finds the stream ended
    and raises its verdict. Without the lock the end would write back the verdict it read."""
    streams.mark_closing(check_id)
    merged = threading.Event()
    with session_scope() as session:
        check = session.get(Check, check_id)
        results.lock_check(session, check)
        racer = threading.Thread(target=lambda: (deliver(violation(1)), merged.set()))
        racer.start()
        time.sleep(0.5)
        assert not merged.is_set()  # it waits for the row
        assert results.apply(session, check, tupu.parse_event(end()))
    racer.join(30)
    assert merged.is_set()
    assert state(check_id) == ("done", "REJECT", "done", "REJECT")
