"""A check's lifecycle in process (SQLite and PostgreSQL): each transition applied by the module
that owns it (tasks.lifecycle), and the tasks' failure paths that go through it (tasks.soe,
tasks.results, tasks.retry), called as plain functions."""

from __future__ import annotations

import datetime as dt
import json

import redis
from sqlalchemy import select, update

from config.settings import get_settings
from models import Check, CheckStatus, Job, JobStatus
from models.base import utcnow
from models.db import session_scope, transaction
from tasks import lifecycle, policy, results, soe
from tasks.ingest import ingest
from tasks.retry import retry_failed
from tests.tasks.test_ingest import write_wav
from vendors.errors import Disposition, VendorError

RUNNING, DONE, FAILED = CheckStatus.RUNNING.value, CheckStatus.DONE.value, CheckStatus.FAILED.value


def _checks(tmp_path, rows: int, services: str = "shumei") -> list[int]:
    write_wav(tmp_path / "a.wav")
    lines = ["id,audio,services,ref_text"] + [f"clip{i},a.wav,{services},red" for i in range(rows)]
    (tmp_path / "clips.csv").write_text("\n".join(lines) + "\n")
    ingest(tmp_path / "clips.csv")
    with session_scope() as session:
        return list(session.scalars(select(Check.id).order_by(Check.id)))


def _set(check_id: int, **values) -> None:
    with transaction() as conn:
        conn.execute(update(Check).where(Check.id == check_id).values(**values))


def _row(check_id: int) -> dict:
    with session_scope() as session:
        check = session.get(Check, check_id)
        return {
            "status": check.status,
            "attempts": check.attempts,
            "leased": check.lease_until is not None,
            "reason": check.error_reason,
            "error": check.error,
            "job": check.job.status,
            "verdict": check.verdict,
            "session_id": check.session_id,
            "chunks": check.chunks_sent,
            "vendor_task_id": check.vendor_task_id,
        }


def test_the_transitions_are_between_known_states_and_nothing_leaves_done():
    states = {s.value for s in CheckStatus}
    for sources, target in lifecycle.TRANSITIONS.values():
        assert set(sources) | {target} <= states
        assert DONE not in sources  # a result, once recorded, is never changed by a transition


def test_an_open_check_fails_and_its_job_with_it_an_ended_one_does_not_move(database_url, tmp_path):
    first, second = _checks(tmp_path, 2)
    _set(second, status=DONE)
    with transaction() as conn:
        assert lifecycle.fail_check(conn, first, "auth", "shumei: bad key") is True
        assert lifecycle.fail_check(conn, second, "auth", "shumei: bad key") is False
    assert _row(first)["status"] == FAILED
    assert (_row(first)["reason"], _row(first)["job"]) == ("auth", JobStatus.FAILED.value)
    assert (_row(second)["status"], _row(second)["reason"]) == (DONE, None)


def test_a_closing_stream_completes_a_failed_check_does_not(database_url, tmp_path):
    closing, failed = _checks(tmp_path, 2)
    _set(closing, status=RUNNING)
    with transaction() as conn:
        assert lifecycle.close(conn, closing) is True
        assert lifecycle.close(conn, closing) is False  # closing already
    assert _row(closing)["status"] == CheckStatus.CLOSING.value
    _set(failed, status=FAILED, error="x")
    with transaction() as conn:
        assert lifecycle.complete_check(conn, closing, verdict="REVIEW") is True
        assert lifecycle.complete_check(conn, failed, verdict="PASS") is False
    assert (_row(closing)["status"], _row(closing)["verdict"], _row(closing)["job"]) == (
        DONE,
        "REVIEW",
        "done",
    )
    assert _row(failed)["status"] == FAILED


def test_retry_later_counts_attempts_but_not_throttling_and_gives_up_by_the_policy(
    database_url, tmp_path
):
    fresh, last, ended = _checks(tmp_path, 3)
    _set(last, attempts=policy.MODERATION.attempts - 1)
    _set(ended, status=DONE)
    with transaction() as conn:
        throttled = lifecycle.retry_later(
            conn,
            [fresh, last, ended],
            "http_429",
            "slow down",
            counted=False,
            policy=policy.MODERATION,
        )
    assert (throttled.ids, throttled.failed) == (
        [fresh, last],
        [],
    )  # an ended check is not sent again
    assert _row(fresh)["attempts"] == 0
    with transaction() as conn:
        later = lifecycle.retry_later(
            conn, [fresh, last], "http_5xx", "HTTP 503", counted=True, policy=policy.MODERATION
        )
    assert (later.ids, later.attempts, later.failed) == ([fresh], 1, [last])
    row = _row(fresh)
    assert (row["status"], row["attempts"], row["leased"], row["reason"], row["error"]) == (
        "pending",
        1,
        False,
        "http_5xx",
        "HTTP 503",
    )
    assert _row(last)["status"] == FAILED
    assert _row(last)["error"] == f"gave up after {policy.MODERATION.attempts} attempts: HTTP 503"


