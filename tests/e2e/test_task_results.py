"""Flower's result column says what a task did: a check that failed for good at the vendor is
not just SUCCESS, its result reads ``failed: auth`` (from the task-succeeded event; no result
backend), and nothing secret is in it; a file sent again shows when and why as its retry's
exception."""

from __future__ import annotations

import re
import secrets

import pytest
import requests

from tests.e2e.test_soe_pipeline import make_manifest
from tests.pipeline import wait_until
from workers.processes import free_port, running, voxqueue_command, wait_http

pytestmark = [pytest.mark.e2e]


def start_flower(pipeline) -> str:
    """A worker on the soe queue and Flower watching it; Flower's address once the worker sends
    task events (it does once Flower asks for them)."""
    port = free_port()
    flower = f"http://127.0.0.1:{port}"
    pipeline.start_worker("-c", "2", "-Q", "soe")
    proc = pipeline.stack.enter_context(
        running(voxqueue_command("flower", "--port", str(port)), pipeline.env, pipeline.logs / "flower.log")
    )
    wait_http(flower + "/healthcheck", proc, timeout=30)
    worker_log = pipeline.logs / "worker-0.log"
    wait_until(lambda: "Events of group {task} enabled by remote" in worker_log.read_text(errors="replace"), 30)
    return flower


def flower_tasks(flower: str, state: str) -> list[dict] | None:
    tasks = requests.get(flower + "/api/tasks", timeout=10).json()
    return [t for t in tasks.values() if t["name"] == "voxqueue.soe.evaluate" and t["state"] == state] or None


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_flower_shows_a_permanent_vendor_failure_as_the_tasks_result(pipeline, tmp_path):
    wrong_key = secrets.token_hex(16)  # the sandbox knows another: SOE answers AuthFailure
    pipeline.env = pipeline.env | {"VOXQUEUE_TENCENT_SECRET_KEY": wrong_key}
    flower = start_flower(pipeline)

    pipeline.cli("ingest", str(make_manifest(tmp_path / "readings", 1)))
    pipeline.wait("readings", timeout=60)
    (job,) = pipeline.report("readings")
    assert job["status"] == "failed" and "auth" in job["error"]

    (task,) = wait_until(lambda: flower_tasks(flower, "SUCCESS"), 30)
    assert task["result"] == "'failed: auth'"
    assert (
        wrong_key not in task["result"]
        and pipeline.env["VOXQUEUE_TENCENT_SECRET_ID"] not in task["result"]
    )


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_flower_shows_when_and_why_a_file_goes_again(pipeline, tmp_path):
    # The first four SOE calls fail: one chunk's tries in place run out and the task retries.
    pipeline.sandbox("config", {"faults": [{"kind": "error5xx", "service": "soe", "rate": 1.0, "first_n": 4}]})
    flower = start_flower(pipeline)

    pipeline.cli("ingest", str(make_manifest(tmp_path / "readings", 1)))
    pipeline.wait("readings", timeout=60)
    (job,) = pipeline.report("readings")
    assert job["status"] == "done"

    # A retry keeps the task's id: Flower's entry moves from RETRY to SUCCESS and keeps the
    # retry's exception beside the final result.
    (task,) = wait_until(lambda: flower_tasks(flower, "SUCCESS"), 30)
    assert task["result"] == "'done'" and task["retries"] == 1
    assert re.search(r"SentAgain\('retry in \d+ s \(http_5xx\)'\)", task["exception"] or ""), task
    assert "503" not in task["exception"]  # the reason code, not the vendor's message
