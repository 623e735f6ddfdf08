"""Flower's result column says what a task did: a check that failed for good at the vendor is
not just SUCCESS, its result reads ``failed: auth`` (from the task-succeeded event; no result
backend), and nothing secret is in it."""

from __future__ import annotations

import secrets

import pytest
import requests

from tests.e2e.test_soe_pipeline import make_manifest
from tests.pipeline import wait_until
from workers.processes import free_port, running, voxqueue_command, wait_http

pytestmark = [pytest.mark.e2e]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_flower_shows_a_permanent_vendor_failure_as_the_tasks_result(pipeline, tmp_path):
    wrong_key = secrets.token_hex(16)  # the sandbox knows another: SOE answers AuthFailure
    pipeline.env = pipeline.env | {"VOXQUEUE_TENCENT_SECRET_KEY": wrong_key}
    port = free_port()
    flower = f"http://127.0.0.1:{port}"
    pipeline.start_worker("-c", "2", "-Q", "soe")
    proc = pipeline.stack.enter_context(
        running(
            voxqueue_command("flower", "--port", str(port)),
            pipeline.env,
            pipeline.logs / "flower.log",
        )
    )
    wait_http(flower + "/healthcheck", proc, timeout=30)
    worker_log = (
        pipeline.logs / "worker-0.log"
    )  # workers send task events once Flower asks for them
    wait_until(
        lambda: (
            "Events of group {task} enabled by remote" in worker_log.read_text(errors="replace")
        ),
        30,
    )

    pipeline.cli("ingest", str(make_manifest(tmp_path / "readings", 1)))
    pipeline.wait("readings", timeout=60)
    (job,) = pipeline.report("readings")
    assert job["status"] == "failed" and "auth" in job["error"]

    def finished():
        tasks = requests.get(flower + "/api/tasks", timeout=10).json()
        done = [
            t
            for t in tasks.values()
            if t["name"] == "voxqueue.soe.evaluate" and t["state"] == "SUCCESS"
        ]
        return done or None

    (task,) = wait_until(finished, 30)
    assert task["result"] == "'failed: auth'"
    assert (
        wrong_key not in task["result"]
        and pipeline.env["VOXQUEUE_TENCENT_SECRET_ID"] not in task["result"]
    )
