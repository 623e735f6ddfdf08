"""Recovery times at the settings a user has: from a fault to every job of the batch done.

    python benchmarks/recovery.py [--jobs 80] [--repeat 3] [--scenarios kill,survivor,broker,sigterm]

Each round runs a batch of SOE, GME and Shumei jobs (the sandbox at 50 ms per
call, results polled by the beat) on a Redis of its own (no persistence) and a
fresh PostgreSQL database, injects one fault once the batch is under way, and
prints the seconds from the fault to ``voxqueue wait`` returning:

- kill: the only worker SIGKILLed and started again at once;
- survivor: one of two workers SIGKILLed and never started again;
- broker: Redis SIGKILLed and started again empty, no voxqueue process touched;
- sigterm: one of two workers stopped with SIGTERM (also: how long it took to stop).

Nothing is shortened: lease, stale rule, heartbeat and housekeeping interval are the defaults.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import (
    DEFAULT_PG,
    cli,
    fresh_log,
    migrated_pg_database,
    num,
    percentile,
    query,
    say,
)
from benchmarks.inputs import WORDS, write_wav
from workers.processes import free_port, running, voxqueue_command, wait_http

SCENARIOS = ("kill", "survivor", "broker", "sigterm")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=80, help="jobs per batch (each soe + gme + shumei)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds per scenario")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--pg-url", default=DEFAULT_PG)
    args = parser.parse_args(argv)
    args.scenarios = [s for s in args.scenarios.split(",") if s]
    unknown = set(args.scenarios) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenario {', '.join(sorted(unknown))}")
    return args


@contextlib.contextmanager
def private_redis(folder: Path) -> Iterator[tuple[int, callable]]:
    """A redis-server of the round's own, without persistence; yields its port and a restart."""
    port, state = free_port(), {}
    args = [shutil.which("redis-server"), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", str(folder)]

    def start() -> None:
        state["proc"] = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True, check=False).returncode:
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)

    def crash_and_restart() -> None:
        state["proc"].kill()
        state["proc"].wait(5)
        start()

    start()
    try:
        yield port, crash_and_restart
    finally:
        state["proc"].kill()
        state["proc"].wait(5)


def manifest(folder: Path, jobs: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "recovery.jsonl"
    with path.open("w") as fh:
        for i in range(jobs):
            write_wav(folder / f"f{i:04}.wav", 1600 + (i % 10) * 1920, seed=i)  # 1 to 5 chunks of 4 KB
            fh.write(json.dumps({"id": f"r-{i:04}", "audio": f"f{i:04}.wav", "ref_text": WORDS[i % len(WORDS)],
                                 "services": "soe,gme,shumei"}) + "\n")
    return path


def environment(db: str, port: int, sandbox: str, media: Path, var: Path) -> dict[str, str]:
    return dict(os.environ) | {
        "VOXQUEUE_DATABASE_URL": db, "VOXQUEUE_BROKER_URL": f"redis://127.0.0.1:{port}/0",
        "VOXQUEUE_VAR_DIR": str(var), "VOXQUEUE_TENCENT_SECRET_ID": "bench-" + secrets.token_hex(6),
        "VOXQUEUE_TENCENT_SECRET_KEY": secrets.token_hex(16), "VOXQUEUE_SOE_CHUNK_BYTES": "4096",
        "VOXQUEUE_SHUMEI_ACCESS_KEY": secrets.token_hex(12), "VOXQUEUE_GME_BIZ_ID": "1400012345",
        "VOXQUEUE_SANDBOX_MEDIA_DIR": str(media), "VOXQUEUE_SANDBOX_RESULT_DELAY_S": "1",
        "VOXQUEUE_MEDIA_BASE_URL": sandbox + "/media", "PYTHONUNBUFFERED": "1",
        **{f"VOXQUEUE_{v}_ENDPOINT": sandbox for v in ("SOE", "GME", "SHUMEI")},
    }


def done(db: str) -> int:
    return query(db, "SELECT count(*) FROM jobs WHERE status = 'done'")[0][0]


def one_round(scenario: str, jobs: int, pg_url: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="vq-recovery-") as tmp, contextlib.ExitStack() as stack:
        tmp = Path(tmp)
        db = stack.enter_context(migrated_pg_database(pg_url, "recovery"))
        port, crash_broker = stack.enter_context(private_redis(tmp))
        sandbox_port = free_port()
        sandbox = f"http://127.0.0.1:{sandbox_port}"
        env = environment(db, port, sandbox, tmp / "media", tmp / "var")
        source = manifest(tmp / "media", jobs)
        logs = tmp / "logs"
        sbx = stack.enter_context(running(voxqueue_command("sandbox", "--port", str(sandbox_port),
                                                           "--latency-ms", "50"), env, logs / "sandbox.log"))
        wait_http(sandbox + "/_sandbox/health", sbx)
        stack.enter_context(running(voxqueue_command("beat"), env, logs / "beat.log"))

        def worker() -> subprocess.Popen:
            # as the README starts it: a process per core, 16 threads each
            command = voxqueue_command("worker")
            return stack.enter_context(running(command, env, fresh_log(logs, "worker")))

        workers = [worker() for _ in range(1 if scenario in ("kill", "broker") else 2)]
        cli(env, "ingest", str(source))
        while done(db) < jobs // 10:
            time.sleep(0.1)
        fault = time.monotonic()
        figures = {}
        if scenario in ("kill", "survivor"):
            os.killpg(workers[0].pid, signal.SIGKILL)
            if scenario == "kill":
                worker()
        elif scenario == "broker":
            crash_broker()
        else:
            os.killpg(workers[0].pid, signal.SIGTERM)
            workers[0].wait(60)
            figures["stopped_s"] = time.monotonic() - fault
        cli(env, "wait", "--batch", "recovery", "--timeout", "600", timeout=700)
        figures["done_s"] = time.monotonic() - fault
        return figures


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    say(f"recovery: {args.jobs} jobs of soe+gme+shumei per round, {args.repeat} round(s) per scenario, "
        "default lease, stale rule and housekeeping")
    for scenario in args.scenarios:
        rounds = [one_round(scenario, args.jobs, args.pg_url) for _ in range(args.repeat)]
        times = [r["done_s"] for r in rounds]
        line = (f"  {scenario:9} fault -> batch done: median {num(percentile(times, 0.5))} s, "
                f"range {num(min(times))}-{num(max(times))} s")
        if scenario == "sigterm":
            stops = [r["stopped_s"] for r in rounds]
            line += f"; the worker stopped in {num(min(stops))}-{num(max(stops))} s"
        say(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
