"""One ``voxqueue worker`` with its defaults: a process per core, all of them working, all stopped
by one SIGTERM."""

from __future__ import annotations

import signal

import psutil
import pytest
from sqlalchemy import select

from models import Check
from models.db import session_scope
from tests.e2e.test_soe_pipeline import check_scores, make_manifest
from tests.pipeline import wait_until
from workers.processes import running, voxqueue_command
from workers.supervisor import default_processes

pytestmark = [pytest.mark.e2e, pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)]


def holder_pids() -> set[int]:
    """The processes that claimed the checks (a holder is host:pid:random)."""
    with session_scope() as session:
        holders = session.scalars(select(Check.holder).where(Check.holder.is_not(None))).all()
    return {int(h.split(":")[1]) for h in holders}


def test_one_worker_command_runs_a_process_per_core_and_stops_them_all(pipeline, tmp_path):
    folder = tmp_path / "readings"
    manifest = make_manifest(folder, 40)
    pipeline.sandbox("config", {"latency_ms": 50})  # calls that wait, so every process gets files
    cores = default_processes()
    if cores < 2:
        pytest.skip("one core: the worker is one process")
    with running(voxqueue_command("worker"), pipeline.env, pipeline.logs / "worker.log") as worker:
        wait_until(lambda: len(psutil.Process(worker.pid).children()) == cores, 30)
        children = psutil.Process(worker.pid).children()
        pipeline.cli("ingest", str(manifest))
        pipeline.wait("readings", 120)

        check_scores(pipeline.report("readings"), folder)
        assert holder_pids() == {c.pid for c in children}  # every process took files, none other did
        print(f"\nRSS per worker process: {[c.memory_info().rss >> 20 for c in children]} MiB")

        worker.send_signal(signal.SIGTERM)
        assert worker.wait(30) == 0
        _gone, alive = psutil.wait_procs(children, timeout=5)
        assert not alive, alive
