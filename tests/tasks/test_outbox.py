"""Events written with the change that causes them (SQLite and PostgreSQL): one per job that ends,
one per batch whose last job ends (two jobs ending at once included), none without a URL, and
no extra statement on the hot path when the batch is not notified."""

from __future__ import annotations

import json
import threading
import time

from sqlalchemy import event, select

from config.settings import get_settings, reset_settings
from models import Batch, CheckStatus, Job, Notification
from models.db import autocommit, engine_for, session_scope, transaction
from models.report import job_report
from tasks import outbox
from tasks.ingest import ingest
from tasks.lifecycle import end, finish, take_lease
from tests.tasks.test_ingest import write_wav


def _batch(tmp_path, rows: int, services: str = "soe", notify: str | None = "http://127.0.0.1:9/hook") -> list[int]:
    """A batch of ``rows`` jobs notified at ``notify``; their check ids."""
    write_wav(tmp_path / "a.wav")
    lines = ["id,audio,ref_text,services"] + [f"clip{i},a.wav,red,\"{services}\"" for i in range(rows)]
    (tmp_path / "clips.csv").write_text("\n".join(lines) + "\n")

    def on_batch(session, batch):
        if notify:
            outbox.attach(session, batch, outbox.CLI_OWNER, notify)

    ingest(tmp_path / "clips.csv", on_batch=on_batch)
    with session_scope() as session:
        from models import Check

        return list(session.scalars(select(Check.id).order_by(Check.id)))


def _finish(check_id: int, **values) -> None:
    with transaction() as conn:
        lease = take_lease(conn, check_id, get_settings())
        finish(conn, lease, CheckStatus.DONE, suggested_score=80.0, **values)


def _events() -> list[dict]:
    with session_scope() as session:
        return [json.loads(n.body) for n in session.scalars(select(Notification).order_by(Notification.id))]


def test_a_job_that_ends_gets_one_event_with_its_report_object_and_the_last_one_the_batch(database_url, tmp_path):
    checks = _batch(tmp_path, 2)
    with transaction() as conn:
        lease = take_lease(conn, checks[0], get_settings())
    for _ in range(2):  # the second: a delivery whose lease lapsed finishing late: no second event
        with transaction() as conn:
            finish(conn, lease, CheckStatus.DONE, suggested_score=80.0)
    first = _events()
    assert [e["type"] for e in first] == ["job.finished"]
    with session_scope() as session:
        job = session.scalar(select(Job).where(Job.key == "clip0"))
        assert first[0]["data"] == job_report(job)
    _finish(checks[1])
    events = _events()
    assert [e["type"] for e in events] == ["job.finished", "job.finished", "batch.finished"]
    assert len({e["id"] for e in events}) == 3
    batch = events[2]["data"]
    assert batch["total"] == 2 and batch["finished"] is True
    assert batch["jobs"]["done"] == 2 and batch["services"]["soe"]["done"] == 2


def test_a_job_of_several_checks_ends_once_through_the_locked_path(database_url, tmp_path):
    checks = _batch(tmp_path, 1, services="soe,shumei")
    _finish(checks[0])
    assert _events() == []  # its shumei check is still open
    _finish(checks[1], verdict="PASS")
    assert [e["type"] for e in _events()] == ["job.finished", "batch.finished"]
    assert _events()[0]["data"]["status"] == "done"


def test_nothing_is_written_without_a_url_and_the_hot_path_keeps_its_two_statements(database_url, tmp_path):
    checks = _batch(tmp_path, 1, notify=None)
    statements: list[str] = []

    def count(_conn, _cursor, statement, *_args):
        statements.append(statement)

    with transaction() as conn:
        lease = take_lease(conn, checks[0], get_settings())
        event.listen(engine_for(database_url), "before_cursor_execute", count)
        try:
            finish(conn, lease, CheckStatus.DONE, suggested_score=80.0)
        finally:
            event.remove(engine_for(database_url), "before_cursor_execute", count)
    assert [s.split()[0] for s in statements] == ["UPDATE", "UPDATE"]  # the check, its job
    assert _events() == []


def _statements(database_url: str, run) -> list[str]:
    """The first word of every statement ``run()`` sends (BEGIN and COMMIT are not statements here)."""
    sent: list[str] = []

    def count(_conn, _cursor, statement, *_args):
        sent.append(statement.split()[0])

    event.listen(engine_for(database_url), "before_cursor_execute", count)
    try:
        run()
    finally:
        event.remove(engine_for(database_url), "before_cursor_execute", count)
    return sent


