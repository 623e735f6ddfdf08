"""Claiming a group of checks at once (SQLite and PostgreSQL): the rules of one claim, but for a
death, which only a check alone in its message is charged."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from config.settings import get_settings
from models import Check, CheckStatus, Job, JobStatus
from models.base import utcnow
from models.db import session_scope, transaction
from tasks.lifecycle import take_lease, take_leases
from tests.tasks.test_lifecycle import _checks, _set


def _row(check_id: int) -> tuple[str, int, bool, str]:
    with session_scope() as session:
        check = session.get(Check, check_id)
        return check.status, check.deliveries, check.lease_until is not None, check.job.status


def test_a_group_claim_takes_free_checks_in_the_order_asked(database_url, tmp_path):
    ids = _checks(tmp_path, 4)
    asked = [ids[2], ids[0], ids[3], ids[1]]
    with transaction() as conn:
        claim = take_leases(conn, asked, get_settings())
    leases = claim.leases
    assert claim.isolated == []
    assert [lease.check_id for lease in leases] == asked
    assert [lease.job.key for lease in leases] == ["clip2", "clip0", "clip3", "clip1"]
    assert all(lease.service == "shumei" and lease.deliveries == 0 for lease in leases)
    for check_id in ids:  # leased, running, and so is its job
        assert _row(check_id) == (CheckStatus.RUNNING.value, 0, True, JobStatus.RUNNING.value)


def test_a_group_claim_leaves_out_leased_finished_and_unknown_checks(database_url, tmp_path):
    ids = _checks(tmp_path, 4)
    with transaction() as conn:
        assert take_lease(conn, ids[0], get_settings()) is not None  # leased by another delivery
    _set(ids[1], status=CheckStatus.DONE.value)
    with transaction() as conn:
        claim = take_leases(conn, [ids[0], ids[1], ids[2], 10_000_000], get_settings())
    assert [lease.check_id for lease in claim.leases] == [ids[2]] and claim.isolated == []
    assert _row(ids[3]) == (CheckStatus.PENDING.value, 0, False, JobStatus.PENDING.value)  # not asked
    with transaction() as conn:
        claim = take_leases(conn, [ids[0], ids[2]], get_settings())
    assert (claim.leases, claim.isolated) == ([], [])  # both leased now, by living deliveries


def _lapse(check_id: int) -> None:
    _set(check_id, lease_until=utcnow() - dt.timedelta(seconds=1))  # its worker died holding it


def test_a_group_releases_a_dead_deliverys_checks_uncharged_and_alone_a_death_is_charged(database_url, tmp_path):
    ids = _checks(tmp_path, 3)
    with transaction() as conn:
        take_leases(conn, ids[:2], get_settings())
    _lapse(ids[0])  # ids[1] is still held by a living delivery
    with transaction() as conn:
        claim = take_leases(conn, ids, get_settings())
    assert [lease.check_id for lease in claim.leases] == [ids[2]]
    assert claim.isolated == [ids[0]]  # for the caller to send again, alone
    assert _row(ids[0]) == (CheckStatus.RUNNING.value, 0, False, JobStatus.RUNNING.value)  # released, uncharged

    with transaction() as conn:  # alone in its message: claimed, and a death from now on is its own
        (lease,) = take_leases(conn, [ids[0]], get_settings()).leases
    assert lease.deliveries == 0
    _lapse(ids[0])
    with transaction() as conn:
        claim = take_leases(conn, [ids[0]], get_settings())
    assert [(lease.check_id, lease.deliveries) for lease in claim.leases] == [(ids[0], 1)]
    assert claim.isolated == []
    with session_scope() as session:
        lease_until = session.get(Check, ids[0]).lease_until
        assert lease_until.replace(tzinfo=lease_until.tzinfo or dt.UTC) > utcnow()  # SQLite: naive UTC
        assert session.scalar(select(Job.status).where(Job.id == lease.job.id)) == JobStatus.RUNNING.value
