"""One ``voxqueue worker`` with its defaults: a process per core, all of them working, all stopped
by one SIGTERM."""

from __future__ import annotations

import re
import signal
import subprocess

import psutil
import pytest
from sqlalchemy import select

from models import Check
from models.db import session_scope
from tests.e2e.test_soe_pipeline import check_scores, make_manifest
from tests.pipeline import wait_until
from workers.processes import running, voxqueue_command
from workers.supervisor import default_processes

pytestmark = [pytest.mark.e2e,
              pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)]


def holder_pids() -> set[int]:
    """The processes that claimed the checks (a holder is host:pid:random)."""
    with session_scope() as session:
        holders = session.scalars(select(Check.holder).where(Check.holder.is_not(None))).all()
    return {int(h.split(":")[1]) for h in holders}


HELD = re.compile(r"^soe: \d+ req/s, held by VOXQUEUE_SOE_QPS=20$", re.MULTILINE)


def test_one_worker_command_runs_a_process_per_core_and_stops_them_all(pipeline, tmp_path):
    """With SOE's limit low, the user is told that the limit holds the batch back."""
    folder = tmp_path / "readings"
    manifest = make_manifest(folder, 60)
    pipeline.sandbox("config", {"latency_ms": 50})  # calls that wait, so every process gets files
    pipeline.env["VOXQUEUE_SOE_QPS"] = "20"  # ~180 chunks: about 10 s held by the limit
    cores = default_processes()
    if cores < 2:
        pytest.skip("one core: the worker is one process")
    pipeline.cli("ingest", str(manifest))
    assert "held by" not in pipeline.cli("status").stdout  # nothing sent: nothing held
    waiting = subprocess.Popen(
        voxqueue_command("wait", "--batch", "readings", "--timeout", "120"), env=pipeline.env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # Watching before any file is sent: a wait that started late on a loaded machine once saw
    # only the batch's end, and no limit holding it back.
    first = waiting.stderr.readline()
    assert first.startswith("batch readings: 0/60"), first
    with running(voxqueue_command("worker"), pipeline.env, pipeline.logs / "worker.log") as worker:
        wait_until(lambda: len(psutil.Process(worker.pid).children()) == cores, 30)
        children = psutil.Process(worker.pid).children()
        status = wait_until(lambda: HELD.search(out := pipeline.cli("status").stdout) and out, 60)
        err = first + waiting.stderr.read()  # the same buffered reader: communicate() would skip its buffer
        waiting.wait(30)
        assert waiting.returncode == 0, err
        assert HELD.search(err), err  # wait said so too, beside its progress
        assert "batch readings" in status

        check_scores(pipeline.report("readings"), folder)
        assert holder_pids() == {c.pid for c in children}  # each process took files, no other did
        print(f"\nRSS per worker process: {[c.memory_info().rss >> 20 for c in children]} MiB")

        worker.send_signal(signal.SIGTERM)
        assert worker.wait(30) == 0
        _gone, alive = psutil.wait_procs(children, timeout=5)
        assert not alive, alive


def _database_sockets(pipeline, proc: subprocess.Popen) -> int:
    """TCP connections from ``proc`` and its children to the database's port (what ``ss -tp`` shows)."""
    from sqlalchemy.engine import make_url

    port = make_url(pipeline.env["VOXQUEUE_DATABASE_URL"]).port or 5432
    root = psutil.Process(proc.pid)
    return sum(1 for p in (root, *root.children(recursive=True))
               for c in p.net_connections(kind="tcp") if c.raddr and c.raddr.port == port)


def test_a_worker_is_connected_to_the_database_when_it_says_ready(pipeline):
    """The driver imported, the engine made and a connection open before the first message: not
    by the first tasks' threads, each waiting on the engine's lock while one makes it. (On the SOE
    queue alone: housekeeping, which would connect anyway, is not among its work.)"""
    worker = pipeline.start_worker("-Q", "soe")
    log = pipeline.logs / "worker-0.log"
    wait_until(lambda: log.exists() and " ready." in log.read_text(errors="replace"), 60, interval=0.1)
    assert _database_sockets(pipeline, worker) >= 1
