"""A pipeline of real processes: the sandbox, Celery workers, Redis and a database.

Credentials are generated per test. Processes write their output to files in
the test's temporary directory, which are printed when a test fails.
"""

from __future__ import annotations

import json
import math
import os
import random
import secrets
import shutil
import signal
import subprocess
import time
import wave
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from sandbox.server import favour
from workers.processes import free_port, running, voxqueue_command, wait_http

CHUNK_BYTES = 4096


@dataclass
class Pipeline:
    env: dict[str, str]
    sandbox_url: str
    logs: Path
    stack: ExitStack
    workers: list[subprocess.Popen] = field(default_factory=list)

    def cli(self, *args: str, timeout: float | None = None, check: bool = True) -> subprocess.CompletedProcess:
        if timeout is None:  # at least the command's own --timeout, with time to report
            timeout = float(args[args.index("--timeout") + 1]) + 30 if "--timeout" in args else 120
        proc = subprocess.run(voxqueue_command(*args), env=self.env, capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL, check=False)
        if check and proc.returncode != 0:
            raise AssertionError(f"voxqueue {' '.join(args)} exited {proc.returncode}: {proc.stderr[-2000:]}")
        return proc

    def start_worker(self, *args: str, name: str = "worker") -> subprocess.Popen:
        """``voxqueue worker ARGS``: one process (with its threads) unless ``--processes`` is given,
        so that a test's worker is one process it can kill, as before processes were the default."""
        if not any(a.startswith("--processes") for a in args):
            args = ("--processes", "1", *args)
        log = self.logs / f"{name}-{len(self.workers)}.log"
        proc = self.stack.enter_context(running(voxqueue_command("worker", *args), self.env, log))
        self.workers.append(proc)
        return proc

    def wait(self, batch: str, timeout: float) -> None:
        """``voxqueue wait``; on a timeout, fail with the checks still open at that moment."""
        proc = self.cli("wait", "--batch", batch, "--timeout", str(timeout), check=False)
        if proc.returncode != 0:
            raise AssertionError(f"{proc.stderr.strip()[-300:]}\nopen checks:\n{_unfinished(self.env['VOXQUEUE_DATABASE_URL'])}")

    def start_beat(self) -> subprocess.Popen:
        log = self.logs / "beat.log"
        return self.stack.enter_context(running(voxqueue_command("beat"), self.env, log))

    def wait_restarting(self, batch: str, worker: subprocess.Popen, *worker_args: str, timeout: float) -> int:
        """Wait for ``batch``, starting ``worker`` again (with ``worker_args``) whenever it dies, as
        a supervisor (systemd, compose) would; the number of restarts."""
        restarts, deadline = 0, time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.cli("wait", "--batch", batch, "--timeout", "1", check=False).returncode == 0:
                break
            if worker.poll() is not None:
                restarts += 1
                worker = self.start_worker(*worker_args)
        print(f"\nworker restarts by the supervisor: {restarts}")
        return restarts

    def kill_worker(self, proc: subprocess.Popen) -> None:
        """SIGKILL the worker's whole process group: no warm shutdown, nothing acked."""
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)

    def report(self, batch: str) -> list[dict]:
        return json.loads(self.cli("report", "--batch", batch).stdout)

    def sandbox(self, path: str, payload: dict | None = None) -> dict:
        url = f"{self.sandbox_url}/_sandbox/{path}"
        r = requests.post(url, json=payload, timeout=10) if payload is not None else requests.get(url, timeout=10)
        r.raise_for_status()
        return r.json()


@pytest.fixture
def pipeline_env() -> dict[str, str]:
    """Extra environment for every process of the pipeline (override per module)."""
    return {}


