"""Running the sandbox: the blocking ``run`` in a real process, and ``SandboxThread``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from sandbox.core import SandboxConfig, VendorService
from sandbox.server import NOT_FAVOURED, SandboxThread, favour

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_run_prints_one_line_serves_and_stops_cleanly(http, stop_signal):
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "VOXQUEUE_TENCENT_SECRET_ID": "x",
        "VOXQUEUE_TENCENT_SECRET_KEY": "y",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "sandbox.server", "--port", "0"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline().strip()
        assert line.startswith("sandbox listening on http://127.0.0.1:")
        url = line.rsplit(" ", 1)[1]
        assert http.get(url + "/_sandbox/health").json() == {"ok": True}
    finally:
        process.send_signal(stop_signal)
        out, err = process.communicate(timeout=10)
    assert process.returncode == 0, err
    assert out == ""


def test_sandbox_thread_stops_cleanly_and_frees_the_port():
    with SandboxThread(SandboxConfig()) as sandbox:
        url = sandbox.url
        with requests.Session() as http:
            assert http.get(url + "/_sandbox/health").status_code == 200
    with requests.Session() as http:
        try:
            http.get(url + "/_sandbox/health", timeout=1)
        except requests.ConnectionError:
            pass
        else:
            raise AssertionError("the sandbox still answers after stop()")


class Echo(VendorService):
    """A vendor with its own route, as Shumei or Tupu would add one."""

    name = "echo"

    def add_routes(self, app) -> None:
        from aiohttp import web

        from sandbox.core import add_vendor_route

        async def handle(request: web.Request) -> web.Response:
            self.stats.accept(self.name, request.query.get("id", ""))
            return web.json_response({"code": 1100})

        add_vendor_route(app, self, "POST", "/echo/v1", handle, action="submit")

    def snapshot(self) -> dict:
        return {"hello": "world"}


def test_another_vendor_plugs_in_with_its_routes_stats_and_faults():
    config = SandboxConfig()
    with SandboxThread(config, services=[Echo]) as sandbox, requests.Session() as http:
        http.post(
            sandbox.url + "/_sandbox/config", json={"faults": [{"kind": "throttle", "first_n": 1}]}
        )
        assert (
            http.post(sandbox.url + "/echo/v1?id=a").status_code == 503
        )  # no vendor-shaped throttle: 503
        assert http.post(sandbox.url + "/echo/v1?id=a").json() == {"code": 1100}
        stats = sandbox.stats()
    assert stats["requests"] == {"echo.submit": 2} and stats["accepted"] == {"echo": {"a": 1}}
    assert stats["services"] == {"echo": {"hello": "world"}}


def test_favour_schedules_the_sandbox_ahead_of_other_processes():
    """What favour() says it did is what the kernel reports for the process afterwards."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        how = favour(child.pid)
        if how == NOT_FAVOURED:
            pytest.skip("no permission to change scheduling here")
        if how == "scheduled real-time (SCHED_RR)":
            assert os.sched_getscheduler(child.pid) == os.SCHED_RR
        else:
            assert how == "scheduled at nice -10" and os.getpriority(os.PRIO_PROCESS, child.pid) == -10
    finally:
        child.kill()
        child.wait()
