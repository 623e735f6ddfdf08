"""Shumei callbacks from receipt to merge: results, failures without a btId (seed 004), and
what a failure's code does to its check (issue 15: answered 200, failed or retried by code)."""

from __future__ import annotations

import datetime as dt

import pytest

from models.base import utcnow
from tasks.results import merge
from tests.workers.webhook_helpers import check_row, events, make_check, shumei_body

BT_ID, REQUEST_ID = "vq-bt-merge", "req-merge"


@pytest.fixture
def delivered(receiver, redis_url, monkeypatch):
    """Post a body to a Shumei check's own URL, then run the merge the receiver enqueued."""
    monkeypatch.setenv("VOXQUEUE_BROKER_URL", redis_url)

    def deliver(body: dict, *, bt_id: str = BT_ID, request_id: str = REQUEST_ID):
        check_id = make_check(receiver.database_url, "shumei", bt_id, request_id=request_id)
        answer = receiver.post(receiver.shumei_path(check_id), json=body)
        assert (answer.status_code, answer.json()) == (200, {"ok": True})
        (event_id,) = receiver.sent[-1:]
        merge(event_id)
        (event,) = (e for e in events(receiver.database_url) if e.id == event_id)
        return event, check_row(receiver.database_url, check_id)

    return deliver


def test_a_result_is_merged(delivered):
    event, check = delivered(shumei_body(BT_ID, "k") | {"riskLevel": "REJECT"})
    assert (event.state, check.status, check.verdict, check.text) == ("merged", "done", "REJECT", "hello")


@pytest.mark.parametrize(("code", "reason"), [(1905, "decode_failed"), (1904, "download_failed"),
                                              (1902, "invalid_params"), (9101, "no_permission"),
                                              (4242, "unknown_code")])
def test_a_permanent_failure_fails_the_check(delivered, code, reason):
    event, check = delivered({"code": code, "message": "失败", "requestId": REQUEST_ID})
    assert (event.state, check.status, check.error_reason) == ("merged", "failed", reason)
    assert str(code) in check.error


@pytest.mark.parametrize("code", [1901, 1903])
def test_a_failure_for_now_asks_again(delivered, code):
    """QPS limit or service failure at the vendor: the check stays open and is polled again soon."""
    before = utcnow()
    event, check = delivered({"code": code, "message": "服务失败", "requestId": REQUEST_ID})
    assert (event.state, check.status, check.polls) == ("ignored", "running", 1)
    assert event.note.endswith("asked again") and str(code) in event.note
    next_poll = check.next_poll_at if check.next_poll_at.tzinfo else check.next_poll_at.replace(tzinfo=dt.UTC)
    assert before < next_poll <= utcnow() + dt.timedelta(seconds=3)


def test_processing_is_not_final(delivered):
    event, check = delivered({"code": 1101, "message": "处理中", "requestId": REQUEST_ID, "btId": BT_ID})
    assert (event.state, event.note, check.status, check.polls) == ("ignored", "not final yet", "running", 0)


def test_a_failure_of_another_request_is_not_this_checks(delivered):
    event, check = delivered({"code": 1905, "message": "解码失败", "requestId": "req-someone-else"})
    assert (event.state, event.note) == ("ignored", "its requestId is not this check's")
    assert (check.status, check.error) == ("running", None)


def test_a_result_for_another_bt_id_is_not_this_checks(delivered):
    event, check = delivered(shumei_body("vq-another", "k"))
    assert (event.state, event.note) == ("ignored", "its btId is not this check's")
    assert (check.status, check.verdict) == ("running", None)


def test_a_failure_after_the_result_changes_nothing(receiver, delivered):
    _, check = delivered(shumei_body(BT_ID, "k"))
    assert check.status == "done"
    again = receiver.post(receiver.shumei_path(check.id), json={"code": 1905, "requestId": REQUEST_ID})
    assert again.status_code == 200
    merge(receiver.sent[-1])
    latest = events(receiver.database_url)[-1]
    assert (latest.state, latest.note) == ("ignored", "check already done")
    assert check_row(receiver.database_url, check.id).status == "done"
