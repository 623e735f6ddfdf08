"""An exception no rule expected fails its check at once, with the exception's class as its reason.

Before, such a check kept its lease and its job sat `running` until the lease lapsed, went
again, and after `VOXQUEUE_MAX_DELIVERIES` deliveries failed as "its worker died", though no
worker had died. The tasks are called here as functions, in this process, on a real database.
"""

from __future__ import annotations

from sqlalchemy import select, update

from models import Check, Job
from models.db import session_scope, transaction
from tasks import shumei, soe
from tasks.ingest import ingest
from tests.tasks.test_ingest import write_wav


def recorded(tmp_path, services: str, rows: int = 1) -> list[int]:
    for i in range(rows):
        write_wav(tmp_path / f"a{i}.wav")
    lines = ["id,audio,services,ref_text"] + [f"clip{i},a{i}.wav,{services},red" for i in range(rows)]
    (tmp_path / "clips.csv").write_text("\n".join(lines) + "\n")
    ingest(tmp_path / "clips.csv")
    with session_scope() as session:
        return list(session.scalars(select(Check.id).order_by(Check.id)))


def outcome(check_id: int) -> tuple[str, str | None, str | None, bool, str]:
    with session_scope() as session:
        check = session.get(Check, check_id)
        return check.status, check.error_reason, check.error, check.lease_until is None, check.job.status


def test_an_soe_input_no_request_can_be_built_from_fails_at_once(database_url, tmp_path, monkeypatch):
    monkeypatch.setenv("VOXQUEUE_SOE_ENDPOINT", "http://127.0.0.1:9")  # never reached
    (check_id,) = recorded(tmp_path, "soe")
    with transaction() as conn:  # what ingest would have refused, as a row written by an older version
        conn.execute(update(Job).values(options={"ref_text": "red", "score_coeff": "very"}))

    soe.evaluate([check_id])

    status, reason, error, released, job = outcome(check_id)
    assert (status, reason, released, job) == ("failed", "ValueError", True, "failed")
    assert "unexpected ValueError" in error and "\n" not in error


def test_a_moderation_check_that_cannot_be_described_fails_alone(database_url, tmp_path):
    ids = recorded(tmp_path, "shumei", rows=2)
    (tmp_path / "a0.wav").unlink()  # gone between ingest and submission

    shumei.submit(ids)  # the other check stops at the vendor: no Shumei key is configured

    status, reason, error, released, job = outcome(ids[0])
    assert (status, reason, released, job) == ("failed", "FileNotFoundError", True, "failed")
    assert "unexpected FileNotFoundError" in error
    assert outcome(ids[1])[:2] == ("failed", "not_configured")