def test_an_soe_file_is_claimed_and_ended_in_one_statement_each_on_postgresql(database_url, tmp_path):
    checks = _batch(tmp_path, 1, notify=None)
    leases = []

    def claim():
        with autocommit() as conn:
            leases.append(take_lease(conn, checks[0], get_settings(), new_session_id="s-1"))

    claimed = _statements(database_url, claim)
    lease = leases[0]
    assert (lease.job.key, lease.job.batch, lease.session_id, lease.job.services) == ("clip0", "clips", "s-1", ("soe",))
    with session_scope() as session:
        job = session.scalar(select(Job).where(Job.key == "clip0"))
        assert (job.status, job.checks[0].status, job.checks[0].lease_until is not None) == ("running", "running", True)
    ended = _statements(database_url, lambda: end(lease, CheckStatus.DONE, suggested_score=81.5, chunks_sent=3))
    with session_scope() as session:
        job = session.scalar(select(Job).where(Job.key == "clip0"))
        check = job.checks[0]
        assert (job.status, check.status, check.suggested_score, check.chunks_sent) == ("done", "done", 81.5, 3)
        assert check.lease_until is None and check.finished_at is not None
        assert check.updated_at >= check.finished_at and job.updated_at >= check.finished_at
    if database_url.startswith("postgresql"):
        assert claimed == ["WITH"] and ended == ["WITH"]  # one round trip each, committed on its own
    else:
        assert claimed == ["UPDATE", "SELECT", "UPDATE"] and ended == ["UPDATE", "UPDATE"]
    assert _events() == []


def test_ending_a_notified_job_on_its_own_connection_writes_its_events_once(database_url, tmp_path):
    checks = _batch(tmp_path, 1)
    with autocommit() as conn:
        lease = take_lease(conn, checks[0], get_settings())
    end(lease, CheckStatus.DONE, suggested_score=80.0)
    end(lease, CheckStatus.DONE, suggested_score=80.0)  # a late second delivery: no second event
    assert [e["type"] for e in _events()] == ["job.finished", "batch.finished"]
    assert _events()[0]["data"]["status"] == "done"


def test_the_deployment_url_notifies_a_batch_that_names_none(database_url, tmp_path, monkeypatch):
    monkeypatch.setenv("VOXQUEUE_NOTIFY_URL", "http://127.0.0.1:9/default")
    monkeypatch.setenv("VOXQUEUE_NOTIFY_SECRET", "s" * 32)
    reset_settings()
    checks = _batch(tmp_path, 1, notify=None)
    _finish(checks[0])
    with session_scope() as session:
        rows = session.scalars(select(Notification)).all()
        assert {(n.type, n.url, n.endpoint_id) for n in rows} == {
            ("job.finished", "http://127.0.0.1:9/default", None), ("batch.finished", "http://127.0.0.1:9/default", None)}


def test_two_jobs_ending_at_once_write_one_batch_event(database_url, tmp_path):
    """The first transaction holds its change open while the second ends the other job: the
    second waits on the batch's lock, then sees both ended (without the lock, on PostgreSQL, each
    would see the other still running and neither would write it)."""
    checks = _batch(tmp_path, 2)
    second = threading.Thread(target=_finish, args=(checks[1],))
    with engine_for(database_url).connect() as first, first.begin():
        lease = take_lease(first, checks[0], get_settings())
        finish(first, lease, CheckStatus.DONE, suggested_score=80.0)
        second.start()
        time.sleep(0.5)  # the second is waiting (PostgreSQL: the batch's lock; SQLite: the writer's lock)
        waited = second.is_alive()
    second.join(30)
    assert waited
    assert [e["type"] for e in _events()].count("batch.finished") == 1


def test_a_batch_of_rejections_only_is_finished_at_once_by_the_api(database_url):
    from tasks.submit import submit
    from tasks.tokens import authenticate, create

    caller = authenticate(create("school"))
    done = submit("b", [(1, {"id": "x", "audio": "https://media.example/a.wav"})], token_id=caller.token_id,
                  notify_url="http://127.0.0.1:9/hook")  # no ref_text: rejected
    assert [j["status"] for j in done.jobs] == ["rejected"]
    assert [e["type"] for e in _events()] == ["batch.finished"]
    with session_scope() as session:
        assert session.scalar(select(Batch.notify_id).where(Batch.name == "b")) is not None
