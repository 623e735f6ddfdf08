"""Options are checked before anything runs: numbers that cannot mean anything and filters that
match nothing by a typo are usage errors (exit 2); a batch that does not exist is the same
one-line error (exit 1) for every command."""

from __future__ import annotations

import json
import time

import pytest
from sqlalchemy import select

from models import Check
from models.db import session_scope
from tests.workers.cli_helpers import one_line_error, run, seed

PENDING = {"key": "p1", "status": "pending", "checks": {"soe": {"status": "pending"}}}
DONE = {"key": "d1", "status": "done", "checks": {"soe": {"status": "done", "suggested_score": 80.0}}}


def test_wait_timeout_zero_checks_once(database_url):
    seed(database_url, "open", [PENDING])
    seed(database_url, "closed", [DONE])
    started = time.monotonic()
    proc = run("wait", "--batch", "open", "--timeout", "0", timeout=30)
    assert proc.returncode == 1 and time.monotonic() - started < 20
    assert proc.stderr.splitlines()[-1] == "voxqueue: error: timed out after 0s: 0/1 jobs terminal"
    assert "Traceback" not in proc.stderr
    proc = run("wait", "--batch", "closed", "--timeout", "0", timeout=30)
    assert proc.returncode == 0 and proc.stdout == "batch closed: 1/1 terminal (1 done)\n"


@pytest.mark.parametrize("value", ["-1", "-0.001", "nan", "NaN", "inf", "-inf", "1e999", "soon"])
def test_wait_refuses_a_timeout_that_cannot_end(value):
    proc = run("wait", "--batch", "b", "--timeout", value, timeout=30)
    assert proc.returncode == 2, proc.stderr
    assert "'--timeout'" in one_line_error(proc)


@pytest.mark.parametrize("args", [
    ("worker", "-c", "0"), ("worker", "-c", "-2"),
    ("webhooks", "--port", "70000"), ("webhooks", "--port", "-1"),
    ("flower", "--port", "99999"),
    ("sandbox", "--port", "65536"),
    ("sandbox", "--latency-ms", "nan"), ("sandbox", "--latency-ms", "-5"), ("sandbox", "--latency-ms", "inf"),
    ("sandbox", "--faults", "not json"), ("sandbox", "--faults", '[{"kind": "throttle", "rate": 7}]'),
    ("sandbox", "--faults", '{"kind": "throttle"}'), ("sandbox", "--faults", "[" * 50_000),
], ids=" ".join)
def test_numeric_and_structured_options_are_checked(args):
    # A broker on a closed port: a command that wrongly starts gets no further than connecting.
    proc = run(*args, env_extra={"VOXQUEUE_BROKER_URL": "redis://127.0.0.1:1/0"}, timeout=20)
    assert proc.returncode == 2, proc.stderr
    assert f"'{args[1]}'" in one_line_error(proc)


def test_report_filters_take_only_real_values():
    for option, value in (("--status", "faild"), ("--verdict", "nope"), ("--format", "xml")):
        proc = run("report", option, value, timeout=30)
        assert proc.returncode == 2, proc.stderr
        line = one_line_error(proc)
        assert f"'{option}'" in line and value in line


def test_report_filters_ignore_case(database_url):
    seed(database_url, "b", [
        {"key": "a", "verdict": "REJECT"}, {"key": "b", "verdict": "PASS"},
        {"key": "c", "status": "failed", "error": "soe: bad audio"}, {"key": "d", "status": "rejected"},
    ])
    for args, ids in ((("--verdict", "reject"), ["a"]), (("--verdict", "Pass"), ["b"]),
                      (("--status", "FAILED"), ["c"]), (("--status", "rejected"), ["d"])):
        proc = run("report", "--batch", "b", *args)
        assert proc.returncode == 0, proc.stderr
        assert [row["id"] for row in json.loads(proc.stdout)] == ids, args


def _check_status(url: str) -> str:
    with session_scope(url) as session:
        return session.scalar(select(Check.status))


def test_retry_names_a_missing_batch_and_touches_nothing(database_url, redis_url):
    seed(database_url, "real", [{"key": "f1", "status": "failed", "error": "soe: timeout",
                                 "checks": {"soe": {"status": "failed", "error": "timeout"}}}])
    env = {"VOXQUEUE_BROKER_URL": redis_url}
    for name in ("nosuch", ""):
        proc = run("retry", "--batch", name, env_extra=env)
        assert proc.returncode == 1
        assert one_line_error(proc) == f"voxqueue: error: no batch named {name!r}"
        assert _check_status(database_url) == "failed"
    proc = run("retry", "--batch", "real", env_extra=env)
    assert proc.returncode == 0 and proc.stdout == "re-enqueued 1 failed check(s)\n"
    assert _check_status(database_url) == "pending"


def test_an_empty_batch_name_is_no_batch(database_url):
    seed(database_url, "real", [DONE])
    for args in (("status", "--batch", ""), ("report", "--batch", ""), ("wait", "--batch", "", "--timeout", "0")):
        proc = run(*args, timeout=30)
        assert proc.returncode == 1, args
        assert one_line_error(proc) == "voxqueue: error: no batch named ''"
        assert proc.stdout == ""


def test_status_of_a_missing_batch_keeps_its_error(database_url):
    seed(database_url, "real", [DONE])
    proc = run("status", "--batch", "nosuch")
    assert proc.returncode == 1 and one_line_error(proc) == "voxqueue: error: no batch named 'nosuch'"