def _soe_lease(tmp_path):
    (check_id,) = _checks(tmp_path, 1, services="soe")
    with transaction() as conn:
        return lifecycle.take_lease(conn, check_id, get_settings(), new_session_id="s-1")


def test_soe_a_retryable_error_releases_with_an_attempt_counted_from_the_lease(
    database_url, tmp_path
):
    lease = _soe_lease(tmp_path)
    error = VendorError("soe", "session_gone", "InternalError", disposition=Disposition.RESTART)
    wait = soe._handle_error(lease, error, get_settings())
    assert 0 < wait <= policy.soe(get_settings()).cap
    row = _row(lease.check_id)
    assert (row["status"], row["attempts"], row["leased"], row["reason"]) == (
        RUNNING,
        1,
        False,
        "session_gone",
    )
    assert (
        row["session_id"] not in (None, "s-1") and row["chunks"] == 0
    )  # a new session from the start


def test_soe_fails_for_good_on_a_permanent_error_or_its_last_attempt(
    database_url, tmp_path, monkeypatch
):
    lease = _soe_lease(tmp_path)
    _set(lease.check_id, vendor_task_id="s-1")
    soe._handle_error(
        lease,
        VendorError("soe", "auth", "AuthFailure", disposition=Disposition.PERMANENT),
        get_settings(),
    )
    row = _row(lease.check_id)
    assert (row["status"], row["reason"], row["job"], row["vendor_task_id"]) == (
        FAILED,
        "auth",
        "failed",
        None,
    )

    monkeypatch.setenv("VOXQUEUE_SOE_MAX_ATTEMPTS", "1")
    from config.settings import reset_settings

    reset_settings()
    with transaction() as conn:
        assert lifecycle.reset(conn, lease.check_id)
        again = lifecycle.take_lease(conn, lease.check_id, get_settings(), new_session_id="s-2")
    error = VendorError("soe", "http_5xx", "HTTP 503", disposition=Disposition.RETRY)
    assert soe._handle_error(again, error, get_settings()) is None
    assert _row(lease.check_id)["status"] == FAILED


def test_results_a_poll_past_its_deadline_fails_the_check_through_the_lifecycle(
    database_url, tmp_path
):
    (check_id,) = _checks(tmp_path, 1)
    _set(
        check_id,
        status=RUNNING,
        vendor_task_id="bt-1",
        deadline_at=utcnow() - dt.timedelta(seconds=1),
    )
    with session_scope() as session:
        check = session.get(Check, check_id)
        results.reschedule(check, utcnow())
        assert (check.status, check.job.status) == (
            FAILED,
            JobStatus.FAILED.value,
        )  # the session sees it
    assert _row(check_id)["reason"] == "result_timeout"


def test_results_a_closed_stream_ends_with_the_strictest_verdict_merged(database_url, tmp_path):
    (check_id,) = _checks(tmp_path, 1)
    _set(check_id, status=CheckStatus.CLOSING.value, verdict="REVIEW", labels=["ad"])
    with session_scope() as session:
        results.finish_stream(session, session.get(Check, check_id), ended_by="a test")
    row = _row(check_id)
    assert (row["status"], row["verdict"], row["job"]) == (DONE, "REVIEW", JobStatus.DONE.value)


def test_voxqueue_retry_resets_failed_checks_and_sends_them(database_url, redis_url, tmp_path):
    failed, done = _checks(tmp_path, 2)
    _set(
        failed,
        status=FAILED,
        attempts=3,
        error="x",
        error_reason="auth",
        session_id="old",
        chunks_sent=2,
    )
    _set(done, status=DONE)
    with session_scope() as session:  # the job follows its check
        session.execute(update(Job).values(status=JobStatus.FAILED.value))
    assert retry_failed(batch="clips") == 1
    row = _row(failed)
    assert (row["status"], row["attempts"], row["reason"], row["session_id"], row["chunks"]) == (
        "pending",
        0,
        None,
        None,
        0,
    )
    assert row["job"] == JobStatus.PENDING.value
    message = redis.Redis.from_url(redis_url).lrange("shumei", 0, -1)
    assert (
        len(message) == 1 and json.loads(message[0])["headers"]["task"] == "voxqueue.shumei.submit"
    )
