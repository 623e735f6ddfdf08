"""Delivering events to a real receiver (SQLite and PostgreSQL): signed with the URL's secret, once
on 2xx, retried with backoff and the same id and body otherwise, dead after the retry time, sent
again by `notify retry`."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import select, update

from config.settings import get_settings, reset_settings
from models import Notification
from models.base import utcnow
from models.db import session_scope, transaction
from tasks import keys, notify, outbox
from tests.receiver import Receiver, serve
from tests.tasks.test_outbox import _batch, _finish


@pytest.fixture
def receiver():
    found = Receiver()
    server, url = serve(found)
    found.url = url
    yield found
    server.shutdown()


def _notified_batch(tmp_path, receiver: Receiver, jobs: int = 2) -> None:
    """A batch at the receiver's URL with every job ended (its events written, none sent)."""
    for check_id in _batch(tmp_path, jobs, notify=receiver.url):
        _finish(check_id)
    with session_scope() as session:
        from models import NotifyEndpoint

        endpoint = session.scalars(select(NotifyEndpoint)).one()
        receiver.know(keys.notify_secret(endpoint.id, endpoint.owner, endpoint.url, get_settings()))


def _rows() -> list[Notification]:
    with session_scope() as session:
        return list(session.scalars(select(Notification).order_by(Notification.id)))


def _deliver_due() -> int:
    return sum(notify.deliver(ids) for ids in notify.due_groups())


def _make_due() -> None:
    with transaction() as conn:
        conn.execute(update(Notification).values(next_attempt_at=dt.datetime(2000, 1, 1, tzinfo=dt.UTC)))


def test_events_are_delivered_signed_once_and_in_order(database_url, tmp_path, receiver):
    _notified_batch(tmp_path, receiver)
    assert _deliver_due() == 3
    assert receiver.forged == 0
    assert [e["type"] for e in receiver.accepted] == ["job.finished", "job.finished", "batch.finished"]
    assert [json.loads(r.body) for r in _rows()] == receiver.accepted  # the body stored is the body sent
    assert {(r.state, r.attempts, r.last_status) for r in _rows()} == {("delivered", 1, 200)}
    assert _deliver_due() == 0  # nothing is sent twice


def test_a_failing_receiver_gets_the_same_event_again_later_and_its_others_wait(database_url, tmp_path, receiver,
                                                                                monkeypatch):
    _notified_batch(tmp_path, receiver)
    receiver.status = lambda: 503
    failed_at = utcnow()
    assert _deliver_due() == 0
    assert len(receiver.attempts) == 1  # one request for the URL: the others wait with the first
    rows = _rows()
    assert (rows[0].state, rows[0].attempts, rows[0].last_status) == ("pending", 1, 503)
    assert all(r.next_attempt_at > r.created_at for r in rows)
    with monkeypatch.context() as frozen:  # asked by the clock, not after the machine's delay (it may exceed the backoff)
        frozen.setattr(notify, "utcnow", lambda: failed_at + dt.timedelta(seconds=0.4))  # the first is 0.5-1 s
        assert notify.due_groups() == []  # backing off
    receiver.status = lambda: 200
    _make_due()
    assert _deliver_due() == 3
    first = receiver.attempts[0][0]
    assert receiver.accepted_ids()[0] == first  # the same id as the failed attempt
    assert len(set(receiver.accepted_ids())) == 3


def test_an_unreachable_receiver_ends_dead_after_the_retry_time_and_retry_sends_it(database_url, tmp_path,
                                                                                   receiver, monkeypatch):
    _notified_batch(tmp_path, receiver, jobs=1)
    monkeypatch.setenv("VOXQUEUE_NOTIFY_RETRY_SECONDS", "0")
    reset_settings()
    receiver.status = lambda: 500
    _deliver_due()
    _make_due()
    _deliver_due()
    assert {r.state for r in _rows()} == {"dead"}
    assert notify.due_groups() == []
    receiver.status = lambda: 204
    assert notify.retry() == 2
    assert _deliver_due() == 2
    assert {r.state for r in _rows()} == {"delivered"}


def test_the_default_url_is_signed_with_its_setting(database_url, tmp_path, receiver, monkeypatch):
    secret = "n" * 24
    monkeypatch.setenv("VOXQUEUE_NOTIFY_URL", receiver.url)
    monkeypatch.setenv("VOXQUEUE_NOTIFY_SECRET", secret)
    reset_settings()
    receiver.know(secret)
    for check_id in _batch(tmp_path, 1, notify=None):
        _finish(check_id)
    assert _deliver_due() == 2
    assert receiver.forged == 0


def test_a_url_that_refuses_connections_fails_without_naming_it(database_url, tmp_path, receiver):
    _notified_batch(tmp_path, receiver, jobs=1)
    with transaction() as conn:
        conn.execute(update(Notification).values(url="http://127.0.0.1:9/secret-path?token=abc"))
    _deliver_due()
    row = _rows()[0]
    assert row.state == "pending" and row.attempts == 1 and row.last_status is None
    assert "connection" in row.last_error and "secret-path" not in row.last_error


def test_secrets_differ_per_owner_of_one_url(database_url):
    settings = get_settings()
    with session_scope() as session:
        from models import Batch

        a, b = Batch(name="a"), Batch(name="b")
        session.add_all([a, b])
        session.flush()
        first = outbox.attach(session, a, "token:1", "https://hooks.example/x")
        second = outbox.attach(session, b, "token:2", "https://hooks.example/x")
        again = outbox.attach(session, b, "token:2", "https://hooks.example/x")
    assert first.secret and second.secret and first.secret != second.secret
    assert again.secret is None and again.endpoint_id == second.endpoint_id  # shown once
    assert keys.notify_secret(second.endpoint_id, "token:2", "https://hooks.example/x", settings) == second.secret