@pytest.fixture
def pipeline(database_url, redis_url, tmp_path, request, pipeline_env) -> Iterator[Pipeline]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = dict(os.environ) | {
        "VOXQUEUE_DATABASE_URL": database_url,
        "VOXQUEUE_BROKER_URL": redis_url,
        "VOXQUEUE_VAR_DIR": str(tmp_path / "var"),
        "VOXQUEUE_TENCENT_SECRET_ID": "test-" + secrets.token_hex(6),
        "VOXQUEUE_TENCENT_SECRET_KEY": secrets.token_hex(16),
        "VOXQUEUE_SOE_ENDPOINT": url,
        "VOXQUEUE_SOE_CHUNK_BYTES": str(CHUNK_BYTES),
        "VOXQUEUE_LOG_LEVEL": "INFO",
        "PYTHONUNBUFFERED": "1",
    } | pipeline_env
    logs = tmp_path / "logs"
    with ExitStack() as stack:
        sbx = stack.enter_context(running(voxqueue_command("sandbox", "--port", str(port)), env, logs / "sandbox.log"))
        wait_http(url + "/_sandbox/health", sbx)
        favour(sbx.pid)  # a vendor has its own machines: the sandbox is never starved
        yield Pipeline(env, url, logs, stack)
    if request.node.rep_call.failed if hasattr(request.node, "rep_call") else False:
        for log in sorted(logs.glob("*.log")):
            print(f"----- {log.name} -----\n{log.read_text(errors='replace')[-6000:]}")
        print("----- checks not done -----\n" + _unfinished(database_url))


def _unfinished(url: str) -> str:
    from sqlalchemy import select

    from models import Check, Job
    from models.db import session_scope

    with session_scope(url) as session:
        rows = session.execute(
            select(Job.key, Check.service, Check.status, Check.vendor_task_id, Check.attempts,
                   Check.deliveries, Check.polls, Check.next_poll_at, Check.lease_until, Check.error)
            .join(Job).where(Check.status != "done").limit(50))
        return "\n".join(repr(tuple(row)) for row in rows)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


def write_speech_like_wav(path: Path, seconds: float, seed: int) -> Path:
    """A 16 kHz mono 16-bit WAV whose content differs per seed (so scores differ)."""
    rng = random.Random(seed)
    freq = rng.uniform(120, 400)
    frames = bytearray()
    for n in range(int(16000 * seconds)):
        value = int(8000 * math.sin(2 * math.pi * freq * n / 16000) + rng.randint(-500, 500))
        frames += value.to_bytes(2, "little", signed=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(bytes(frames))
    return path


def wait_until(predicate, timeout: float, interval: float = 0.3):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


def write_recovery_manifest(folder: Path, count: int, *, name: str = "recovery") -> Path:
    """``count`` jobs of SOE, GME and Shumei, with the files and reference texts of
    ``tests.e2e.test_soe_pipeline.make_manifest`` (so ``check_scores`` knows their scores)."""
    from tests.e2e.test_soe_pipeline import WORDS

    folder.mkdir(parents=True, exist_ok=True)
    manifest = folder / f"{name}.jsonl"
    with manifest.open("w", encoding="utf-8") as fh:
        for i in range(count):
            write_speech_like_wav(folder / f"pupil{i:03}.wav", 0.05 + (i % 10) * 0.06, seed=i)
            fh.write(json.dumps({
                "id": f"pupil-{i:03}", "audio": f"pupil{i:03}.wav", "ref_text": WORDS[i % len(WORDS)],
                "eval_mode": "word" if i % 7 == 0 else "sentence", "score_coeff": 1 + (i % 4),
                "services": "soe,gme,shumei"}) + "\n")
    return manifest


@pytest.fixture
def private_redis(tmp_path, request):
    """A Redis of this test's own that the test may kill and start again: without persistence
    (a restart loses every message), unless the test is marked ``persistent_redis``."""
    import redis

    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    port = free_port()
    data = tmp_path / "redis-data"
    data.mkdir()
    persistent = request.node.get_closest_marker("persistent_redis") is not None
    keep = ["--appendonly", "yes", "--appendfsync", "always"] if persistent else ["--appendonly", "no"]
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", *keep, "--save", "", "--dir", str(data)]

    def ping() -> bool:
        try:
            return redis.Redis(port=port, socket_timeout=0.5).ping()
        except redis.RedisError:
            return False

    def start() -> subprocess.Popen:
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(ping, 10, interval=0.05)
        return proc

    state = {"proc": start()}
    yield port, state, start
    state["proc"].send_signal(signal.SIGKILL)
    state["proc"].wait(5)


@pytest.fixture
def silent_server():
    """The port of a server that accepts connections and never answers (a hung broker, a URL that
    times out)."""
    import socket
    import threading

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join(2)
    for conn in held:
        conn.close()
    server.close()
