"""``voxqueue webhooks`` as a process: it starts only when it can serve, answers in time with a
hung broker, and stops on SIGTERM within seconds even while calls hang."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import requests
from sqlalchemy import delete

from models import DeploymentSecret
from models.db import engine_for
from tests.workers.webhook_helpers import gme_body, make_check
from vendors.gme import sign_callback
from workers.processes import free_port, voxqueue_command


def start(env_extra: dict[str, str], port: int) -> subprocess.Popen:
    env = dict(os.environ) | env_extra
    return subprocess.Popen(voxqueue_command("webhooks", "--port", str(port)), env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finished(process: subprocess.Popen, timeout: float = 30) -> tuple[int, str]:
    _, stderr = process.communicate(timeout=timeout)
    return process.returncode, stderr


def assert_one_line_failure(code: int, stderr: str, says: str, *, exit_code: int = 1) -> None:
    assert code == exit_code, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("voxqueue: error: ") and says in lines[0], stderr
    assert "listening on" not in stderr and "Traceback" not in stderr


def test_a_port_in_use_is_one_line_before_listening(database_url, redis_url):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        code, stderr = finished(start({"VOXQUEUE_BROKER_URL": redis_url}, port))
    assert_one_line_failure(code, stderr, f"cannot listen on 127.0.0.1:{port}")


def test_a_bad_key_is_one_line_before_listening(database_url, redis_url, tmp_path):
    bad = tmp_path / "tupu.pem"
    bad.write_text("not a key")
    env = {"VOXQUEUE_BROKER_URL": redis_url, "VOXQUEUE_TUPU_PUBLIC_KEY": str(bad)}
    code, stderr = finished(start(env, free_port()))
    assert_one_line_failure(code, stderr, "VOXQUEUE_TUPU_PUBLIC_KEY")


def test_no_deployment_secret_is_one_line_before_listening(database_url, redis_url):
    with engine_for(database_url).begin() as conn:
        conn.execute(delete(DeploymentSecret))
    code, stderr = finished(start({"VOXQUEUE_BROKER_URL": redis_url}, free_port()))
    assert_one_line_failure(code, stderr, "voxqueue db upgrade")
    short = finished(start({"VOXQUEUE_BROKER_URL": redis_url, "VOXQUEUE_SECRET_KEY": "tiny"}, free_port()))
    assert_one_line_failure(*short, "VOXQUEUE_SECRET_KEY: must be at least 16 characters", exit_code=2)  # settings
    assert "tiny" not in short[1]


def test_a_hung_broker_costs_a_503_and_sigterm_still_stops_it(database_url, silent_server):
    """A broker that accepts connections and never answers: the vendor gets a 503 within 30 s,
    /healthz names the broker, and SIGTERM stops the receiver within 10 s while a callback
    is still waiting on the broker."""
    make_check(database_url, "gme", "gme-hung")
    outcome = _hang_and_stop({"VOXQUEUE_BROKER_URL": f"redis://127.0.0.1:{silent_server}/0"})
    assert outcome["health"] == (503, {"database": "ok", "broker": "down"})
    assert "enqueue_" in outcome["stderr"]


def test_a_hung_database_costs_a_503_and_sigterm_still_stops_it(redis_url, silent_server):
    """The same with a database that never answers: the store's thread stays blocked for good
    (nothing times out a PostgreSQL read here), and the receiver still exits on SIGTERM."""
    database = f"postgresql+psycopg://postgres@127.0.0.1:{silent_server}/x"
    outcome = _hang_and_stop({"VOXQUEUE_DATABASE_URL": database, "VOXQUEUE_SECRET_KEY": os.urandom(16).hex(),
                              "VOXQUEUE_BROKER_URL": redis_url})
    assert outcome["health"] == (503, {"database": "down", "broker": "ok"})
    assert "store_timeout" in outcome["stderr"] and "abandoned" in outcome["stderr"]


def _hang_and_stop(env: dict[str, str]) -> dict:
    key = "gme-callback-key-" + os.urandom(4).hex()
    port = free_port()
    process = start(env | {"VOXQUEUE_GME_CALLBACK_KEY": key}, port)
    body = gme_body("gme-hung")

    def callback() -> requests.Response:
        return requests.post(f"http://127.0.0.1:{port}/callbacks/gme", data=body,
                             params={"Signatue": sign_callback(body, key)}, timeout=40)

    try:
        _wait_listening(process, port)
        started = time.monotonic()
        answer = callback()
        answered = time.monotonic() - started
        health = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=10)
        with ThreadPoolExecutor(1) as pool:
            waiting = pool.submit(callback)  # still waiting when SIGTERM comes
            time.sleep(1)
            process.send_signal(signal.SIGTERM)
            stopping = time.monotonic()
            code, stderr = finished(process, timeout=20)
            stopped = time.monotonic() - stopping
            with contextlib.suppress(requests.RequestException):
                waiting.result(30)
    finally:
        if process.poll() is None:
            process.kill()
    print(f"\n503 after {answered:.1f}s; stopped {stopped:.1f}s after SIGTERM")
    assert (answer.status_code, answer.json()) == (503, {"error": "unavailable"}) and answered < 30, answered
    assert code == 0 and stopped < 10, (code, stopped, stderr[-2000:])
    assert "Traceback" not in stderr, stderr[-3000:]
    return {"health": (health.status_code, health.json()), "stderr": stderr}


def _wait_listening(process: subprocess.Popen, port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"exited {process.returncode}: {process.stderr.read()}")
        try:
            requests.get(f"http://127.0.0.1:{port}/nowhere", timeout=1)
            return
        except requests.ConnectionError:
            time.sleep(0.1)
    raise AssertionError("the receiver did not listen")
