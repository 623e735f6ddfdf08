"""Flower against a real worker: the worker is listed, the batch's tasks appear with states."""

from __future__ import annotations

import re

import pytest
import requests

from tests.e2e.test_soe_pipeline import make_manifest
from tests.pipeline import wait_until
from workers.processes import free_port, running, voxqueue_command, wait_http

pytestmark = [pytest.mark.e2e]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_flower_shows_the_worker_and_the_batch(pipeline, tmp_path):
    port = free_port()
    flower = f"http://127.0.0.1:{port}"
    pipeline.start_worker("-c", "2")
    proc = pipeline.stack.enter_context(
        running(voxqueue_command("flower", "--port", str(port)), pipeline.env, pipeline.logs / "flower.log"))
    wait_http(flower + "/healthcheck", proc, timeout=30)

    def inspected():  # Flower lists a worker before all its inspect replies are in (a new worker may miss one)
        workers = requests.get(flower + "/api/workers?refresh=1", timeout=10).json()
        return workers if workers and all("registered" in info for info in workers.values()) else None

    workers = wait_until(inspected, 30)
    (name, info), = workers.items()
    assert "voxqueue.soe.evaluate" in info["registered"]
    worker_log = pipeline.logs / "worker-0.log"  # workers send task events once Flower asks for them
    wait_until(lambda: "Events of group {task} enabled by remote" in worker_log.read_text(errors="replace"), 30)

    pipeline.cli("ingest", str(make_manifest(tmp_path / "readings", 3)))
    pipeline.cli("wait", "--batch", "readings", "--timeout", "60")

    def finished_tasks():
        tasks = requests.get(flower + "/api/tasks", timeout=10).json()
        done = [t for t in tasks.values() if t["name"] == "voxqueue.soe.evaluate" and t["state"] == "SUCCESS"]
        return done if len(done) == 3 else None

    tasks = wait_until(finished_tasks, 30)
    assert {t["worker"] for t in tasks} == {name}
    shown = sorted(re.fullmatch(r"job '(pupil-\d+)' soe \(check \d+\)", t["args"]).group(1) for t in tasks)
    assert shown == ["pupil-000", "pupil-001", "pupil-002"]
    assert all(t["runtime"] is not None for t in tasks)
    metrics = requests.get(flower + "/metrics", timeout=10).text
    assert "flower_events_total" in metrics and "voxqueue.soe.evaluate" in metrics
